"""The one exception type for bad input files."""

from __future__ import annotations

from os import PathLike


class DataError(ValueError):
    """A data file is unreadable or does not have the fastMRI layout we expect.

    The message is one line that names the file first, then what is wrong,
    e.g. ``"/data/file1.h5: dataset 'kspace' is missing"``. Command-line
    entry points print exactly this line and exit non-zero.
    """

    def __init__(self, path: str | PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
