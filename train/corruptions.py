"""Common corruptions, CIFAR-10-C style, generated on the fly on whole batches of tensors.

Every corruption takes a float batch ``x`` in [0, 1] pixel space, NCHW, and a severity 1..5, and returns
a corrupted batch of the same shape in [0, 1]. Severity parameters follow Hendrycks & Dietterich
(ICLR 2019, the CIFAR-10-C code); no image leaves the tensor world except JPEG, which goes through
libjpeg (``torchvision.io.encode_jpeg`` / ``decode_jpeg``) one image at a time because that is what
JPEG is.

- ``gaussian_noise``: additive N(0, sigma) per pixel, sigma 0.04 .. 0.10.
- ``gaussian_blur``: a separable Gaussian kernel, sigma 0.4 .. 1.0 px, reflect padding.
- ``jpeg``: encode/decode at quality 80 .. 40.
- ``brightness``: the HSV value channel raised by 0.05 .. 0.3 (each pixel scaled by (v + c) / v, so hue
  and saturation stay).
- ``contrast``: pixels pulled towards the image mean, factor 0.75 .. 0.15.
- ``pixelate``: box-downsampled to 95 .. 65 % of the side, then nearest-neighbour upsampled.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

SEVERITIES = (1, 2, 3, 4, 5)
NOISE_SIGMA = (0.04, 0.06, 0.08, 0.09, 0.10)
BLUR_SIGMA = (0.4, 0.6, 0.7, 0.8, 1.0)
JPEG_QUALITY = (80, 65, 58, 50, 40)
BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)


def _level(table: tuple, severity: int):
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity}")
    return table[severity - 1]


def gaussian_noise(x: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + noise * _level(NOISE_SIGMA, severity)).clamp_(0, 1)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    k = gaussian_kernel(_level(BLUR_SIGMA, severity)).to(x)
    r = len(k) // 2
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return y.clamp_(0, 1)


def jpeg(x: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    from torchvision.io import decode_jpeg, encode_jpeg

    quality = _level(JPEG_QUALITY, severity)
    u8 = (x * 255).round_().clamp_(0, 255).to(torch.uint8).cpu()
    encoded = encode_jpeg(list(u8.contiguous().unbind(0)), quality=quality)
    decoded = decode_jpeg(encoded)
    return torch.stack(decoded).to(x.device, x.dtype).div_(255)


def brightness(x: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    c = _level(BRIGHTNESS, severity)
    v = x.amax(1, keepdim=True)
    scale = torch.where(v > 0, (v + c).clamp(max=1) / v.clamp_min(1e-6), torch.zeros_like(v))
    black = (v == 0).to(x.dtype) * min(c, 1.0)  # a black pixel (v = 0) becomes grey c
    return (x * scale + black).clamp_(0, 1)


def contrast(x: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    c = _level(CONTRAST, severity)
    mean = x.mean((1, 2, 3), keepdim=True)
    return ((x - mean) * c + mean).clamp_(0, 1)


def pixelate(x: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    h, w = x.shape[-2:]
    c = _level(PIXELATE, severity)
    small = F.interpolate(x, size=(max(1, int(h * c)), max(1, int(w * c))), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest")


Corruption = Callable[..., torch.Tensor]
CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "gaussian_blur": gaussian_blur,
    "jpeg": jpeg,
    "brightness": brightness,
    "contrast": contrast,
    "pixelate": pixelate,
}


def corrupt(x: torch.Tensor, name: str, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` (float NCHW in [0, 1]) under corruption ``name`` at ``severity`` (1..5)."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption '{name}' (choose from: {', '.join(CORRUPTIONS)})")
    return CORRUPTIONS[name](x, severity, generator)
