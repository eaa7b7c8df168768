"""train.init_weights: a state dict file from tmp_path loads with the head replaced; a file for another
architecture is one clear error."""

from __future__ import annotations

import pytest
import torch

from sluice.errors import InputError
from train.model import build_model
from train.weights import load_init_weights


def test_weights_load_except_the_head_which_is_replaced(tmp_path):
    torch.manual_seed(0)
    source = build_model({"arch": "resnet18"}, 1000, image_size=96)  # like a torchvision file: 1000-class head
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "w.pt")
    target = build_model({"arch": "resnet18"}, 2, image_size=96)
    head_before = target.fc.weight.detach().clone()
    n = load_init_weights(target, tmp_path / "w.pt", "resnet18")
    assert n == len([k for k in source.state_dict() if not k.startswith("fc.")])
    assert torch.equal(target.conv1.weight, source.conv1.weight)
    assert target.fc.weight.shape == (2, 512) and torch.equal(target.fc.weight, head_before)


def test_a_file_that_does_not_match_is_one_clear_error(tmp_path):
    torch.save(build_model({"arch": "rescnn", "width": 8}, 2).state_dict(), tmp_path / "small.pt")
    with pytest.raises(InputError, match=r"small.pt does not match train.arch 'resnet18' \(\d+ missing, \d+ unexpected"):
        load_init_weights(build_model({"arch": "resnet18"}, 2, image_size=96), tmp_path / "small.pt", "resnet18")
    torch.save(build_model({"arch": "resnet18"}, 2, image_size=32).state_dict(), tmp_path / "stem.pt")
    with pytest.raises(InputError, match=r"conv1.weight \(64, 3, 3, 3\) vs \(64, 3, 7, 7\)"):
        load_init_weights(build_model({"arch": "resnet18"}, 2, image_size=96), tmp_path / "stem.pt", "resnet18")
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(InputError, match="junk.pt: cannot load"):
        load_init_weights(build_model({"arch": "resnet18"}, 2), tmp_path / "junk.pt", "resnet18")
    with pytest.raises(InputError, match="does not exist"):
        load_init_weights(build_model({"arch": "resnet18"}, 2), tmp_path / "missing.pt", "resnet18")
