"""A trained network from an ``unrolled-train`` checkpoint, for inference, studies and notebooks.

An ``unrolled-train`` checkpoint carries the resolved run config (``unrolled_config``); its
``model`` entry mirrors the network's constructors through ``_target_`` (as ``conf/model/``
does), so the network is rebuilt from it and the checkpoint's weights are loaded into it.
The file is read by :func:`unrolled.data.checkpoint.read_checkpoint` (``weights_only=True``:
no code in the file runs); a ``_target_`` must name a class or function of this package.
"""

from __future__ import annotations

import importlib
from os import PathLike
from typing import Any

import torch

from unrolled.data.checkpoint import network_state, read_checkpoint
from unrolled.data.errors import DataError

#: The only targets a checkpoint's config may name: this package's own constructors.
TARGET_PREFIX = "unrolled."


def build_from_config(node: Any, path: str | PathLike[str] = "") -> Any:
    """Call the ``_target_`` of every node of a plain, resolved config, innermost first.

    ``{"_target_": "unrolled.models.unrolled.UnrolledNet", "num_cascades": 6, ...}`` becomes
    ``UnrolledNet(num_cascades=6, ...)``; lists and other values are kept as they are.

    Raises:
        DataError: a ``_target_`` outside this package, or one that does not exist (named
            with ``path``, the file the config came from).
    """
    if isinstance(node, list | tuple):
        return [build_from_config(v, path) for v in node]
    if not isinstance(node, dict):
        return node
    args = {k: build_from_config(v, path) for k, v in node.items() if k != "_target_"}
    target = node.get("_target_")
    if target is None:
        return args
    if not isinstance(target, str) or not target.startswith(TARGET_PREFIX):
        raise DataError(path, f"the network config names {target!r}, not part of unrolled")
    module, _, name = target.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise DataError(
            path, f"the network config names {target!r}, which does not exist"
        ) from None
    return factory(**args)


def load_network(
    checkpoint: str | PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict]:
    """Rebuild the network of a training checkpoint from the config it carries.

    A warm-start weights file in the model config (``model.weights=PATH`` of
    ``unrolled-train model=varnet_fastmri``) is not read again: the checkpoint's
    own state dict replaces it, so the checkpoint loads after that file moved.

    Args:
        checkpoint: a ``.ckpt`` written by ``unrolled-train``.
        map_location: where the weights are placed.

    Returns:
        ``(network in eval mode, resolved run config as plain containers)``.

    Raises:
        FileNotFoundError: no such checkpoint.
        DataError: not a checkpoint, unreadable, or without the run config.
    """
    ckpt = read_checkpoint(checkpoint, map_location, check_format=True)
    config = ckpt.get("unrolled_config") if isinstance(ckpt, dict) else None
    if not config or "model" not in config:
        raise DataError(checkpoint, "checkpoint carries no 'unrolled_config' with a 'model' entry")
    net = build_from_config(_without_warm_start(config["model"]), checkpoint)
    net.load_state_dict(network_state(ckpt))
    return net.eval(), config


def load_checkpoint_network(
    checkpoint: str | PathLike[str] | None, map_location: str | torch.device = "cpu"
) -> torch.nn.Module:
    """The network of a checkpoint alone (the ``_target_`` of ``conf/method/unrolled.yaml``).

    Raises:
        FileNotFoundError: no checkpoint given, or no such file.
        DataError: see :func:`load_network`.
    """
    if checkpoint is None:
        raise FileNotFoundError("no checkpoint given: pass checkpoint=PATH/TO/best.ckpt")
    return load_network(checkpoint, map_location)[0]


def _without_warm_start(node):
    """A copy of a model config with every ``weights`` of a ``_target_`` node set to ``None``."""
    if isinstance(node, dict):  # the run config a checkpoint carries is a plain container
        out = {k: _without_warm_start(v) for k, v in node.items()}
        if "_target_" in out and out.get("weights") is not None:
            out["weights"] = None
        return out
    if isinstance(node, list | tuple):
        return [_without_warm_start(v) for v in node]
    return node
