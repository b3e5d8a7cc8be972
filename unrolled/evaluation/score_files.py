"""The files behind scoring a folder: listing, opening, probing and reading HDF5 volumes,
pairing their shapes as fastMRI's ``evaluate.py`` does, and one :class:`DataError` naming
every problem (used by :mod:`unrolled.evaluation.scoring`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from unrolled.data.errors import DataError

PROBLEM_ORDER = ("missing", "extra", "unreadable", "shape mismatch")


def raise_problems(problems: dict[str, list[str]], target_dir: Path, pred_dir: Path) -> None:
    """One :class:`DataError` listing every problem and every file concerned, if any."""
    if not any(problems.values()):
        return
    parts = []
    for kind in sorted(problems, key=lambda k: (PROBLEM_ORDER + (k,)).index(k)):
        items = problems[kind]
        if not items:
            continue
        n = len(items)
        if kind == "missing":
            head = f"{n} volume{'s' * (n > 1)} missing from predictions"
        elif kind == "extra":
            head = f"{n} prediction{'s' * (n > 1)} without a target in {target_dir}"
        elif kind == "unreadable":
            head = f"{n} unreadable file{'s' * (n > 1)}"
        elif kind == "shape mismatch":
            head = f"{n} shape mismatch{'es' * (n > 1)}"
        else:
            head = f"{n} volume{'s' * (n > 1)} {kind}"
        parts.append(f"{head}: {', '.join(items)}")
    hint = " (allow_missing=true scores the rest)" if {"missing", "extra"} & set(problems) else ""
    raise DataError(pred_dir, "; ".join(parts) + hint)


def h5_files(root: Path, what: str, allow_empty: bool = False) -> dict[str, Path]:
    """The ``*.h5`` files of ``root`` (not hidden ones), by name, sorted.

    Raises:
        DataError: ``root`` (called ``what``) is missing, not a folder, or holds no
            ``.h5`` file (unless ``allow_empty``).
    """
    if not root.is_dir():
        raise DataError(root, f"{what} does not exist" if not root.exists() else "not a directory")
    files = {
        p.name: p for p in sorted(root.glob("*.h5")) if p.is_file() and not p.name.startswith(".")
    }
    if not files and not allow_empty:
        raise DataError(root, f"{what} contains no .h5 files")
    return files


def open_h5(path: Path) -> h5py.File:
    """``path`` opened read-only.

    Raises:
        DataError: not readable as HDF5.
    """
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DataError(
            path, f"cannot open as HDF5, corrupt or truncated ({short_error(e)})"
        ) from None


def short_error(e: BaseException) -> str:
    """An exception's message on one line, at most 120 characters."""
    return " ".join(str(e).split())[:120]


def probe(path: Path, key: str) -> tuple[tuple[int, ...], dict[str, Any]]:
    """Shape of dataset ``key`` and the file attributes, without reading the data.

    Raises:
        DataError: the dataset is missing, not ``(slices, h, w)``, not numeric, or the
            attributes cannot be read.
    """
    with open_h5(path) as hf:
        if key not in hf or not isinstance(hf[key], h5py.Dataset):
            raise DataError(path, f"dataset '{key}' is missing")
        ds = hf[key]
        if ds.ndim != 3:
            raise DataError(path, f"dataset '{key}' has shape {ds.shape}, expected (slices, h, w)")
        if ds.dtype.kind not in "fiu":
            raise DataError(path, f"dataset '{key}' has dtype {ds.dtype}, expected float32")
        try:
            attrs = dict(hf.attrs.items())
        except OSError as e:
            raise DataError(path, f"cannot read attributes ({short_error(e)})") from None
        return tuple(int(n) for n in ds.shape), attrs


def read_volume(path: Path, key: str) -> torch.Tensor:
    """Dataset ``key`` of ``path`` whole, ``(slices, h, w)``, in its stored dtype.

    Raises:
        DataError: the file or dataset cannot be read.
    """
    with open_h5(path) as hf:
        try:
            array = np.asarray(hf[key][()])
        except (OSError, KeyError, RuntimeError) as e:
            raise DataError(path, f"cannot read dataset '{key}' ({short_error(e)})") from None
    return torch.from_numpy(array)


def shape_problem(target: tuple[int, ...], pred: tuple[int, ...] | None) -> str:
    """Why fastMRI's pairing (same slices, crop to (w_t, w_t)) fails, or ``""``."""
    assert pred is not None
    s, h, w = target
    if pred[0] != s:
        return f"prediction has {pred[0]} slices, target {s}"
    if h < w:
        return f"target {h} x {w} is wider than tall; fastMRI crops to {w} x {w}"
    if pred[1] < w or pred[2] < w:
        return f"prediction {pred[1]} x {pred[2]} is smaller than the crop {w} x {w}"
    return ""


def str_or_none(value: Any) -> str | None:
    """An HDF5 attribute as text (bytes decoded), or ``None``."""
    if value is None:
        return None
    if isinstance(value, bytes | np.bytes_):
        return value.decode(errors="replace")
    return str(value)


def int_or_none(value: Any) -> int | None:
    """An HDF5 attribute as an int, or ``None`` when absent, non-numeric or not finite."""
    if value is None:
        return None
    try:
        number = float(np.asarray(value).item())
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) else None
