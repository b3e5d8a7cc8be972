"""Shared pieces of the command-line entry points: config path, clean errors, loading."""

from __future__ import annotations

import functools
import importlib.resources
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from unrolled.data.errors import DataError

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

# Bad input a user can fix: reported in one line, exit status 1, no traceback.
USER_ERRORS = (DataError, FileExistsError, FileNotFoundError, FloatingPointError)


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


def load_network(checkpoint: str | Path, map_location: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the network of a training checkpoint from the config it carries.

    The checkpoint is read with ``weights_only=True`` (no code runs on load).

    Returns:
        ``(network in eval mode, resolved run config)``.
    """
    from hydra.utils import instantiate

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise DataError(path, f"not a readable checkpoint ({type(e).__name__}: {e})") from None
    config = ckpt.get("unrolled_config")
    if not config or "model" not in config:
        raise DataError(path, "checkpoint carries no 'unrolled_config' with a 'model' entry")
    net = instantiate(config["model"])
    state = {k[4:]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(state)
    return net.eval(), config


def load_checkpoint_network(checkpoint: str | Path, map_location: str = "cpu") -> torch.nn.Module:
    """The network of a checkpoint alone (the Hydra target of ``method=unrolled``)."""
    if checkpoint is None:
        raise FileNotFoundError("no checkpoint given: pass checkpoint=PATH/TO/best.ckpt")
    return load_network(checkpoint, map_location)[0]
