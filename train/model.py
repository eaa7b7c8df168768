"""Image classifiers for small (32x32) inputs.

``rescnn`` (the default) is a fast residual CNN in the style of the DAWNBench CIFAR-10 winners: a conv
stem and three stages that each double the channels, halve the resolution with a max-pool and add
``depth`` residual blocks; ``width`` is the stem's channel count. ``resnet18`` is torchvision's
ResNet-18 adapted to small images (3x3 stride-1 stem, no stem max-pool).

The model's configuration is a small dict (``model_config``) saved next to the weights as
``config.json`` so that ``load_model`` can rebuild the exact network from a state dict loaded with
``weights_only=True``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from sluice.errors import InputError

ARCHS = ("rescnn", "resnet18")
WEIGHTS = "model.pt"
CONFIG = "config.json"
LOGIT_SCALE = 0.125


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """x + f(x) with f two conv-bn-relu layers at constant width."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResCNN(nn.Module):
    def __init__(self, num_classes: int, width: int = 16, depth: int = 1):
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, width)]
        c = width
        for _ in range(3):
            layers += [nn.Conv2d(c, 2 * c, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(2 * c),
                       nn.ReLU(inplace=True)]
            c *= 2
            layers += [Residual(c) for _ in range(depth)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(c, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Scaled-down logits keep the early steps stable at high learning rates (as in airbench).
        return self.head(torch.flatten(self.pool(self.features(x)), 1)) * LOGIT_SCALE


def _resnet18_small(num_classes: int) -> nn.Module:
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def model_config(cfg: object, num_classes: int) -> dict:
    """The architecture part of a config (TrainParams, a mapping, or a saved config dict)."""
    get = cfg.get if isinstance(cfg, Mapping) else lambda k, d=None: getattr(cfg, k, d)
    arch = get("arch", "rescnn")
    if arch not in ARCHS:
        raise InputError(f"unknown model arch '{arch}' (choose from: {', '.join(ARCHS)})")
    return {"arch": arch, "width": int(get("width", 16)), "depth": int(get("depth", 1)), "num_classes": int(num_classes)}


def build_model(cfg: object, num_classes: int) -> nn.Module:
    """A fresh, randomly initialised model for ``cfg`` (needs ``arch``, ``width``, ``depth``)."""
    c = model_config(cfg, num_classes)
    if c["arch"] == "resnet18":
        return _resnet18_small(num_classes)
    return ResCNN(num_classes, width=c["width"], depth=c["depth"])


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
