"""Grad-CAM (Selvaraju et al., ICCV 2017) with torch hooks, and overlays rendered with numpy + Pillow.

The target layer is found generically (``target_layer``): the module whose output is the last
spatial feature map of a forward pass, i.e. the last module to finish with a 4-D output larger than
1x1 before global pooling collapses it — ``features`` of ``rescnn``, MobileNetV3 and EfficientNet,
``layer4`` of the ResNets. For a class ``c``, the map is ``relu(sum_k w_k A_k)`` with ``A_k`` the
layer's channels and ``w_k`` the spatial mean of ``d logit_c / d A_k``; it is upsampled bilinearly
to the input size and scaled to [0, 1] per image.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)


@contextlib.contextmanager
def _no_tta(model: nn.Module):
    """Test-time augmentation off (a second, mirrored or shifted pass would overwrite the activations)."""
    had = {k: getattr(model, k) for k in ("tta_flip", "tta_translate") if getattr(model, k, False)}
    for k in had:
        setattr(model, k, False)
    try:
        yield
    finally:
        for k, v in had.items():
            setattr(model, k, v)


def target_layer(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """The module producing the last spatial (H*W > 1) feature map in a forward pass of ``example``;
    the last ``nn.Conv2d`` when no output is larger than 1x1."""
    finished: list[nn.Module] = []

    def hook(module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-1] * output.shape[-2] > 1 \
                and not isinstance(module, POOLS):
            finished.append(module)

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    try:
        with torch.no_grad(), _no_tta(model):
            model.eval()(example)
    finally:
        for h in handles:
            h.remove()
    if finished:
        return finished[-1]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("Grad-CAM needs a convolutional model (no spatial feature map found)")
    return convs[-1]


def grad_cam(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None,
             layer: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM maps (n, H, W) in [0, 1] of the normalised batch ``x`` for the classes ``target`` (default:
    the predicted ones), and the model's softmax probabilities (n, k)."""
    model.eval()
    layer = layer or target_layer(model, x[:1])
    store: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        store["act"] = output
        output.register_hook(lambda g: store.__setitem__("grad", g))

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad(), _no_tta(model):
            logits = model(x.detach().clone().requires_grad_(True)).float()
            target = logits.argmax(1) if target is None else target.to(logits.device)
            logits.gather(1, target.view(-1, 1)).sum().backward()
    finally:
        handle.remove()
    act, grad = store["act"].detach().float(), store["grad"].float()
    weights = grad.mean((2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    top = cam.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return cam / top, torch.softmax(logits.detach(), 1)


# A jet-like colormap: (position, r, g, b) stops, linearly interpolated.
_STOPS = np.array([[0.0, 0, 0, 0.5], [0.11, 0, 0, 1], [0.34, 0, 1, 1], [0.5, 0.5, 1, 0.5], [0.65, 1, 1, 0],
                   [0.89, 1, 0, 0], [1.0, 0.5, 0, 0]])


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) -> uint8 RGB (shape + (3,)), blue (cold) to red (hot)."""
    v = np.clip(np.asarray(values, np.float64), 0, 1)
    rgb = np.stack([np.interp(v, _STOPS[:, 0], _STOPS[:, i]) for i in (1, 2, 3)], -1)
    return (rgb * 255).round().astype(np.uint8)


def overlay(image: np.ndarray, cam: np.ndarray, scale: int = 4, alpha: float = 0.5) -> np.ndarray:
    """Side by side: the image (uint8 HxWx3) and the image blended with the colour-mapped ``cam``
    (HxW in [0, 1]), each enlarged ``scale`` times (nearest neighbour, so pixels stay visible)."""
    heat = colormap(cam).astype(np.float32)
    blend = ((1 - alpha) * image.astype(np.float32) + alpha * heat).round().clip(0, 255).astype(np.uint8)
    gap = np.full((image.shape[0], max(1, image.shape[1] // 16), 3), 255, np.uint8)
    both = np.concatenate([image, gap, blend], 1)
    return both.repeat(scale, 0).repeat(scale, 1)


def save_png(path: Path | str, rgb: np.ndarray) -> None:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, "RGB").save(path, format="PNG", optimize=True)
