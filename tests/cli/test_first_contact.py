"""The command-line tools as a new user meets them: --help, Ctrl-C, mistakes, clutter."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from unittest import mock

import h5py
import numpy as np
import pytest

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
HYDRA_TOOLS = ["train", "reconstruct", "evaluate", "robustness", "fuse", "synth", "convert"]
TINY_TRAIN = [
    "synth=null",
    "logger=csv",
    "model.num_cascades=1",
    "model.denoiser.cnn.channels=4",
    "model.denoiser.cnn.num_blocks=1",
    "data.batch_size=1",
    "trainer.enable_progress_bar=false",
    "~callbacks.progress_bar",
    "~callbacks.image_logger",
]


def _main(tool: str, *argv: str) -> tuple[int, str, str]:
    """``unrolled-TOOL ARGV`` in this process: ``(exit status, stdout, stderr)``."""
    from hydra.core.global_hydra import GlobalHydra

    module = importlib.import_module(f"unrolled.cli.{tool.replace('-', '_')}")
    out, err = io.StringIO(), io.StringIO()
    GlobalHydra.instance().clear()
    prog = str(BIN / f"unrolled-{tool}")
    with (
        mock.patch.object(sys, "argv", [prog, *argv]),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            module.main()
            code = 0
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# ---------------------------------------------------------------- --help


@pytest.mark.parametrize("tool", HYDRA_TOOLS)
def test_help_says_what_the_tool_does_with_an_example_and_its_options(tool):
    code, out, _ = _main(tool, "--help")
    assert code == 0
    head = out.splitlines()[:12]
    assert head[0].startswith(f"`unrolled-{tool}`: ")  # what it does, first
    assert any(line.strip().startswith(f"unrolled-{tool} ") for line in head), head  # an example
    yaml_text = (REPO / "conf" / f"{tool}.yaml").read_text()
    comments = [ln for ln in yaml_text.splitlines() if ln.lstrip().startswith("# ")]
    assert comments and all(c in out for c in comments)  # the YAML's own comments


def test_help_lists_only_the_groups_a_tool_uses():
    _, out, _ = _main("reconstruct", "--help")
    groups = out.split("Config groups")[1].split("\n\n")[0]
    listed = {line.split(":")[0].strip() for line in groups.splitlines()[1:]}
    assert listed == {"method", "mask"}
    assert "cs_wavelet" in groups and "equispaced_fraction" in groups
    _, out, _ = _main("train", "--help")
    groups = out.split("Config groups")[1].split("\n\n")[0]
    assert "model/dc: cg, gradient, hard" in groups and "trainer: auto, cpu, ddp, gpu" in groups


def test_sweep_report_help_has_an_example():
    proc = subprocess.run(
        [str(BIN / "unrolled-sweep-report"), "--help"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0
    assert "one table of the jobs of a multirun sweep" in proc.stdout
    assert "unrolled-sweep-report multirun/" in proc.stdout


def test_a_group_the_tool_does_not_use_is_an_error(tmp_path):
    code, _, err = _main(
        "reconstruct", "+model/dc=cg", f"input_dir={tmp_path}", f"output_dir={tmp_path / 'o'}"
    )
    assert code == 2
    (line,) = _error_lines(err)
    assert "+model/dc=cg" in line and "method, mask" in line
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- Ctrl-C


def test_interrupt_wrapper_exits_130_with_one_line(capsys):
    from unrolled.cli.common import entry_point

    def work():
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("not interrupted")

    def work_swallowing_it():  # what Lightning does: catch KeyboardInterrupt, sys.exit(1)
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            sys.exit(1)

    # A shell's background job (CI may start us as one) inherits SIGINT ignored: give this
    # test the handler an interactive terminal has, and put back what it found afterwards.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for fn in (work, work_swallowing_it):
            with pytest.raises(SystemExit) as exc:
                entry_point("unrolled-x", "doc")(fn)()
            assert exc.value.code == 130
            assert capsys.readouterr().err.strip() == "unrolled-x: interrupted"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, inherited)


@pytest.mark.slow
def test_ctrl_c_during_training_exits_130_without_a_traceback(tiny_root, tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            str(BIN / "unrolled-train"),
            *TINY_TRAIN,
            f"data.root={tiny_root}",
            f"hydra.run.dir={tmp_path / 'run'}",
            "trainer.max_epochs=1000",
            "cg_sense_lambda_grid=null",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # a terminal's job receives Ctrl-C; a background job (CI may start us as one) inherits
        # SIGINT ignored, and Python then installs no KeyboardInterrupt handler at all
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    started = threading.Event()
    stdout: list[str] = []

    def read():
        for line in proc.stdout:
            stdout.append(line)
            if "Trainable params" in line:  # Lightning's model summary: fitting has begun
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(600), "training did not start: " + "".join(stdout)[-2000:]
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        err = proc.stderr.read()
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert err.rstrip().splitlines()[-1] == "unrolled-train: interrupted"
    assert "Traceback" not in err


# ---------------------------------------------------------------- checkpoints that are not


@pytest.mark.parametrize("which", ["readme", "h5", "empty"])
def test_a_file_that_is_not_a_checkpoint_gets_one_line(tiny_root, tmp_path, which):
    path = {
        "readme": REPO / "README.md",
        "h5": next((tiny_root / "test").glob("*.h5")),
        "empty": tmp_path / "empty.ckpt",
    }[which]
    path.touch()
    out = tmp_path / "out"
    code, _, err = _main(
        "reconstruct", f"checkpoint={path}", f"input_dir={tiny_root / 'test'}", f"output_dir={out}"
    )
    assert code == 1
    (line,) = _error_lines(err)
    expected = {
        "readme": "not a file written by torch.save",
        "h5": "it is an HDF5 file",
        "empty": "the file is empty",
    }[which]
    assert line.startswith(f"error: {path}: not a checkpoint (") and expected in line
    assert "weights_only" not in err and "file an issue" not in err
    assert not out.exists()


# ---------------------------------------------------------------- mistakes that are errors


def _fake_sweep(root: Path) -> Path:
    """A multirun with two finished jobs that logged val/ssim and test metrics."""
    (root / "multirun.yaml").parent.mkdir(parents=True)
    (root / "multirun.yaml").write_text("{}\n")
    for job, ssim in ((0, 0.7), (1, 0.8)):
        d = root / str(job)
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text(f"- model.num_cascades={job + 1}\n")
        (d / "csv" / "version_0").mkdir(parents=True)
        (d / "csv" / "version_0" / "metrics.csv").write_text(f"epoch,step,val/ssim\n0,9,{ssim}\n")
        test = {"unrolled": {"psnr": 25.0, "ssim": ssim, "nmse": 0.02}}
        (d / "metrics.json").write_text(json.dumps(test))
    return root


def test_sweep_report_refuses_a_metric_no_job_logged(tmp_path):
    sweep = _fake_sweep(tmp_path / "sweep")
    code, _, err = _main("sweep-report", str(sweep), "--metric", "test/unrolled/psnrr")
    assert code == 1
    (line,) = _error_lines(err)
    assert "'test/unrolled/psnrr'" in line and "test/unrolled/psnr" in line and "val/ssim" in line
    assert not (sweep / "sweep_report.md").exists()
    code, out, _ = _main("sweep-report", str(sweep), "--metric", "test/unrolled/psnr", "--no-plot")
    assert code == 0 and "model.num_cascades=2" in out


def test_sweep_report_refuses_a_single_run(tmp_path):
    run = _fake_sweep(tmp_path / "sweep") / "1"
    code, _, err = _main("sweep-report", str(run))
    assert code == 1
    (line,) = _error_lines(err)
    assert line.startswith(f"error: {run}: is the directory of a single run")
    assert not (run / "sweep_report.md").exists()


def test_fuse_refuses_an_output_that_is_a_directory(tiny_root, tmp_path):
    files = sorted((tiny_root / "train").glob("*.h5"))
    code, _, err = _main("fuse", f"inputs=[{files[0]},{files[1]}]", f"output={tmp_path}")
    assert code == 1
    (line,) = _error_lines(err)
    assert "is a directory" in line and f"output={tmp_path}/fused.h5" in line


def _eval_folders(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    gt = np.abs(rng.normal(size=(2, 24, 20))).cumsum(-1).astype(np.float32)
    for sub, key, data in (("t", "reconstruction_rss", gt), ("p", "reconstruction", gt * 0.9)):
        (root / sub).mkdir(parents=True)
        with h5py.File(root / sub / "v1.h5", "w") as hf:
            hf.create_dataset(key, data=data)
    return root / "t", root / "p"


def test_evaluate_refuses_to_overwrite_metrics_without_overwrite_true(tmp_path):
    target, pred = _eval_folders(tmp_path)
    args = [f"target_dir={target}", f"predictions_dir={pred}"]
    assert _main("evaluate", *args)[0] == 0
    (pred / "metrics.json").write_text("my notes\n")  # what a user may have put there
    code, _, err = _main("evaluate", *args)
    assert code == 1
    (line,) = _error_lines(err)
    assert "metrics.json and metrics_per_volume.csv exist" in line and "overwrite=true" in line
    assert (pred / "metrics.json").read_text() == "my notes\n"
    assert _main("evaluate", *args, "overwrite=true")[0] == 0
    assert "psnr" in json.loads((pred / "metrics.json").read_text())["metrics"]


# ---------------------------------------------------------------- no clutter


def test_reconstruct_evaluate_fuse_leave_no_run_folders(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    test = tiny_root / "test"
    ok = _main("reconstruct", "method=zero_filled", f"input_dir={test}", "output_dir=out")
    assert ok[0] == 0, ok[2]
    assert _main("evaluate", f"target_dir={test}", "predictions_dir=out")[0] == 0
    failed = _main("reconstruct", "method=zero_filled", "input_dir=nowhere", "output_dir=out2")
    assert failed[0] == 1
    assert _main("fuse", "inputs=[nowhere.h5,nowhere2.h5]", "output=f.h5")[0] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no outputs/, .hydra/, *.log


# ---------------------------------------------------------------- small trials stay small


def test_limited_cuts_like_lightning():
    from torch.utils.data import DataLoader

    from unrolled.cli.train import limited

    loader = lambda: DataLoader(list(range(10)), batch_size=1)  # noqa: E731
    assert len(list(limited(loader, None)())) == 10
    assert len(list(limited(loader, 2)())) == 2
    assert len(list(limited(loader, 0.5)())) == 5
    assert len(list(limited(loader, 1.0)())) == 10


@pytest.mark.slow
def test_baselines_follow_the_batch_limits_and_can_be_switched_off(tiny_root, tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}

    def train(name, *overrides):
        proc = subprocess.run(
            [
                str(BIN / "unrolled-train"),
                *TINY_TRAIN,
                f"data.root={tiny_root}",
                f"hydra.run.dir={tmp_path / name}",
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=1",
                *overrides,
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc, json.loads((tmp_path / name / "metrics.json").read_text())

    proc, metrics = train(
        "limited",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "cg_sense_lambda_grid=[0.003,0.03]",
    )
    assert set(metrics) == {"zero_filled", "cg_sense", "unrolled"}
    assert "CG-SENSE lambda on the validation split" in proc.stderr + proc.stdout
    _, metrics = train("off", "baselines=null")
    assert set(metrics) == {"unrolled"}
