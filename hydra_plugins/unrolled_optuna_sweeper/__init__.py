"""Hydra discovers sweepers only under ``hydra_plugins``: this registers ours (code in cli/)."""

import warnings

# Hydra's plugin scanner imports this module at every `initialize` / `compose` of any config,
# sweep or not, and prints whatever warnings the import raises. Importing optuna 2.10 (the
# sweeper's) raises two that concern no user of ours: SQLAlchemy 1.4's "Deprecated API
# features detected" (optuna's storage models) and tqdm's "IProgress not found" in Jupyter.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from unrolled.cli.optuna_sweeper import ResumableOptunaSweeper as _ResumableOptunaSweeper


class ResumableOptunaSweeper(_ResumableOptunaSweeper):
    """See :class:`unrolled.cli.optuna_sweeper.ResumableOptunaSweeper`."""
