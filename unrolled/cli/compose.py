"""Compose the Hydra configs of ``conf/`` outside the command line (tests, notebooks, scripts)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from unrolled.cli.common import CONFIG_DIR


def compose_config(
    name: str = "train",
    overrides: Sequence[str] = (),
    output_dir: str | Path = ".",
    root_dir: str | Path | None = None,
) -> DictConfig:
    """The config ``name`` with command-line style ``overrides``, ready to instantiate.

    Outside ``@hydra.main`` there is no Hydra runtime, so the ``${hydra:...}``
    interpolations of ``conf/paths`` are replaced: ``paths.output_dir`` by
    ``output_dir`` and ``paths.root_dir`` (under which ``data/`` and ``.cache/``
    live) by ``root_dir`` (default: ``output_dir``).

    Example::

        cfg = compose_config("train", ["model.num_cascades=2", "logger=csv"], "/tmp/run")
        datamodule, module, trainer = unrolled.cli.train.build(cfg)
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        cfg = compose(config_name=name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # lets the remaining ${hydra:...} resolve
    with open_dict(cfg):
        if "paths" in cfg:
            cfg.paths.output_dir = str(output_dir)
            cfg.paths.root_dir = str(root_dir if root_dir is not None else output_dir)
        del cfg.hydra
    GlobalHydra.instance().clear()
    return cfg


def compose_option(group: str, name: str) -> DictConfig:
    """One option of a config group (e.g. ``("method", "zeroshot")``), its defaults composed.

    What ``OmegaConf.load("conf/<group>/<name>.yaml")`` gives for a self-contained file, also
    for one that composes others through a defaults list (``conf/method/zeroshot.yaml`` takes
    its network from ``conf/model/``). The result is not in struct mode (keys may be added).

    Example::

        cfg = compose_option("method", "zeroshot")
        cfg.net.num_cascades = 1
        method = hydra.utils.instantiate(cfg)

    Raises:
        hydra.errors.MissingConfigException: no ``conf/<group>/<name>.yaml``.
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        cfg = compose(config_name=f"{group}/{name}")
    GlobalHydra.instance().clear()
    node = OmegaConf.select(cfg, group.replace("/", "."))
    OmegaConf.set_struct(node, False)
    return node
