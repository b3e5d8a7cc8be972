"""Hydra discovers sweepers only under ``hydra_plugins``: this registers ours (code in cli/)."""

from unrolled.cli.optuna_sweeper import ResumableOptunaSweeper as _ResumableOptunaSweeper


class ResumableOptunaSweeper(_ResumableOptunaSweeper):
    """See :class:`unrolled.cli.optuna_sweeper.ResumableOptunaSweeper`."""
