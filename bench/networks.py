"""The networks the benchmarks compare, as Hydra overrides of ``conf/train.yaml``.

Every entry is composed on top of ``experiment=embedded`` (whose model settings
it overrides completely), so the speed/memory bench and the quality bench
build exactly the same network from the same name.
"""

from __future__ import annotations

MODELS: dict[str, list[str]] = {
    # fastMRI's published E2E-VarNet: 12 cascades of U-Net(18 channels, 4 pools),
    # sensitivity U-Net(8, 4); no checkpointing.
    "varnet": [
        "model=varnet_fastmri",
        "~model.denoiser",
        "model.num_cascades=12",
        "model.chans=18",
        "model.pools=4",
        "model.sens_chans=8",
        "model.sens_pools=4",
        "model.checkpointing=false",
    ],
    # 12 cascades like VarNet: the fastMRI experiments' model until commit 69f55e8.
    "ours_12x64x8": [
        "model.num_cascades=12",
        "model.denoiser.cnn.channels=64",
        "model.denoiser.cnn.num_blocks=8",
        "model.checkpointing=true",
    ],
    # The fastMRI experiments' model since 69f55e8 (checked by speed_memory.py).
    "ours_8x32x3": [
        "model.num_cascades=8",
        "model.denoiser.cnn.channels=32",
        "model.denoiser.cnn.num_blocks=3",
        "model.checkpointing=true",
    ],
    # The embedded experiment's own network (5 cascades, 24 channels, 3 blocks).
    "ours_5x24x3": [
        "model.num_cascades=5",
        "model.denoiser.cnn.channels=24",
        "model.denoiser.cnn.num_blocks=3",
        "model.checkpointing=false",
    ],
    "ours_5x24x3_ckpt": [
        "model.num_cascades=5",
        "model.denoiser.cnn.channels=24",
        "model.denoiser.cnn.num_blocks=3",
        "model.checkpointing=true",
    ],
    "ours_8x24x3": [
        "model.num_cascades=8",
        "model.denoiser.cnn.channels=24",
        "model.denoiser.cnn.num_blocks=3",
        "model.checkpointing=false",
    ],
    "ours_8x24x3_ckpt": [
        "model.num_cascades=8",
        "model.denoiser.cnn.channels=24",
        "model.denoiser.cnn.num_blocks=3",
        "model.checkpointing=true",
    ],
    "ours_5x24x3_grad": [
        "model/dc=gradient",
        "model.num_cascades=5",
        "model.denoiser.cnn.channels=24",
        "model.denoiser.cnn.num_blocks=3",
        "model.checkpointing=false",
    ],
    "ours_5x24x3_cg": [
        "model/dc=cg",
        "model.num_cascades=5",
        "model.denoiser.cnn.channels=24",
        "model.denoiser.cnn.num_blocks=3",
        "model.checkpointing=false",
    ],
    "ours_ms_6x16x2": [
        "model/denoiser=multiscale",
        "model.num_cascades=6",
        "model.denoiser.cnn.channels=16",
        "model.denoiser.cnn.num_blocks=2",
        "model.checkpointing=false",
    ],
}

BASE_EXPERIMENT = "experiment=embedded"


def compose(name: str, extra: list[str] = (), return_hydra_config: bool = False):
    """The composed ``train`` config of network ``name`` (no run directory set)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from unrolled.cli.common import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        return hydra_compose(
            "train",
            [BASE_EXPERIMENT, *MODELS[name], *extra],
            return_hydra_config=return_hydra_config,
        )


def build(name: str):
    """Instantiate the network ``name`` of :data:`MODELS`."""
    from hydra.utils import instantiate

    return instantiate(compose(name).model)


EXPERIMENT_MODELS = {
    "experiment=knee_multicoil_4x8x": "ours_8x32x3",
    "experiment=brain_multicoil_4x8x": "ours_8x32x3",
    "experiment=embedded": "ours_5x24x3",
}


def check_experiment_models() -> None:
    """The networks of :data:`EXPERIMENT_MODELS` must still be those experiments' models.

    Raises:
        AssertionError: an experiment's model changed; update :data:`MODELS`.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from unrolled.cli.common import CONFIG_DIR

    for experiment, name in EXPERIMENT_MODELS.items():
        GlobalHydra.instance().clear()
        with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
            model = hydra_compose("train", [experiment]).model
        ours = OmegaConf.to_container(compose(name).model)
        model = OmegaConf.to_container(model)
        assert model == ours, f"{name} {ours} != the model of {experiment} {model}"
