"""The airbench techniques: whitened first layer, identity init, BN momentum, bias learning rate, lookahead,
alternating flip."""

from __future__ import annotations

import pytest
import torch

from sluice.config import AugmentParams, TrainParams
from train.airbench import Lookahead, identity_init, init_whitening, prepare, whitening_layer, whitening_sample
from train.data import LoaderSpec, augment, load_data, normalize
from train.engine import make_optimizer
from train.model import build_model, load_model, save_model


def test_whitening_layer_decorrelates_the_training_patches(small_snapshot):
    data = load_data(small_snapshot, LoaderSpec())
    images = whitening_sample(data)
    model = build_model({"width": 8, "whiten": True}, 10)
    conv = whitening_layer(model)
    assert conv is not None and conv.out_channels == 24 and not conv.weight.requires_grad
    assert init_whitening(model, images)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(images, conv.weight[:12])  # the 12 eigen-directions (the rest: negatives)
    flat = out.transpose(0, 1).reshape(12, -1).double()
    cov = torch.cov(flat)
    # no correlation, and variance lambda / (lambda + eps) along each eigen-direction: 1 where lambda >> eps
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 12).double()
    eigenvalues = torch.linalg.eigvalsh(torch.cov(patches.T, correction=0))
    assert torch.allclose(cov.diag(), eigenvalues / (eigenvalues + 5e-4), rtol=1e-3)
    assert cov.diag().max() > 0.99
    assert (cov - torch.diag(cov.diag())).abs().max() < 1e-3
    assert torch.equal(conv.weight[12:], -conv.weight[:12])
    assert not init_whitening(build_model({"width": 8}, 10), images)  # no whitening layer: nothing to do


def test_whitened_model_trains_only_the_bias_and_reloads(tmp_path):
    model = build_model({"width": 4, "whiten": True}, 10).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    conv = whitening_layer(model)
    assert conv.bias.requires_grad and not conv.weight.requires_grad
    save_model(tmp_path / "m", model, {"arch": "rescnn", "width": 4, "depth": 1, "num_classes": 10, "whiten": True})
    loaded, config = load_model(tmp_path / "m")
    x = torch.randn(3, 3, 32, 32)
    assert config["whiten"] and torch.equal(loaded(x), model(x))


def test_lookahead_pulls_the_model_to_its_average_and_round_trips():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    la = Lookahead(model, total_steps=10, every=5)
    start = model.weight.detach().clone()
    for _ in range(4):
        with torch.no_grad():
            model.weight.add_(1.0)
        la.step()
    assert torch.allclose(model.weight, start + 4)  # between pulls the model moves freely
    with torch.no_grad():
        model.weight.add_(1.0)
    la.step()  # step 5 of 10: decay 0.95**5 * 0.5**3
    d = 0.95 ** 5 * 0.125
    assert torch.allclose(model.weight, start * d + (start + 5) * (1 - d))
    state = la.state_dict()
    other = Lookahead(model, total_steps=10, every=5)
    other.load_state_dict(state)
    assert other.steps == 5 and torch.equal(other.average["weight"], la.average["weight"])
    with torch.no_grad():
        model.weight.add_(1.0)
    la.finish()  # the model takes the average (the last free step is dropped)
    assert torch.equal(model.weight, la.average["weight"])


def test_alternating_flip_flips_each_image_every_other_epoch(small_snapshot):
    cfg = AugmentParams(crop_padding=0, flip=True, rotate_degrees=0, alternate_flip=True)
    data = load_data(small_snapshot, LoaderSpec(batch_size=300, augment=cfg))
    loader = data.train
    parity = loader.flip_parity
    assert parity is not None and 0.3 < parity.float().mean() < 0.7
    for epoch in range(3):
        loader.set_epoch(epoch)
        idx = loader.epoch_indices(epoch)[:300].sort().values
        x, _, _ = next(iter(loader))
        plain = data.train.split.images(idx)
        flip = parity[idx] ^ bool(epoch % 2)
        expected = torch.where(flip[:, None, None, None], plain.flip(2), plain)
        assert torch.equal(x, normalize(expected, data.mean, data.std))
    # the flips are a function of (image, epoch) only: complementary in consecutive epochs
    images = torch.arange(2 * 1 * 2 * 3, dtype=torch.uint8).view(2, 1, 2, 3)
    gen = torch.Generator().manual_seed(0)
    flips = torch.tensor([True, False])
    out = augment(images, gen, cfg, flips)
    assert torch.equal(out[0], images[0].flip(1)) and torch.equal(out[1], images[1])
    out = augment(images, gen, cfg, ~flips)
    assert torch.equal(out[0], images[0]) and torch.equal(out[1], images[1].flip(1))


@pytest.mark.slow
def test_whitened_model_prunes_quantizes_and_explains(small_snapshot):
    """The compress and insight stages handle the whitening conv like any other layer."""
    from train import quantize
    from train.gradcam import grad_cam
    from train.prune import structured_prune

    data = load_data(small_snapshot, LoaderSpec())
    model = build_model({"width": 8, "whiten": True, "lookahead": True}, 10)
    init_whitening(model, whitening_sample(data))
    model = model.to(memory_format=torch.channels_last).eval()
    example = quantize.example_input(data.manifest["image_shape"])
    x = next(iter(data.test))[0][:4]
    assert grad_cam(model, x)[0].shape[0] == 4
    program = quantize.export_program(quantize.quantize_ptq(model, [x], example), example)
    assert program.module()(x).shape == (4, 10)
    pruned = structured_prune(model, example, ratio=0.25, steps=1, log=lambda _: None)
    assert pruned(x).shape == (4, 10)


def test_identity_init_makes_each_3x3_conv_pass_its_first_channels_through():
    model = build_model({"arch": "airnet", "width": 4}, 10)
    whiten = whitening_layer(model).weight.clone()
    assert identity_init(model) == 6  # two 3x3 convs per block; the frozen whitening conv is left alone
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.requires_grad]
    for conv in convs:
        x = torch.randn(2, conv.in_channels, 5, 5)
        out = torch.nn.functional.conv2d(x, conv.weight, padding=1)
        n = min(conv.in_channels, conv.out_channels)
        assert torch.allclose(out[:, :n], x[:, :n])  # identity on the first channels
    widening = next(c for c in convs if c.out_channels > c.in_channels)
    assert widening.weight[widening.in_channels:].abs().sum() > 0  # the other filters keep their random init
    assert torch.equal(whitening_layer(model).weight, whiten)  # init_whitening's job, not this one's


def test_prepare_sets_bn_momentum_and_skips_inits_over_loaded_weights(small_snapshot):
    data = load_data(small_snapshot, LoaderSpec())
    cfg = TrainParams(arch="rescnn", width=4, whiten=True, dirac=True, bn_momentum=0.4)
    model = build_model(cfg, 10)
    prepare(model, cfg, data)
    assert {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.4}
    assert whitening_layer(model).weight.abs().sum() > 0
    conv = model.features[2]
    assert conv.weight[0, 0, 1, 1] == 1 and conv.weight[0, 1].abs().sum() == 0  # identity on channel 0
    fresh = build_model(cfg, 10)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    prepare(fresh, cfg.model_copy(update={"init_weights": "some/model"}), data)  # trained weights: kept as loaded
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())


def test_bias_lr_scale_speeds_up_only_the_batchnorm_parameters():
    model = build_model({"width": 4, "whiten": True, "bn_scale": False}, 10)
    opt = make_optimizer(model, 0.4, bias_lr_scale=16.0)
    bn = {id(p) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()
          if p.requires_grad}
    for group in opt.param_groups:
        ids = {id(p) for p in group["params"]}
        assert ids <= bn or not ids & bn
        assert group["lr"] == (6.4 if ids <= bn else 0.4)
        if ids <= bn:
            assert group["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(1 for p in model.parameters() if p.requires_grad)
    assert len(make_optimizer(model, 0.4).param_groups) == 2  # scale 1: the plain two groups
