"""Reading checkpoints and weights files: the one place ``torch.load`` is called.

Every file is read with ``torch.load(weights_only=True)``: tensors, containers and plain
values only, so no code in the file runs on load. Errors are one line naming the file
(:class:`~unrolled.data.errors.DataError`), the way the command-line tools print them.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import torch

from unrolled.data.errors import DataError

#: Prefix of the network's tensors in the state dict of an ``unrolled-train`` checkpoint
#: (the Lightning module holds the network as ``net``).
NET_PREFIX = "net."


def not_a_checkpoint(path: str | PathLike[str]) -> str | None:
    """Why ``path`` cannot be a PyTorch checkpoint, from its first bytes; None if it may be."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save's zip; old pickle
        return None
    if not head:
        kind = "the file is empty"
    elif head.startswith(b"\x89HDF"):
        kind = "it is an HDF5 file"
    else:
        kind = "it is not a file written by torch.save"
    return f"not a checkpoint ({kind}; expected a .ckpt written by unrolled-train)"


def load_reason(error: Exception) -> str:
    """One line on why ``torch.load(weights_only=True)`` failed: its type and first line."""
    if "Weights only load failed" in str(error):  # PyTorch's advice does not apply here
        return "it holds objects that cannot be loaded safely (weights_only=True)"
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}"


def read_checkpoint(
    path: str | PathLike[str],
    map_location: str | torch.device = "cpu",
    mmap: bool = False,
    check_format: bool = False,
) -> Any:
    """The contents of a checkpoint or weights file, read with ``weights_only=True``.

    Args:
        path: the file (``torch.save`` format).
        map_location: where tensors are placed.
        mmap: memory-map the file instead of reading it (cheap for a large file of which
            little is used).
        check_format: first look at the file's leading bytes and name what it is when it is
            not a ``torch.save`` file at all (empty, HDF5, text).

    Returns:
        What was saved: for an ``unrolled-train`` checkpoint a dict with ``state_dict``,
        ``global_step`` and ``unrolled_config``; for a weights file a state dict.

    Raises:
        FileNotFoundError: no such file.
        DataError: ``"<path>: not a checkpoint (...)"`` (with ``check_format``) or
            ``"<path>: not a readable checkpoint (<reason>)"``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if check_format:
        problem = not_a_checkpoint(path)
        if problem:
            raise DataError(path, problem)
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise DataError(path, f"not a readable checkpoint ({load_reason(e)})") from None


def network_state(ckpt: Any) -> dict[str, torch.Tensor]:
    """The network's tensors of a loaded file: an ``unrolled-train`` checkpoint's ``net.``
    entries with the prefix removed, or a plain state dict as it is (``{}`` for neither)."""
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else {}
    if any(k.startswith(NET_PREFIX) for k in state):
        state = {k[len(NET_PREFIX) :]: v for k, v in state.items() if k.startswith(NET_PREFIX)}
    return state
