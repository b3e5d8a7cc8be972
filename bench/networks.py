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
    # The model of conf/experiment/knee_multicoil_4x8x.yaml (checked by speed_memory.py).
    "ours_knee": [
        "model.num_cascades=12",
        "model.denoiser.cnn.channels=64",
        "model.denoiser.cnn.num_blocks=8",
        "model.checkpointing=true",
    ],
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


def check_knee_model() -> None:
    """``ours_knee`` must be the network of ``experiment=knee_multicoil_4x8x``.

    Raises:
        AssertionError: the knee experiment's model changed; update :data:`MODELS`.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from unrolled.cli.common import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        knee = hydra_compose("train", ["experiment=knee_multicoil_4x8x"]).model
    ours = compose("ours_knee").model
    knee, ours = OmegaConf.to_container(knee), OmegaConf.to_container(ours)
    assert knee == ours, f"ours_knee {ours} != the knee experiment's model {knee}"
