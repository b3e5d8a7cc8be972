"""Shared pieces of the command-line entry points: config path, clean errors, loading."""

from __future__ import annotations

import functools
import importlib.resources
import re
import signal
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from unrolled.data.errors import DataError
from unrolled.physics.masks import MaskFunc

CONFIG_DIR = str(importlib.resources.files("unrolled.conf"))
"""The Hydra configs: the data package ``unrolled.conf``, i.e. the repository's ``conf/`` in
an editable install and ``site-packages/unrolled/conf`` in a wheel (see setup.py)."""


def _sweep_group(prefix: str) -> str | None:
    """W&B group of a run: ``PREFIX/<sweep directory name>`` in a multirun, else None."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return f"{prefix}/{Path(HydraConfig.get().sweep.dir).name}"


def _run_name(fallback: str) -> str:
    """W&B name of a run: its command-line overrides (``hydra.job.override_dirname``)."""
    if not HydraConfig.initialized():
        return fallback
    return HydraConfig.get().job.override_dirname or fallback


# ${unrolled.sweep_group:...} and ${unrolled.run_name:...} in conf/logger/wandb.yaml
OmegaConf.register_new_resolver("unrolled.sweep_group", _sweep_group, replace=True)
OmegaConf.register_new_resolver("unrolled.run_name", _run_name, replace=True)


F = TypeVar("F", bound=Callable[..., Any])


class ConfigError(Exception):
    """A configuration that cannot work, found before any file is read (``mask: ...``)."""


# Bad input a user can fix: reported in one line, exit status 1, no traceback.
USER_ERRORS = (DataError, FileExistsError, FileNotFoundError, FloatingPointError, ConfigError)


def fail(message: str) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with status 1."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def instantiate_or_fail(node: DictConfig, what: str):
    """``hydra.utils.instantiate``, unwrapping the user errors that Hydra wraps.

    Raises:
        One of :data:`USER_ERRORS`: the constructor raised it (printed by :func:`clean_errors`).
        SystemExit: the constructor refused its options (``ValueError``/``TypeError``), after
            ``error: <what>: <reason>`` on stderr.
    """
    try:
        return instantiate(node)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, USER_ERRORS):
            raise cause from None
        if isinstance(cause, ValueError | TypeError):  # bad options, e.g. mask.accelerations
            fail(f"{what}: {cause}")
        raise


def progress_bar(enabled: bool, unit: str, remaining: bool = False):
    """A rich progress bar on stderr counting ``unit`` (volumes, slices); ``remaining`` adds
    the estimated time left."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
    ]
    if remaining:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=Console(stderr=True), disable=not enabled)


def clean_errors(fn: F) -> F:
    """Turn :data:`USER_ERRORS` into one line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _config_groups(config_name: str) -> list[str]:
    """The config groups in the defaults list of ``conf/<config_name>.yaml`` (not ``hydra``)."""
    defaults = OmegaConf.load(Path(CONFIG_DIR) / f"{config_name}.yaml").get("defaults") or []
    groups = []
    for entry in defaults:
        if not isinstance(entry, DictConfig):
            continue
        for key in entry:
            group = str(key).split()[-1].lstrip("/").split("@")[0]
            if group != "hydra" and group not in groups:
                groups.append(group)
    return groups


def _group_options(group: str) -> str:
    """``group: a, b, c`` and its subgroups (``model/dc: cg, gradient, hard``), one per line."""
    root = Path(CONFIG_DIR) / group
    lines = []
    for folder in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        names = sorted(p.stem for p in folder.glob("*.yaml"))
        if names and "__pycache__" not in folder.parts:
            lines.append(f"  {folder.relative_to(CONFIG_DIR).as_posix()}: {', '.join(names)}")
    return "\n".join(lines)


def help_text(prog: str, doc: str | None, config_name: str | None) -> str:
    """What ``--help`` prints: the tool's docstring (what it does, examples), the config groups
    it uses with their options, and its YAML file with the comments it holds."""
    text = (doc or prog).strip().replace("``", "`").replace("::\n", ":\n")
    text = re.sub(r":(?:mod|func|class|data):`~?([^`]+)`", r"`\1`", text)
    first, _, rest = text.partition("\n")
    parts = [first + ("\n\n" + textwrap.dedent(rest).strip() if rest.strip() else "")]
    if config_name is not None:
        groups = [g for g in _config_groups(config_name) if (Path(CONFIG_DIR) / g).is_dir()]
        if groups:
            parts.append(
                "Config groups (choose with GROUP=OPTION):\n"
                + "\n".join(_group_options(g) for g in groups)
            )
        yaml_path = Path(CONFIG_DIR) / f"{config_name}.yaml"
        parts.append(
            f"Options, from {yaml_path} (override any as key=value):\n\n"
            + yaml_path.read_text().rstrip()
        )
        parts.append(
            "Hydra flags: --cfg job (print the composed config), -m (multirun), --hydra-help."
        )
    return "\n\n".join(parts) + "\n"


def _unused_groups(argv: Sequence[str], config_name: str, extra: Sequence[str]) -> list[str]:
    """Overrides in ``argv`` that select a config group the tool does not use."""
    used = {*_config_groups(config_name), "hydra", *extra}
    unused = []
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key = arg.split("=", 1)[0].lstrip("+~").split("@")[0]
        if "." in key or not (Path(CONFIG_DIR) / key).is_dir():
            continue
        if key.split("/")[0] not in used:
            unused.append(arg)
    return unused


def entry_point(
    prog: str, doc: str | None, config_name: str | None = None, extra_groups: Sequence[str] = ()
) -> Callable[[F], F]:
    """Wrap a console script: ``--help``, Ctrl-C and unused config groups handled the same way.

    - ``--help`` / ``-h`` print :func:`help_text` and exit 0 (Hydra tools; ``config_name``);
    - a command-line override that selects a config group the tool does not use
      (``+model/dc=cg`` for ``unrolled-reconstruct``) is an error, exit status 2;
    - Ctrl-C (SIGINT) prints ``PROG: interrupted`` and exits with status 130, also when a
      library (Lightning, a DataLoader) turned the interrupt into another exception.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            argv = sys.argv[1:]
            if config_name is not None and ("--help" in argv or "-h" in argv):
                print(help_text(prog, doc, config_name), end="")
                sys.exit(0)
            if config_name is not None:
                unused = _unused_groups(argv, config_name, extra_groups)
                if unused:
                    groups = ", ".join(_config_groups(config_name))
                    print(
                        f"error: {prog} does not use {' '.join(unused)} "
                        f"(its config groups: {groups}; see {prog} --help)",
                        file=sys.stderr,
                    )
                    sys.exit(2)
            interrupted = []

            def on_sigint(signum, frame):
                interrupted.append(signum)
                signal.default_int_handler(signum, frame)

            try:
                previous = signal.signal(signal.SIGINT, on_sigint)
            except ValueError:  # not the main thread: leave signals alone
                previous = None
            try:
                return fn(*args, **kwargs)
            except BaseException:
                if interrupted:
                    print(f"\n{prog}: interrupted", file=sys.stderr)
                    sys.exit(130)
                raise
            finally:
                if previous is not None:
                    signal.signal(signal.SIGINT, previous)

        return wrapper  # type: ignore[return-value]

    return decorate


def build_mask(node: DictConfig | None, what: str = "mask") -> MaskFunc | None:
    """Instantiate a mask config (``conf/mask/``), or ``None`` for an empty node.

    The mask classes check their parameters when built
    (:meth:`~unrolled.physics.masks.MaskFunc.check_parameters`), so CLIs call this first,
    before reading any file: an unmeetable mask (a centre fraction above ``1/R``, an
    acceleration below 1, a centre wider than the k-space) ends the run with one line.

    Raises:
        ConfigError: ``"mask: center_fractions[0]=0.3 is above ..."``, naming the parameter.
    """
    if not node:
        return None
    from hydra.utils import instantiate

    try:
        mask = instantiate(node)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, ValueError | TypeError):
            raise ConfigError(f"{what}: {cause}") from None
        raise ConfigError(f"{what}: {e}") from None
    if not isinstance(mask, MaskFunc):
        raise ConfigError(f"{what}: {node.get('_target_')} is not a mask function")
    return mask


def check_mask_configs(cfg: DictConfig) -> None:
    """Build the masks a training config names (``mask``, ``data.val_mask_func``) once.

    Raises:
        ConfigError: as :func:`build_mask`.
    """
    build_mask(cfg.get("mask"), "mask")
    data = cfg.get("data") or {}
    if isinstance(data, DictConfig) and data.get("val_mask_func") is not None:
        build_mask(data.val_mask_func, "data.val_mask_func")


def check_mask_shapes(mask_func: MaskFunc | None, volumes) -> None:
    """Check a mask against the k-space shape of every volume (headers only, no k-space read).

    Args:
        mask_func: the mask, or ``None``.
        volumes: :class:`~unrolled.data.fastmri_io.VolumeInfo` of each file.

    Raises:
        ConfigError: ``"mask: <file>: calib_size=(24, 24) is wider than the k-space ..."``.
    """
    if mask_func is None:
        return
    for vol in volumes:
        try:
            mask_func.check_shape(tuple(vol.kspace_shape))
        except ValueError as e:
            raise ConfigError(f"mask: {vol.path}: {e}") from None
