"""Every config in conf/ composes, and every group option instantiates."""

from pathlib import Path

import pytest
from hydra.utils import instantiate

from unrolled.cli.common import CONFIG_DIR
from unrolled.cli.compose import compose_config

CONF = Path(CONFIG_DIR)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(overrides=(), name="train", tmp_path=None):
    return compose_config(name, overrides, output_dir=tmp_path or ".")


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_experiments_compose_and_instantiate(experiment, tmp_path):
    cfg = _compose([f"experiment={experiment}"], tmp_path=tmp_path)
    net = instantiate(cfg.model)
    assert net.num_cascades == cfg.model.num_cascades
    mask = instantiate(cfg.mask)
    assert callable(mask)
    instantiate(cfg.loss)
    instantiate(cfg.optimizer)(net.parameters())
    for c in cfg.callbacks.values():
        instantiate(c)
    for name, b in (cfg.baselines or {}).items():  # null: baselines switched off (smoke)
        assert instantiate(b) is not None, name


@pytest.mark.parametrize(
    "group",
    [
        "mask",
        "model/denoiser",
        "model/dc",
        "model/sens",
        "loss",
        "optimizer",
        "scheduler",
        "training",
    ],
)
def test_every_group_option_instantiates(group, tmp_path):
    import torch

    for option in _options(group):
        cfg = _compose([f"{group}={option}"], tmp_path=tmp_path)
        node = cfg
        for part in group.split("/"):
            node = node[part]
        obj = instantiate(node)
        if group == "optimizer":
            obj([torch.zeros(1, requires_grad=True)])
        elif group == "scheduler":
            opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
            obj(opt, total_steps=10)
        elif group == "training":  # a partial module: given the other groups' objects
            module = obj(
                net=instantiate(cfg.model),
                loss=instantiate(cfg.loss),
                optimizer=instantiate(cfg.optimizer),
                scheduler=instantiate(cfg.scheduler),
            )
            assert type(module).__name__ == node._target_.rsplit(".", 1)[1]
        elif group == "model/denoiser":
            net = instantiate(cfg.model)
            assert type(net.denoisers[0].cnn).__name__ == node.cnn._target_.rsplit(".", 1)[1]


@pytest.mark.parametrize("option", ["auto", "cpu", "gpu", "ddp"])
def test_trainer_and_logger_configs_compose(option, tmp_path):
    cfg = _compose([f"trainer={option}", "logger=csv"], tmp_path=tmp_path)
    assert cfg.trainer._target_ == "lightning.Trainer"
    if option in ("auto", "cpu"):
        trainer = instantiate(cfg.trainer, logger=[instantiate(cfg.logger.csv)])
        assert trainer.max_epochs == cfg.trainer.max_epochs


def test_every_cli_picks_its_device_automatically(tmp_path):
    """Training defaults to Lightning's accelerator "auto" (the GPU when one is visible, one
    device); every other CLI with a device option defaults to "auto" too."""
    import torch

    cfg = _compose([], tmp_path=tmp_path)
    assert cfg.trainer.accelerator == "auto" and cfg.trainer.devices == 1
    trainer = instantiate(cfg.trainer, logger=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert trainer.strategy.root_device.type == expected
    with_device = []
    for path in sorted(CONF.glob("*.yaml")):
        if path.stem in ("train", "site.example"):
            continue
        tool = _compose([], name=path.stem, tmp_path=tmp_path)
        if "device" in tool:
            with_device.append(path.stem)
            assert tool.device == "auto", path.name
    assert {"reconstruct", "robustness", "fuse"} <= set(with_device)


def test_command_line_style_overrides(tmp_path):
    cfg = _compose(
        ["model.num_cascades=8", "model/dc=cg", "mask.accelerations=[8]", "trainer.max_epochs=5"],
        tmp_path=tmp_path,
    )
    net = instantiate(cfg.model)
    assert net.num_cascades == 8 and type(net.dcs[0]).__name__ == "ProximalDC"
    assert list(instantiate(cfg.mask).accelerations) == [8]
    assert cfg.trainer.max_epochs == 5


def test_wandb_logger_is_offline_by_default(tmp_path):
    cfg = _compose([], tmp_path=tmp_path)
    assert cfg.logger.wandb.offline is True


def test_train_scores_cg_sense_with_the_weight_every_command_uses(tmp_path):
    """One CG-SENSE weight: `make train`'s baseline is conf/method/cg_sense.yaml's, untuned."""
    import yaml

    cfg = _compose([], tmp_path=tmp_path)
    method = yaml.safe_load((CONF / "method" / "cg_sense.yaml").read_text())
    assert cfg.cg_sense_lambda_grid is None
    assert cfg.baselines.cg_sense.lam == method["lam"] == 0.0172
