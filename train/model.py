"""Image classifiers, by name, in one registry (``MODELS``): name -> constructor.

``rescnn`` (the small-image default) is a fast residual CNN in the style of the DAWNBench CIFAR-10
winners: a conv stem and three stages that each double the channels, halve the resolution with a
max-pool and add ``depth`` residual blocks; ``width`` is the stem's channel count. The torchvision
families (``resnet18``, ``resnet50``, ``mobilenet_v3_small``, ``mobilenet_v3_large``,
``efficientnet_b0``) keep their standard stems for photos (inputs >= ``STANDARD_STEM_MIN`` px) and get
a small-image stem (stride-1 first conv, no stem max-pool) below that; the choice is recorded in the
model config as ``stem``.

The model's configuration is a small dict (``model_config``) saved next to the weights as
``config.json`` so that ``load_model`` can rebuild the exact network from a state dict loaded with
``weights_only=True``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sluice.errors import InputError

WEIGHTS = "model.pt"
CONFIG = "config.json"
LOGIT_SCALE = 0.125
STANDARD_STEM_MIN = 96


def conv_bn(c_in: int, c_out: int, bn_scale: bool = True) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), _bn(c_out, bn_scale), nn.ReLU(inplace=True))


def _bn(c: int, scale: bool) -> nn.BatchNorm2d:
    """BatchNorm; without ``scale`` its weight stays 1 (airbench: a learnable scale only adds noise before
    ReLU). The weight stays in the state dict, so saved models load either way."""
    bn = nn.BatchNorm2d(c)
    bn.weight.requires_grad_(scale)
    return bn


class Residual(nn.Module):
    """x + f(x) with f two conv-bn-relu layers at constant width."""

    def __init__(self, channels: int, bn_scale: bool = True):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels, bn_scale), conv_bn(channels, channels, bn_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


WHITEN_KERNEL = 2


def whitening_conv(c_in: int = 3, kernel: int = WHITEN_KERNEL) -> nn.Conv2d:
    """airbench's whitened first layer: a ``kernel`` x ``kernel`` conv (no padding) with ``2 * c_in *
    kernel**2`` outputs whose frozen weights are set from the training data's patch covariance
    (``train.airbench.init_whitening``: each eigenvector scaled by 1/sqrt(eigenvalue), and its negative);
    only its bias trains."""
    conv = nn.Conv2d(c_in, 2 * c_in * kernel * kernel, kernel, padding=0, bias=True)
    conv.weight.requires_grad_(False)
    return conv


def tta_logits(logits: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, flip: bool,
               translate: bool) -> torch.Tensor:
    """Test-time augmentation (airbench's levels): the mean logits of ``x`` and its mirror (``flip``);
    with ``translate``, averaged half and half with the same views of ``x`` shifted by one pixel up-left
    and down-right (reflect-padded). All views go through the network as one batch (one pass: faster
    on CPU, and one use of each layer, which the int8 export's quantizer needs)."""
    h, w = x.shape[-2:]
    shifted = []
    if translate:
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        shifted = [padded[..., :h, :w], padded[..., 2:, 2:]]
    groups = [[v, v.flip(-1)] if flip else [v] for v in (x, *shifted)]
    views = [v for g in groups for v in g]
    out = logits(torch.cat(views)).unflatten(0, (len(views), -1))  # (views, batch, classes); batch stays dynamic
    per_view = len(groups[0])
    base = out[:per_view].mean(0)
    return base if not translate else 0.5 * (base + out[per_view:].mean(0))


class ResCNN(nn.Module):
    def __init__(self, num_classes: int, width: int = 16, depth: int = 1, bn_scale: bool = True,
                 tta_flip: bool = False, whiten: bool = False, tta_translate: bool = False):
        super().__init__()
        if whiten:  # the whitening conv replaces the stem conv: stage 1 reads its 24 channels (31x31)
            stem = whitening_conv()
            layers: list[nn.Module] = [stem, nn.ReLU(inplace=True)]
            c_in = stem.out_channels
        else:
            layers = [conv_bn(3, width, bn_scale)]
            c_in = width
        c = width
        for _ in range(3):
            layers += [nn.Conv2d(c_in, 2 * c, 3, padding=1, bias=False), nn.MaxPool2d(2), _bn(2 * c, bn_scale),
                       nn.ReLU(inplace=True)]
            c *= 2
            c_in = c
            layers += [Residual(c, bn_scale) for _ in range(depth)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(c, num_classes, bias=False)
        self.tta_flip, self.tta_translate = tta_flip, tta_translate

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        # Scaled-down logits keep the early steps stable at high learning rates (as in airbench).
        return self.head(torch.flatten(self.pool(self.features(x)), 1)) * LOGIT_SCALE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not (self.tta_flip or self.tta_translate):
            return self._logits(x)
        return tta_logits(self._logits, x, self.tta_flip, self.tta_translate)


class AirNet(nn.Module):
    """airbench94's network (Keller Jordan, 2024): the whitened 2x2 first layer, then three blocks of
    conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU at widths (w, 4w, 4w) (airbench94: w = 64), a
    global max-pool and a linear head. No residuals: the channels go where the resolution is low, which
    buys more capacity per multiply-add than ``rescnn``'s wide full-resolution stem."""

    def __init__(self, num_classes: int, width: int = 32, bn_scale: bool = False, tta_flip: bool = False,
                 tta_translate: bool = False):
        super().__init__()
        layers: list[nn.Module] = [whitening_conv(), nn.GELU()]
        c_in = layers[0].out_channels
        for c in (width, 4 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.MaxPool2d(2), _bn(c, bn_scale), nn.GELU(),
                       nn.Conv2d(c, c, 3, padding=1, bias=False), _bn(c, bn_scale), nn.GELU()]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(c_in, num_classes, bias=False)
        self.tta_flip, self.tta_translate = tta_flip, tta_translate

    _logits = ResCNN._logits
    forward = ResCNN.forward


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: its constructor (model config -> module) and the dotted name of its
    classifier head (replaced, not loaded, by ``train.init_weights``)."""

    build: Callable[[dict], nn.Module]
    head: str
    description: str


def _rescnn(c: dict) -> nn.Module:
    return ResCNN(c["num_classes"], width=c["width"], depth=c["depth"], bn_scale=c.get("bn_scale", True),
                  tta_flip=c.get("tta_flip", False), whiten=c.get("whiten", False),
                  tta_translate=c.get("tta_translate", False))


def _airnet(c: dict) -> nn.Module:
    return AirNet(c["num_classes"], width=c["width"], bn_scale=c.get("bn_scale", False), tta_flip=c.get("tta_flip", False),
                  tta_translate=c.get("tta_translate", False))


def _torchvision(name: str, head: str) -> Callable[[dict], nn.Module]:
    def build(c: dict) -> nn.Module:
        from torchvision import models

        model = getattr(models, name)(weights=None, num_classes=c["num_classes"])
        if c.get("stem", "small") == "small":  # keep a 32x32 input's resolution through the stem
            if hasattr(model, "conv1"):
                model.conv1 = nn.Conv2d(3, model.conv1.out_channels, 3, stride=1, padding=1, bias=False)
                model.maxpool = nn.Identity()
            else:
                model.features[0][0].stride = (1, 1)
        return model

    return build


MODELS: dict[str, ModelSpec] = {
    "rescnn": ModelSpec(_rescnn, "head", "fast residual CNN for small images (width, depth)"),
    "airnet": ModelSpec(_airnet, "head", "airbench94's network for small images: whitened stem, widths (w, 4w, 4w)"),
    "resnet18": ModelSpec(_torchvision("resnet18", "fc"), "fc", "torchvision ResNet-18"),
    "resnet50": ModelSpec(_torchvision("resnet50", "fc"), "fc", "torchvision ResNet-50"),
    "mobilenet_v3_small": ModelSpec(_torchvision("mobilenet_v3_small", "classifier.3"), "classifier.3",
                                    "torchvision MobileNetV3-Small"),
    "mobilenet_v3_large": ModelSpec(_torchvision("mobilenet_v3_large", "classifier.3"), "classifier.3",
                                    "torchvision MobileNetV3-Large"),
    "efficientnet_b0": ModelSpec(_torchvision("efficientnet_b0", "classifier.1"), "classifier.1",
                                 "torchvision EfficientNet-B0"),
}


def spec(arch: str) -> ModelSpec:
    if arch not in MODELS:
        raise InputError(f"unknown model arch '{arch}' (choose from: {', '.join(MODELS)})")
    return MODELS[arch]


def model_config(cfg: object, num_classes: int, image_size: int | None = None) -> dict:
    """The architecture part of a config (TrainParams, a mapping, or a saved config dict). ``image_size``
    (the smaller input side) picks the torchvision stem; a saved config keeps the stem it was built with."""
    get = cfg.get if isinstance(cfg, Mapping) else lambda k, d=None: getattr(cfg, k, d)
    arch = get("arch", "rescnn")
    spec(arch)
    stem = get("stem") or ("standard" if image_size and image_size >= STANDARD_STEM_MIN else "small")
    return {"arch": arch, "width": int(get("width", 16)), "depth": int(get("depth", 1)), "num_classes": int(num_classes),
            "stem": stem, "bn_scale": bool(get("bn_scale", True)), "tta_flip": bool(get("tta_flip", False)),
            "tta_translate": bool(get("tta_translate", False)),
            "whiten": arch == "airnet" or bool(get("whiten", False) and arch == "rescnn")}


def build_model(cfg: object, num_classes: int, image_size: int | None = None) -> nn.Module:
    """A fresh, randomly initialised model for ``cfg`` (``arch``, ``width``, ``depth``, ...)."""
    c = model_config(cfg, num_classes, image_size)
    return MODELS[c["arch"]].build(c)


def head_parameters(model: nn.Module, arch: str) -> list[nn.Parameter]:
    """The classifier head's parameters (what stays trainable while the backbone is frozen)."""
    return list(unwrap(model).get_submodule(spec(arch).head).parameters())


def save_model(folder: Path | str, model: nn.Module, config: dict) -> Path:
    """Write ``model.pt`` (a plain state dict) and ``config.json`` (``model_config`` plus metadata)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    tmp = folder / (WEIGHTS + ".tmp")
    torch.save(state, tmp)
    tmp.replace(folder / WEIGHTS)
    (folder / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder / WEIGHTS


def load_model(folder: Path | str, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a saved model from ``config.json`` and load ``model.pt`` with ``weights_only=True``."""
    folder = Path(folder)
    if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
        raise InputError(f"{folder}: not a saved model (needs {WEIGHTS} and {CONFIG}; run `sluice train`)")
    config = json.loads((folder / CONFIG).read_text())
    model = build_model(config, config["num_classes"])
    model.load_state_dict(torch.load(folder / WEIGHTS, map_location=map_location, weights_only=True))
    return model.eval(), config


class Frozen(nn.Module):
    """Wraps a callable (an exported or compiled program) so ``evaluate`` can call it; eval/train are no-ops."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self._fn = [fn]  # a list, so nn.Module does not recurse into it on .eval()

    @property
    def fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return self._fn[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn[0](x)


def load_inference_model(folder: Path | str) -> tuple[nn.Module, dict]:
    """Any saved model folder, ready for inference: trained weights (``model.pt``, rebuilt from
    ``config.json``, channels-last) or an exported program (``model.pt2``: pruned, int8, pruned+int8)."""
    from train.quantize import PROGRAM, load_program

    folder = Path(folder)
    if (folder / PROGRAM).is_file() and (folder / CONFIG).is_file():
        return Frozen(load_program(folder / PROGRAM)), json.loads((folder / CONFIG).read_text())
    if (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file():
        model, config = load_model(folder)
        return model.to(memory_format=torch.channels_last), config
    raise InputError(f"{folder}: not a saved model (needs {CONFIG} with {WEIGHTS} from `sluice train` or "
                     f"{PROGRAM} from the compress stage)")


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model
