"""Grad-CAM on a tiny CNN trained on a task whose discriminative region is known: class 1 is "a bright
square somewhere", class 0 is noise. Shown a square in one quadrant, the map must put its mass there."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from train.gradcam import colormap, grad_cam, overlay, save_png, target_layer
from train.model import build_model

SIZE = 16


def _images(n: int, gen: torch.Generator, quadrant: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand((n, 3, SIZE, SIZE), generator=gen) * 0.3
    y = torch.randint(0, 2, (n,), generator=gen)
    if quadrant is not None:
        y = torch.ones(n, dtype=torch.int64)
    for i in range(n):
        if y[i]:
            if quadrant is None:
                r, c = torch.randint(0, SIZE - 4, (2,), generator=gen).tolist()
            else:  # inside the quadrant: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
                r = (quadrant // 2) * SIZE // 2 + int(torch.randint(0, SIZE // 2 - 4 + 1, (1,), generator=gen))
                c = (quadrant % 2) * SIZE // 2 + int(torch.randint(0, SIZE // 2 - 4 + 1, (1,), generator=gen))
            x[i, :, r:r + 4, c:c + 4] = 1.0
    return x, y


def _tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8, 2))


@pytest.fixture(scope="module")
def square_model() -> nn.Module:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = _tiny_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        x, y = _images(32, gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = _images(200, gen)
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.95  # it learned the task
    return model.eval()


@pytest.mark.parametrize("quadrant", [0, 1, 2, 3])
def test_heatmap_mass_lies_in_the_square_quadrant(square_model, quadrant):
    x, _ = _images(16, torch.Generator().manual_seed(100 + quadrant), quadrant)
    cam, probs = grad_cam(square_model, x, torch.ones(16, dtype=torch.int64))
    assert cam.shape == (16, SIZE, SIZE) and float(cam.min()) >= 0 and float(cam.max()) <= 1 + 1e-6
    assert (probs.argmax(1) == 1).all()
    h = SIZE // 2
    r, c = (quadrant // 2) * h, (quadrant % 2) * h
    share = cam[:, r:r + h, c:c + h].sum((1, 2)) / cam.sum((1, 2))
    assert float(share.min()) > 0.6, share


def test_target_layer_is_the_last_spatial_map():
    model = _tiny_cnn()
    assert target_layer(model, torch.zeros(1, 3, SIZE, SIZE)) is model[3]  # the ReLU after the last conv


@pytest.mark.parametrize("arch", ["rescnn", "resnet18", "mobilenet_v3_small"])
def test_every_registered_family_gets_a_map(arch):
    model = build_model({"arch": arch, "width": 8, "depth": 1}, num_classes=3, image_size=32).eval()
    x = torch.rand(2, 3, 32, 32)
    layer = target_layer(model, x[:1])
    expected = {"rescnn": model.features if arch == "rescnn" else None, "resnet18": getattr(model, "layer4", None),
                "mobilenet_v3_small": getattr(model, "features", None)}[arch]
    assert layer is expected
    cam, probs = grad_cam(model, x)
    assert cam.shape == (2, 32, 32) and probs.shape == (2, 3)
    assert torch.isfinite(cam).all()


def test_rescnn_with_flip_tta_keeps_tta_after_the_map():
    model = build_model({"arch": "rescnn", "width": 8, "depth": 1, "tta_flip": True}, num_classes=3).eval()
    grad_cam(model, torch.rand(2, 3, 32, 32))
    assert model.tta_flip


def test_overlay_png(tmp_path):
    from PIL import Image

    assert colormap(np.array([0.0, 1.0])).tolist() == [[0, 0, 128], [128, 0, 0]]
    image = np.zeros((8, 8, 3), np.uint8)
    cam = np.zeros((8, 8))
    cam[:4, :4] = 1
    rgb = overlay(image, cam, scale=2)
    assert rgb.shape == (16, 2 * 16 + 2, 3)
    save_png(tmp_path / "a" / "x.png", rgb)
    back = np.asarray(Image.open(tmp_path / "a" / "x.png"))
    assert back.shape == rgb.shape and back[0, -1].tolist() == [0, 0, 64]  # cold (dark blue, half blended) top-right
    assert back[0, 18].tolist() == [64, 0, 0]  # hot (dark red, half blended) top-left of the overlay
