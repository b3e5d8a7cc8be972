"""A checkpoint's network config names only this package's constructors; files are read safely."""

import pytest
import torch

from unrolled.data.checkpoint import network_state, read_checkpoint
from unrolled.data.errors import DataError
from unrolled.inference.checkpoint import build_from_config, load_network


def test_config_builds_the_network_it_describes():
    net = build_from_config(
        {
            "_target_": "unrolled.models.denoisers.ResNet",
            "in_channels": 2,
            "out_channels": 2,
            "channels": 4,
            "num_blocks": 1,
        }
    )
    assert type(net).__name__ == "ResNet"
    assert net(torch.zeros(1, 2, 8, 8)).shape == (1, 2, 8, 8)


@pytest.mark.parametrize("target", ["os.system", "builtins.eval", "unrolled.models.nowhere.Net"])
def test_a_foreign_or_missing_target_is_refused(tmp_path, target):
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"unrolled_config": {"model": {"_target_": target, "command": "true"}}}, ckpt)
    with pytest.raises(DataError, match=r"evil\.ckpt: the network config names"):
        load_network(ckpt)


def test_reader_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"none\.ckpt: checkpoint not found"):
        read_checkpoint(tmp_path / "none.ckpt")
    (tmp_path / "text.ckpt").write_text("hello")
    with pytest.raises(DataError, match=r"text\.ckpt: not a checkpoint \(it is not a file"):
        read_checkpoint(tmp_path / "text.ckpt", check_format=True)
    with pytest.raises(DataError, match=r"text\.ckpt: not a readable checkpoint \("):
        read_checkpoint(tmp_path / "text.ckpt")


def test_network_state_strips_the_module_prefix():
    w = torch.ones(2)
    assert network_state({"state_dict": {"net.a": w, "loss.b": w}}) == {"a": w}
    assert network_state({"a": w}) == {"a": w}
