import copy

import pytest
import torch
from torch import nn

from train.engine import make_optimizer
from train.muon import MuonSGD, orthogonalize


@pytest.mark.parametrize("shape", [(16, 24, 3, 3), (64, 8), (8, 64)])
def test_orthogonalize_flattens_the_spectrum(shape):
    g = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    g[0] *= 50  # badly conditioned: one direction dominates
    s = torch.linalg.svdvals(orthogonalize(g, steps=5).reshape(shape[0], -1))
    before = torch.linalg.svdvals(g.reshape(shape[0], -1))
    assert before.max() / before.min() > 20
    assert s.min() > 0.5 and s.max() < 1.5  # airbench's quintic: about U V^T, singular values in ~[0.5, 1.5]


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4))


def _steps(model, opt, n=3):
    for i in range(n):
        x = torch.randn(6, 3, 6, 6, generator=torch.Generator().manual_seed(i))
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()


def test_non_filter_groups_step_exactly_like_torch_sgd():
    a = _net()
    a(torch.zeros(1, 3, 6, 6))
    b = copy.deepcopy(a)
    for p in (a[0].weight, b[0].weight):
        p.requires_grad_(False)  # no filters: MuonSGD must be torch's SGD step for step
    _steps(a, make_optimizer(a, 0.1, weight_decay=5e-4, bias_lr_scale=4.0))
    opt = make_optimizer(b, 0.1, weight_decay=5e-4, bias_lr_scale=4.0, muon_lr=0.05)
    assert isinstance(opt, MuonSGD)
    _steps(b, opt)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-6)


def test_filters_move_by_muon_lr_at_fixed_norm_and_resume_from_state_dict():
    model = _net()
    model(torch.zeros(1, 3, 6, 6))
    opt = make_optimizer(model, 0.1, muon_lr=0.05, muon_momentum=0.0)
    w0 = model[0].weight.detach().clone()
    _steps(model, opt, 1)
    w = model[0].weight.detach()
    w0n = w0 * (8 ** 0.5 / w0.norm())  # renormed to sqrt(out) before the step
    assert (w - w0n).norm() / w0n.norm() == pytest.approx(0.05, rel=0.5)  # relative step ~ muon_lr
    twin = copy.deepcopy(model)
    twin_opt = make_optimizer(twin, 0.1, muon_lr=0.05, muon_momentum=0.0)
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # as from a checkpoint file
    _steps(model, opt, 2)
    _steps(twin, twin_opt, 2)
    for pa, pb in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_trainer_with_muon_learns_the_digits(tmp_path, small_snapshot, monkeypatch):
    from sluice.config import TrainParams
    from train import ddp

    monkeypatch.chdir(tmp_path)
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    cfg = TrainParams(snapshot=str(small_snapshot), out_dir=str(tmp_path / "model"), checkpoint_dir=str(tmp_path / "ck"),
                      runs_dir=str(tmp_path / "runs"), processes=1, epochs=3, width=8, batch_size=16, optimizer="muon")
    metrics = ddp.train(cfg)
    assert metrics["recipe"]["optimizer"] == "muon"
    assert metrics["test_accuracy"] > 0.5  # 3 epochs of 300 real digits: far above chance (0.1)
