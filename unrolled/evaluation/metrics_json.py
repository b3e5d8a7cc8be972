"""Metrics as strict JSON: the one writer (and reader) of every ``metrics.json``.

Python's ``json`` writes ``Infinity``, ``-Infinity`` and ``NaN``, which are not JSON
(RFC 8259): strict parsers (``jq``, JavaScript's ``JSON.parse``, ``json.loads`` with
``parse_constant`` raising) reject the whole file. Metrics do become non-finite: PSNR
is ``+inf`` for a perfect reconstruction, NMSE is ``NaN`` (0/0) or ``+inf`` for an
all-zero reference, a standard deviation over infinite values is ``NaN``.

Convention: a number ``KEY: v`` that is not finite is written as ``KEY: null`` plus a
sibling ``KEY_nonfinite: "inf" | "-inf" | "nan"``, e.g.::

    {"psnr": null, "psnr_nonfinite": "inf", "ssim": 1.0, "nmse": 0.0}

(in a list, where there is no key for a sibling, the value is ``null`` alone). A
``null`` without a ``_nonfinite`` sibling keeps its own meaning (e.g. the ``std`` of a
single volume). :func:`read_metrics_json` restores the floats.

Used by ``unrolled-evaluate`` (:mod:`unrolled.evaluation.scoring`) and
``unrolled-train`` (:func:`unrolled.evaluation.compare.write_metrics_json`), and read
back by the sweep reports (:mod:`unrolled.evaluation.sweeps`).
"""

from __future__ import annotations

import json
import math
from os import PathLike
from pathlib import Path
from typing import Any

from unrolled.data.publish import write_atomic

NONFINITE_SUFFIX = "_nonfinite"
_NAMES = {math.inf: "inf", -math.inf: "-inf"}
_VALUES = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _name(value: float) -> str:
    return "nan" if math.isnan(value) else _NAMES[value]


def _nonfinite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def to_strict(obj: Any) -> Any:
    """A copy of ``obj`` (dicts, lists, tuples, numbers, strings, None) without non-finite
    floats: see the module docstring for the convention.

    Raises:
        ValueError: a key ``KEY_nonfinite`` would collide with a key of ``obj``.
    """
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if _nonfinite(value):
                flag = f"{key}{NONFINITE_SUFFIX}"
                if flag in obj:
                    raise ValueError(f"key {flag!r} exists already; cannot flag {key!r}")
                out[key], out[flag] = None, _name(value)
            else:
                out[key] = to_strict(value)
        return out
    if isinstance(obj, list | tuple):
        return [None if _nonfinite(v) else to_strict(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return to_strict(obj.item())
    return obj


def from_strict(obj: Any) -> Any:
    """Undo :func:`to_strict` on dicts: ``KEY: null, KEY_nonfinite: "inf"`` -> ``KEY: inf``."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key.endswith(NONFINITE_SUFFIX) and key[: -len(NONFINITE_SUFFIX)] in obj:
                continue
            flag = obj.get(f"{key}{NONFINITE_SUFFIX}")
            out[key] = _VALUES[flag] if value is None and flag in _VALUES else from_strict(value)
        return out
    if isinstance(obj, list):
        return [from_strict(v) for v in obj]
    return obj


def dumps_strict(obj: Any) -> str:
    """Indented, strictly valid JSON of ``obj`` (``allow_nan=False`` guards the convention)."""
    return json.dumps(to_strict(obj), indent=2, allow_nan=False) + "\n"


def write_metrics_file(obj: Any, path: str | PathLike[str]) -> Path:
    """Write :func:`dumps_strict` of ``obj`` to ``path`` atomically (temporary file, then
    ``os.replace``); returns ``path``."""
    text = dumps_strict(obj)  # fails before anything is written
    return write_atomic(path, text)


def read_metrics_json(path: str | PathLike[str]) -> Any:
    """Read a metrics file written here (or an older one with ``Infinity``), floats restored."""
    return from_strict(json.loads(Path(path).read_text()))
