"""Issue 13 section 5: an Optuna search killed mid-way continues when run again.

The study is stored in ``hydra.sweep.dir/optuna.db`` (SQLite). The launching process is
SIGKILLed (its whole process group) once the first trial is complete; the same command is run
again and must finish the study: 3 COMPLETE trials in all, trial 0 kept (same parameters,
value, untouched job directory), the interrupted trial retried with its parameters, no job
directory written twice, no parameters drawn twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import optuna
import pytest
import yaml
from helpers.process_group import run_group
from test_sweeps import BIN, TINY  # tests/cli is on sys.path (rootdir-less test dirs)

N_TRIALS = 3


def _study(sweep):
    """The sweep's study (named after task_name: ``embedded`` under experiment=embedded)."""
    return optuna.load_study(study_name="embedded", storage=f"sqlite:///{sweep}/optuna.db")


@pytest.mark.slow
def test_killed_optuna_search_continues(tiny_root, tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        str(BIN / "unrolled-train"),
        "-m",
        *TINY,
        f"data.root={tiny_root}",
        f"hydra.sweep.dir={sweep}",
        "+hparams_search=optuna",
        f"hydra.sweeper.n_trials={N_TRIALS}",
        "hydra.sweeper.n_jobs=1",
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}

    # first start: killed (SIGKILL, whole process group) once job 1 started, i.e. trial 0 was
    # told COMPLETE (n_jobs=1: tell, ask, launch). Polling the directory, not the database:
    # opening the storage while the launcher creates it races on its tables.
    t0 = time.monotonic()
    log = tmp_path / "first_start.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=out, start_new_session=True, env=env, cwd=tmp_path
        )
    try:
        while not (sweep / "1" / ".hydra").is_dir():
            assert proc.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() - t0 < 900, "no trial completed in 900 s"
            time.sleep(0.5)
        time.sleep(1)  # into trial 1 (a trial takes a few seconds here)
        assert proc.poll() is None, "the search ended before it was killed"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    t_kill = time.monotonic() - t0
    before = _study(sweep).get_trials()
    first = before[0]
    assert first.state == optuna.trial.TrialState.COMPLETE
    assert first.user_attrs["hydra_job_num"] == 0
    states_before = [t.state.name for t in before]
    assert len([s for s in states_before if s == "COMPLETE"]) < N_TRIALS
    job0 = sweep / "0"
    files0 = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in job0.rglob("*") if p.is_file()}
    assert job0 / "metrics.json" in files0

    # the same command again: the study continues
    t1 = time.monotonic()
    rerun = run_group(cmd, timeout=900, env=env, cwd=tmp_path)
    t_rerun = time.monotonic() - t1
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-4000:]

    trials = _study(sweep).get_trials()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    print(f"first start killed after {t_kill:.0f} s with states {states_before}")
    print(f"rerun {t_rerun:.0f} s, states now {[t.state.name for t in trials]}")
    for t in trials:
        print(t.number, t.state.name, t.value, t.params, t.user_attrs)
    assert len(complete) == N_TRIALS
    assert (complete[0].number, complete[0].params, complete[0].value) == (
        0,
        first.params,
        first.value,
    )
    # trial 0's job directory untouched
    assert {
        p: (p.stat().st_mtime_ns, p.read_bytes()) for p in job0.rglob("*") if p.is_file()
    } == files0
    # every trial launched has its own job directory, which ran the trial's parameters (a trial
    # killed between Optuna's ask and the launch has none)
    jobs = [t.user_attrs["hydra_job_num"] for t in trials if "hydra_job_num" in t.user_attrs]
    assert len(jobs) == len(set(jobs))
    dirs = {int(p.name) for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()}
    assert {t.user_attrs["hydra_job_num"] for t in complete} <= dirs <= set(jobs)
    for t in complete:
        overrides = yaml.safe_load(
            (sweep / str(t.user_attrs["hydra_job_num"]) / ".hydra" / "overrides.yaml").read_text()
        )
        assert f"model/dc={t.params['model/dc']}" in overrides
        assert any(o.startswith(f"optimizer.lr={t.params['optimizer.lr']}") for o in overrides)
    # trials left running by the killed launcher are FAIL and retried with their parameters
    for t in trials[: len(before)]:
        if before[t.number].state == optuna.trial.TrialState.RUNNING:
            assert t.state == optuna.trial.TrialState.FAIL
            (retry,) = [r for r in trials if r.user_attrs.get("retry_of") == t.number]
            # (a trial killed while its parameters were drawn keeps those it had; the rest are
            # drawn for the retry)
            assert retry.params.items() >= t.params.items()
            assert retry.state == optuna.trial.TrialState.COMPLETE
    # the reseeded sampler does not draw trial 0's learning rate again
    lrs = [t.params["optimizer.lr"] for t in complete]
    assert len(set(lrs)) == N_TRIALS
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(t.value for t in complete))
