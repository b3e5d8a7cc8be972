"""Notebooks are committed executed, so that they teach on a code host without running.

Their outputs must be complete (every code cell run once, in order, without an error) and
small enough to read there: pictures of at most ``MAX_IMAGE_KB`` each and a notebook of at
most ``MAX_NOTEBOOK_KB``. CI still executes every notebook (nbmake), so stale outputs of
code that no longer runs cannot pass.
"""

import base64
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
MAX_IMAGE_KB = 300
MAX_NOTEBOOK_KB = 1500


def test_notebooks_exist():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb file"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_executed_and_small(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    counts = [cell.get("execution_count") for cell in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: execution counts {counts}: run the whole notebook once, top to bottom, "
        "before committing (notebooks/README.md shows how)"
    )
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: committed with an error output"
    images = [
        len(base64.b64decode(data)) / 1024
        for c in code
        for o in c.get("outputs", [])
        for mime, data in o.get("data", {}).items()
        if mime.startswith("image/")
    ]
    assert images, f"{path.name}: no pictures in its outputs"
    assert max(images) <= MAX_IMAGE_KB, f"{path.name}: a picture of {max(images):.0f} KB"
    size = path.stat().st_size / 1024
    assert size <= MAX_NOTEBOOK_KB, f"{path.name}: {size:.0f} KB"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_outputs_hold_no_machine_paths(path):
    """What the notebook prints and shows names no folder of the machine it ran on.

    (Library warnings on stderr, which name their own source file, are not checked.)
    """
    nb = json.loads(path.read_text(encoding="utf-8"))
    outputs = [
        o
        for c in nb["cells"]
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
        if o.get("name") != "stderr"
    ]
    text = json.dumps(outputs)
    for fragment in ("/tmp/", "/home/", "/work/", "/Users/"):
        assert fragment not in text, f"{path.name}: an output holds a path with {fragment}"


def _code_cells(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_uses_the_library_not_the_command_line_internals(path):
    """Notebooks teach the public library: ``unrolled.cli`` (Hydra entry points) is not imported.

    The commands themselves (``unrolled-train ...``) may be run, as a user would.
    """
    pattern = re.compile(
        r"^\s*(from\s+unrolled\.cli\b|import\s+unrolled\.cli\b|from\s+unrolled\s+import\s+.*\bcli\b)"
    )
    hits = [
        line.strip()
        for cell in _code_cells(path)
        for line in cell.splitlines()
        if pattern.match(line)
    ]
    assert not hits, f"{path.name} imports unrolled.cli: {hits}"


def test_no_code_cell_is_copied_between_notebooks():
    """A step two notebooks need lives in the library (or a config), not in copied cells."""
    seen = {}
    for path in NOTEBOOKS:
        for cell in _code_cells(path):
            key = "\n".join(line.rstrip() for line in cell.strip().splitlines())
            if len(key.splitlines()) < 3:  # a one- or two-line call may repeat
                continue
            assert key not in seen, f"a code cell of {path.name} is copied from {seen[key]}"
            seen[key] = path.name
