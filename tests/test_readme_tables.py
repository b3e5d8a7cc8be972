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
