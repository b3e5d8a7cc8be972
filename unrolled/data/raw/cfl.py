"""BART's ``.cfl``/``.hdr`` array files, read and written exactly.

A BART array ``name`` is two files: ``name.hdr``, text whose second line holds
the dimensions (``# Dimensions`` first; BART appends more ``#`` sections), and
``name.cfl``, the complex64 little-endian samples in column-major (Fortran)
order. Source: BART's ``python/cfl.py`` and ``src/misc/mmio.c``
(https://github.com/mrirecon/bart).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

from unrolled.data.errors import DataError
from unrolled.data.publish import atomic_path


def cfl_base(path: str | PathLike[str]) -> Path:
    """``name`` for ``name``, ``name.cfl`` or ``name.hdr``."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".cfl", ".hdr") else path


def read_cfl(path: str | PathLike[str]) -> np.ndarray:
    """Read a BART array.

    Args:
        path: ``name``, ``name.cfl`` or ``name.hdr``.

    Returns:
        complex64 array with BART's dimensions (all of them, trailing ones included).

    Raises:
        DataError: a file is missing, the header is malformed, or the data size
            does not match the dimensions.
    """
    base = cfl_base(path)
    hdr, cfl = base.with_suffix(".hdr"), base.with_suffix(".cfl")
    for f in (hdr, cfl):
        if not f.is_file():
            raise DataError(f, "no such file (a BART array is name.hdr + name.cfl)")
    lines = hdr.read_text(errors="replace").splitlines()
    try:
        if not lines[0].startswith("# Dimensions"):
            raise ValueError
        dims = [int(v) for v in lines[1].split()]
        if not dims or min(dims) < 1:
            raise ValueError
    except (IndexError, ValueError):
        raise DataError(hdr, "malformed BART header (expected '# Dimensions' then sizes)") from None
    count = int(np.prod(dims))
    size = cfl.stat().st_size
    if size != count * 8:
        raise DataError(
            cfl, f"holds {size} bytes, but dimensions {dims} need {count * 8} (complex64)"
        )
    data = np.fromfile(cfl, dtype="<c8", count=count)
    return data.reshape(dims, order="F").astype(np.complex64)


def write_cfl(path: str | PathLike[str], array: np.ndarray, overwrite: bool = False) -> Path:
    """Write ``array`` as a BART array (complex64, column-major), each file atomically.

    Returns:
        The base path ``name``.

    Raises:
        FileExistsError: a file exists and ``overwrite`` is false.
    """
    base = cfl_base(path)
    array = np.asarray(array, dtype=np.complex64)
    dims = list(array.shape) or [1]
    dims += [1] * max(0, 16 - len(dims))  # BART writes all 16 dimensions
    targets = {base.with_suffix(".hdr"): None, base.with_suffix(".cfl"): None}
    if not overwrite:
        for t in targets:
            if t.exists():
                raise FileExistsError(f"{t}: exists; pass overwrite=True to replace it")
    header = "# Dimensions\n" + " ".join(str(d) for d in dims) + "\n"
    for target in targets:
        with atomic_path(target) as tmp:
            if target.suffix == ".hdr":
                tmp.write_text(header)
            else:
                array.ravel(order="F").astype("<c8").tofile(tmp)
    return base
