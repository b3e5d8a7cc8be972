"""Imports point one way (issue 11, DESIGN.md): the layout cannot drift back.

    physics, metrics  <-  data, models, losses  <-  methods  <-  inference
                      <-  training, evaluation  <-  cli

A module may import its own package and any package on a lower level, never one on its
own level or above. Lightning is imported only in ``training/`` and ``cli/``, Hydra and
omegaconf only in ``cli/``. Every ``import`` statement is read with :mod:`ast`, including
those inside functions (a deferred import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "unrolled"

LEVELS = {
    "physics": 0,
    "metrics": 0,
    "data": 1,
    "models": 1,
    "losses": 1,
    "methods": 2,
    "inference": 3,
    "training": 4,
    "evaluation": 4,
    "cli": 5,
}
# third-party frameworks and the only packages allowed to import them
FRAMEWORKS = {
    "lightning": {"training", "cli"},
    "pytorch_lightning": {"training", "cli"},
    "hydra": {"cli"},
    "omegaconf": {"cli"},
}


def imported_modules(module_file: Path, root: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every module a file imports, relative imports resolved."""
    tree = ast.parse(module_file.read_text(), filename=str(module_file))
    package = ".".join(("unrolled", *module_file.relative_to(root).parent.parts))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # `from unrolled import metrics` imports a part, not just the package
            if name == "unrolled":
                found += [(node.lineno, f"unrolled.{alias.name}") for alias in node.names]
    return found


def forbidden_edges(root: Path = PACKAGE) -> list[str]:
    """Every import under ``root`` (the ``unrolled`` folder) that breaks the direction or the
    framework rule, as 'file:line -> name'."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        if path.parent == root and path.name == "__init__.py":
            continue
        here = path.relative_to(root).parts[0].removesuffix(".py")
        assert here in LEVELS, f"{path}: a part of unrolled/ the import rules do not place"
        for line, name in imported_modules(path, root):
            top, _, rest = name.partition(".")
            where = f"{path.relative_to(root.parent)}:{line} -> {name}"
            if top == "unrolled" and rest:
                there = rest.split(".")[0]
                if there not in LEVELS:
                    bad.append(f"{where} (unknown part {there!r})")
                elif there != here and LEVELS[there] >= LEVELS[here]:
                    bad.append(where)
            elif top in FRAMEWORKS and here not in FRAMEWORKS[top]:
                bad.append(where)
    return bad


def test_imports_point_one_way():
    assert forbidden_edges() == []


@pytest.mark.parametrize(
    "source, part, expected",
    [
        ("from unrolled.cli.common import x\n", "models", True),
        ("from unrolled.inference.runner import x\n", "methods", True),
        ("from unrolled.training import module\n", "evaluation", True),
        ("import lightning as L\n", "inference", True),
        ("def f():\n    from omegaconf import OmegaConf\n", "training", True),
        ("from unrolled import cli\n", "data", True),
        ("from unrolled.physics.fft import fft2c\n", "models", False),
        ("from unrolled.metrics import ssim_map\n", "losses", False),
        ("import lightning as L\n", "training", False),
    ],
)
def test_checker_sees_a_forbidden_edge(tmp_path, source, part, expected):
    """The checker finds a wrong edge (at module level or deferred) and passes a right one."""
    fake = tmp_path / "unrolled"
    (fake / part).mkdir(parents=True)
    (fake / part / "probe.py").write_text(source)
    assert bool(forbidden_edges(fake)) is expected
