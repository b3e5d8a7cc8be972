"""The README's generated tables equal what bench/readme_tables.py makes of bench/results/."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_tables_are_generated_from_the_results():
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "readme_tables.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_every_number_of_the_methods_table_is_in_the_json():
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- generated: embedded_methods")[1].split("<!-- end generated")[0]
    data = json.loads((REPO / "bench" / "results" / "embedded_methods.json").read_text())
    psnr = {f"{m['metrics']['psnr']['mean']:.2f}" for m in data["methods"].values()}
    rows = [line for line in block.splitlines() if line.startswith("| ") and "dB" not in line]
    assert len(rows) == len(data["methods"])
    assert {row.split("|")[2].strip(" *").split(" ")[0] for row in rows} == psnr
    assert "load average" in block and "bench/results/embedded_methods.json" in block


def test_the_make_train_table_is_the_recorded_run():
    """The README's `make train` numbers are those of bench/results/make_train.json, with the
    run's epochs, machine, load and date beside them, and the CG-SENSE weight of the YAML."""
    import yaml

    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- generated: make_train")[1].split("<!-- end generated")[0]
    data = json.loads((REPO / "bench" / "results" / "make_train.json").read_text())
    for name, m in data["metrics"].items():
        assert f"{m['psnr']:.2f}" in block and f"{m['ssim']:.4f}" in block, name
    assert f"{data['epochs']} of {data['max_epochs']} epochs" in block
    assert "load average" in block and data["date"] in block
    lam = yaml.safe_load((REPO / "conf" / "method" / "cg_sense.yaml").read_text())["lam"]
    assert data["cg_sense_lam"] == lam and f"lam {lam}" in block


def test_every_figure_in_docs_states_its_source():
    listed = (REPO / "docs" / "FIGURES.md").read_text()
    for png in sorted((REPO / "docs").glob("*.png")):
        assert f"`{png.name}`" in listed, f"{png.name} is not in docs/FIGURES.md"
