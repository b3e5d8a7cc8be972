"""Publishing a file atomically: write a temporary file beside it, then rename it into place.

A reader never sees a half-written file, a crash leaves no partial output (only, at worst,
a hidden ``.<name>.<random>.tmp`` that the next run does not mistake for output), and two
writers never share a temporary file (``mkstemp`` names each one afresh). Without
``overwrite`` the file is published with ``os.link``, which fails if the target appeared
meanwhile, so nothing a user wrote is replaced; on a file system without hard links the
check is made just before the rename.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from os import PathLike
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()

#: What a refusal to overwrite tells the user to do (library callers).
HINT = "pass overwrite=True to replace it"


@contextlib.contextmanager
def atomic_path(
    target: str | PathLike[str], overwrite: bool = True, hint: str = HINT
) -> Iterator[Path]:
    """A temporary path to write ``target``'s contents to, published when the block ends.

    The temporary file exists (empty, mode ``0o666 & ~umask``) in ``target``'s folder; the
    block may write it by name (h5py, matplotlib, numpy) or reopen it. When the block
    raises, ``target`` is left as it was and the temporary file is removed.

    Args:
        target: the file to publish; its folder must exist.
        overwrite: replace an existing ``target``; otherwise refuse.
        hint: what the refusal tells the user to do (a CLI says ``overwrite=true``).

    Yields:
        The temporary path.

    Raises:
        FileExistsError: ``target`` exists (before or after the block) and ``overwrite`` is
            false: ``"<target>: exists; <hint>"``.
    """
    target = Path(target)
    if not overwrite and target.exists():
        raise FileExistsError(f"{target}: exists; {hint}")
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; use the usual permissions
        yield tmp
        publish(tmp, target, overwrite, hint)
    finally:
        tmp.unlink(missing_ok=True)


def publish(
    tmp: str | PathLike[str], target: str | PathLike[str], overwrite: bool, hint: str = HINT
) -> None:
    """Move the finished file ``tmp`` to ``target``; without ``overwrite`` never clobber one.

    Raises:
        FileExistsError: ``target`` exists and ``overwrite`` is false: ``"<target>: exists;
            <hint>"``.
    """
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # atomic and fails if target exists
    except FileExistsError:
        raise FileExistsError(f"{target}: exists; {hint}") from None
    except OSError:  # file system without hard links: check-then-rename
        if Path(target).exists():
            raise FileExistsError(f"{target}: exists; {hint}") from None
        os.replace(tmp, target)


def write_atomic(target: str | PathLike[str], data: str | bytes, overwrite: bool = True) -> Path:
    """Write ``data`` (text as UTF-8, newlines as given) to ``target`` atomically.

    Returns:
        ``target`` as a :class:`~pathlib.Path`.

    Raises:
        FileExistsError: ``target`` exists and ``overwrite`` is false.
    """
    with atomic_path(target, overwrite) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(target)
