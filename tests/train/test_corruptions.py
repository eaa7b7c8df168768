"""Corruptions on batches: shapes and range kept, severity monotone, each one doing what it says."""

from __future__ import annotations

import pytest
import torch

from train.corruptions import CORRUPTIONS, SEVERITIES, corrupt, gaussian_kernel


def _batch(n: int = 4, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.rand((n, 3, size // 4, size // 4), generator=g)
    return torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_shape_range_and_severity_order(name):
    x = _batch()
    dist = []
    for sev in SEVERITIES:
        y = corrupt(x, name, sev, torch.Generator().manual_seed(1))
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= 0 and float(y.max()) <= 1
        dist.append(float((y - x).abs().mean()))
    assert dist[0] > 0
    assert dist[-1] > dist[0]  # the strongest severity changes the images more than the weakest


def test_noise_is_seeded_and_sized():
    x = torch.full((2, 3, 64, 64), 0.5)
    a = corrupt(x, "gaussian_noise", 5, torch.Generator().manual_seed(3))
    b = corrupt(x, "gaussian_noise", 5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert abs(float((a - x).std()) - 0.10) < 0.005


def test_contrast_keeps_the_mean_and_brightness_keeps_hue():
    x = _batch()
    y = corrupt(x, "contrast", 3)
    assert torch.allclose(y.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5)
    assert torch.allclose(y.std((1, 2, 3)), 0.4 * x.std((1, 2, 3)), atol=1e-5)
    px = torch.tensor([0.2, 0.4, 0.1]).view(1, 3, 1, 1)
    bright = corrupt(px, "brightness", 5)  # v 0.4 -> 0.7: every channel scaled by 0.7 / 0.4
    assert torch.allclose(bright.flatten(), torch.tensor([0.35, 0.7, 0.175]), atol=1e-6)


def test_blur_kernel_and_flat_image():
    k = gaussian_kernel(1.0)
    assert abs(float(k.sum()) - 1) < 1e-6 and len(k) == 7
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(corrupt(flat, "gaussian_blur", 5), flat, atol=1e-6)


def test_pixelate_makes_blocks_and_jpeg_round_trips_a_flat_image():
    x = _batch(1, 32)
    y = corrupt(x, "pixelate", 5)  # 32 -> 20 px -> 32: neighbouring columns repeat
    repeated = (y[..., 1:] == y[..., :-1]).all(-2).all(-2).sum()
    assert int(repeated) >= 10
    flat = torch.full((2, 3, 16, 16), 128 / 255)
    assert (corrupt(flat, "jpeg", 5) - flat).abs().max() <= 2 / 255


def test_unknown_names_and_severities():
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(_batch(), "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(_batch(), "contrast", 6)
