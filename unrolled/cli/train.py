"""``unrolled-train``: train, test, and compare with classical baselines (Hydra entry point).

Examples::

    unrolled-train                                   # embedded data, CPU, ~10 minutes
    unrolled-train model.num_cascades=8 model/dc=cg mask.accelerations=[8] trainer.max_epochs=5
    unrolled-train experiment=knee_multicoil_4x8x data.root=/data/knee trainer=ddp
    unrolled-train training=ssdu training.split.ratio=0.4   # self-supervised (SSDU)
"""

from __future__ import annotations

import itertools
import logging
import sys
import warnings
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from unrolled.cli.common import CONFIG_DIR, check_mask_configs, clean_errors, entry_point
from unrolled.data.checkpoint import read_checkpoint
from unrolled.evaluation.compare import (
    print_table,
    save_comparison_figure,
    tune_parameter,
    write_metrics_json,
)
from unrolled.inference.runner import evaluate_method, summarise
from unrolled.training.module import ReconModule

log = logging.getLogger("unrolled.train")
# Epoch metrics are gathered across ranks in the module itself (whole volumes per rank),
# so Lightning's advice to reduce them again with sync_dist does not apply.
warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed")


def resume_path(resume: str | None, output_dir: Path) -> str | None:
    """The checkpoint to resume from.

    ``"auto"``: of the run directory's checkpoints (``checkpoints/*.ckpt`` and Lightning's
    SLURM requeue checkpoints ``hpc_ckpt_N.ckpt``), the one with the highest global step,
    read from each file whatever its name (ties: the newest file); ``None`` when there is
    none. Unreadable files (e.g. cut short by a kill) are skipped with a warning. A path:
    that checkpoint. ``None``: start afresh.

    Raises:
        FileNotFoundError: ``resume`` is a path that is not a file.
    """
    if resume != "auto":
        if resume is not None and not Path(resume).is_file():
            raise FileNotFoundError(f"{resume}: checkpoint to resume from not found")
        return resume
    found = [*(output_dir / "checkpoints").glob("*.ckpt"), *output_dir.glob("hpc_ckpt_*.ckpt")]
    steps = {}
    for path in found:
        try:
            steps[path] = checkpoint_step(path)
        except Exception as e:  # noqa: BLE001 - any unreadable file is skipped
            log.warning("not resuming from %s: unreadable (%s: %s)", path, type(e).__name__, e)
    if not steps:
        return None
    newest = max(steps, key=lambda p: (steps[p], p.stat().st_mtime))
    log.info("resuming from %s (global step %d)", newest, steps[newest])
    return str(newest)


def checkpoint_step(path: Path) -> int:
    """The ``global_step`` stored in a Lightning checkpoint (memory-mapped: cheap for big files).

    Raises:
        KeyError: no ``global_step`` in the file.
        DataError: an unreadable file.
    """
    ckpt = read_checkpoint(path, mmap=True)
    return int(ckpt["global_step"])


def build(cfg: DictConfig, datamodule=None):
    """Instantiate the data module (unless given), Lightning module and trainer of a config.

    The Lightning module is the ``training`` group's (supervised by default, ``training=ssdu``
    for self-supervised training); configs without that group train supervised.
    """
    datamodule = datamodule if datamodule is not None else instantiate(cfg.data)
    # conf/training/: the module class and its own arguments (supervised, ssdu), as a partial
    make_module = instantiate(cfg.training) if cfg.get("training") else ReconModule
    module = make_module(
        net=instantiate(cfg.model),
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    if not cfg.trainer.get("enable_progress_bar", True):  # the switch wins over the group
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return datamodule, module, trainer


def run(cfg: DictConfig) -> tuple[dict[str, dict[str, float]], float | None]:
    """The whole job.

    Returns:
        ``({"unrolled" | baseline: {"psnr", "ssim", "nmse"}} on the test split,
        best validation SSIM)``.
    """
    output_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("synth"):
        from unrolled.data.synth import ensure_dataset

        ensure_dataset(cfg.data.root, **OmegaConf.to_container(cfg.synth, resolve=True))
    datamodule = instantiate(cfg.data)
    datamodule.check()  # bad input fails here, before loggers and checkpoints exist
    datamodule, module, trainer = build(cfg, datamodule)
    for logger in trainer.loggers:  # the resolved config: W&B run config, CSV hparams.yaml
        logger.log_hyperparams(module.config)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_path(cfg.resume, output_dir))
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    results = {}
    # Rank 0 alone from here on: no collective below (the others have returned and exited).
    if trainer.is_global_zero:
        results = compare_with_baselines(cfg, datamodule, module, output_dir)
    score = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
    return results, (float(score) if score is not None else None)


def limited(loader_fn, limit):
    """``loader_fn`` cut as Lightning's ``limit_*_batches`` cuts it (int: batches, float: fraction).

    Baselines are tuned and scored on the same batches as the network, so that a small trial
    (``trainer.limit_val_batches=2``) stays small and the comparison stays fair.
    """
    if limit is None:
        return loader_fn

    def batches():
        loader = loader_fn()
        if isinstance(limit, float) and limit <= 1.0:
            count = int(len(loader) * limit)
        else:
            count = int(limit)
        return itertools.islice(loader, count)

    return batches


def compare_with_baselines(cfg, datamodule, module, output_dir: Path):
    """Score the baselines on the test split next to the trained network; write results.

    Runs in one process (rank 0 under DDP), on every volume of the splits.
    """
    device = module.device
    test_batches = limited(
        lambda: datamodule.whole_dataloader("test"), cfg.trainer.get("limit_test_batches")
    )
    methods = {}
    tuning = cfg.get("baseline_tuning") or {}
    for name, bcfg in (cfg.get("baselines") or {}).items():
        tune = tuning.get(name)
        if tune is None or not tune.get("grid"):
            methods[name] = instantiate(bcfg)
            continue
        first = instantiate(bcfg)
        shared = {attr: getattr(first, attr) for attr in tune.get("share") or []}

        def make(value, bcfg=bcfg, shared=shared, parameter=str(tune.parameter)):
            return instantiate(bcfg, **{parameter: value}, **shared)

        value, scores = tune_parameter(
            make,
            list(tune.grid),
            limited(
                lambda: datamodule.whole_dataloader("val"), cfg.trainer.get("limit_val_batches")
            ),
            device=device,
        )
        label = tune.get("label") or f"{name} {tune.parameter}"
        log.info("%s on the validation split: %s (SSIM %s)", label, value, scores)
        methods[name] = make(value)
    methods["unrolled"] = module.net
    results = {}
    for name, method in methods.items():
        if name == "unrolled" and "test" in getattr(module, "volume_metrics", {}):
            volumes = module.volume_metrics["test"]
        else:
            volumes = evaluate_method(method, test_batches(), device)
        results[name] = summarise(volumes)
    write_metrics_json(results, output_dir / "metrics.json")
    batches = list(test_batches())
    batch = batches[len(batches) // 2]  # a slice from mid-volume rather than the skull base
    figure = output_dir / "figures" / "test_comparison.png"
    save_comparison_figure(methods, batch, figure, device=device)
    print_table(results, f"Test split ({len(volumes)} volumes) - run directory {output_dir}")
    return results


def _finish_wandb(exit_code: int) -> None:
    """End the job's W&B run, so that the next job of an in-process multirun starts its own."""
    wandb = sys.modules.get("wandb")  # imported by WandbLogger only
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)


@entry_point("unrolled-train", __doc__, "train", extra_groups=("hparams_search",))
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@clean_errors
def main(cfg: DictConfig) -> float | None:
    """Train; returns the best validation SSIM (the objective of Hydra sweepers)."""
    torch.set_float32_matmul_precision("high")
    check_mask_configs(cfg)  # an unmeetable mask fails before data are generated or read
    try:
        _, best_val_ssim = run(cfg)
    except BaseException:
        _finish_wandb(exit_code=1)
        raise
    _finish_wandb(exit_code=0)
    log.info("run directory: %s", HydraConfig.get().runtime.output_dir)
    return best_val_ssim


if __name__ == "__main__":
    main()
