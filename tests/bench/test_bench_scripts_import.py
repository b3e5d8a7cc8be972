"""Every benchmark script imports against the package as it is now.

The benchmarks are not run by the default suite (they take minutes to hours), so a name
moved inside ``unrolled`` would otherwise break a script unnoticed until someone re-runs
it: ``synthetic_net_real_brain.py`` imported ``load_checkpoint_network`` from a module it
had left. Importing runs each script's top level (its imports, constants), not ``main``.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_the_benchmark_script_imports(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # the scripts import their neighbours
    spec = importlib.util.spec_from_file_location(f"bench_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert module.__doc__, f"{script.name}: no docstring saying what it measures and how"
