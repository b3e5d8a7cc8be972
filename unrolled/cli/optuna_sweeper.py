"""An Optuna sweeper whose study, stored on disk, continues when the same command is run again.

Hydra's ``hydra-optuna-sweeper`` (1.3, optuna 2.10) opens the study with ``load_if_exists``
but then runs ``n_trials`` *more* trials and numbers their jobs from 0 again, so a second start
in the same ``hydra.sweep.dir`` writes new trials into the old job directories. This subclass
changes only what happens before the plugin's own ``sweep`` loop runs:

* trials left ``RUNNING`` by a launcher that was killed are marked ``FAIL`` and their
  parameters enqueued again (a new trial with user attribute ``retry_of``), so they are retried;
* ``n_trials`` counts the whole study: trials that finished (``COMPLETE``, ``PRUNED``, ``FAIL``
  other than the interrupted ones) are subtracted, so only the rest run;
* new jobs are numbered after the study's trials and after every job directory already in the
  sweep directory, so no directory is written twice (job number = trial number as long as the
  sweep directory holds only this study); each trial records its job in ``hydra_job_num``;
* a seeded sampler is reseeded when the study already has trials: replaying the seed would
  draw the first trials' parameters again.

Hydra only loads sweepers from the ``hydra_plugins`` package: the class registered there is
``hydra_plugins.unrolled_optuna_sweeper.ResumableOptunaSweeper`` (a subclass of this one).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import optuna
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
from optuna.trial import TrialState, create_trial

log = logging.getLogger(__name__)

RETRY_OF = "retry_of"
JOB_NUM = "hydra_job_num"
SQLITE = "sqlite:///"


class ResumableOptunaSweeper(OptunaSweeperImpl):
    """Hydra's Optuna sweeper, continuing an existing study instead of adding ``n_trials``.

    Takes the arguments of ``hydra_plugins.hydra_optuna_sweeper.OptunaSweeper``
    (``hydra.sweeper`` in the config). ``storage`` should be on disk, e.g.
    ``sqlite:///${hydra.sweep.dir}/optuna.db`` (its folder is created), with a fixed
    ``study_name``; with ``storage: null`` nothing is continued but job directories are still
    never reused.

    Raises:
        ValueError: from optuna, if the stored study's directions differ from ``direction``.
    """

    def sweep(self, arguments: list[str]) -> None:
        if isinstance(self.storage, str) and self.storage.startswith(SQLITE):
            Path(self.storage[len(SQLITE) :]).parent.mkdir(parents=True, exist_ok=True)
        next_trial = 0
        if self.storage is not None:
            next_trial = self._continue_study()
        self.job_idx = max(next_trial, self._next_free_job_dir())
        log.info(f"Trials to run: {self.n_trials}, first job number: {self.job_idx}")
        super().sweep(arguments)

    def _continue_study(self) -> int:
        """Retry interrupted trials, shrink ``n_trials`` to what is left; the next trial number."""
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            directions=self._get_directions(),
            load_if_exists=True,
        )
        trials = study.get_trials(deepcopy=False)
        retried = {t.user_attrs[RETRY_OF] for t in trials if RETRY_OF in t.user_attrs}
        for trial in trials:
            if trial.state == TrialState.RUNNING:
                study.tell(trial.number, state=TrialState.FAIL)
                study.add_trial(
                    create_trial(
                        state=TrialState.WAITING,
                        system_attrs={"fixed_params": dict(trial.params)},  # = enqueue_trial
                        user_attrs={RETRY_OF: trial.number},
                    )
                )
                retried.add(trial.number)
                log.warning(f"Trial {trial.number} was interrupted: retrying {trial.params}")
        finished = [
            t
            for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and t.number not in retried)
        ]
        if trials:
            log.info(
                f"Continuing study {self.study_name!r}: {len(finished)} of {self.n_trials} "
                "trials finished"
            )
            if not isinstance(self.sampler, functools.partial):  # GridSampler: no RNG
                self.sampler.reseed_rng()
        self.n_trials = max(0, self.n_trials - len(finished))
        return len(trials)

    def _next_free_job_dir(self) -> int:
        sweep_dir = Path(self.config.hydra.sweep.dir)
        nums = [int(p.name) for p in sweep_dir.glob("*") if p.is_dir() and p.name.isdigit()]
        return max(nums, default=-1) + 1

    def _configure_trials(self, trials: list[Any], *args: Any, **kwargs: Any) -> Any:
        overrides = super()._configure_trials(trials, *args, **kwargs)
        for i, trial in enumerate(trials):  # launched next with initial_job_idx=self.job_idx
            trial.set_user_attr(JOB_NUM, self.job_idx + i)
        return overrides
