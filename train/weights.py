"""Starting from weights the user has (``train.init_weights: PATH``): a state dict saved by PyTorch,
e.g. a torchvision weights file downloaded beforehand or a Sluice ``models/*/model.pt``. Nothing is
fetched at run time.

The classifier head is always replaced (a fresh layer for this snapshot's classes); every other tensor
must match the model exactly, otherwise the run stops with one line naming the file and the first
mismatches, so a ResNet-50 file given to a ResNet-18 never half-loads silently.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from sluice.errors import InputError
from train.model import spec


def _state_dict(obj) -> dict | None:
    """The tensor mapping inside a loaded file: a plain state dict, or one under a common wrapper key."""
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj:
                return _state_dict(obj[key])
    return None


def load_init_weights(model: nn.Module, path: Path | str, arch: str) -> int:
    """Load ``path`` into ``model`` except its head; returns the number of tensors loaded."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"train.init_weights: {path} does not exist (a state dict file saved with torch.save)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a foreign or corrupt file: one line
        raise InputError(f"train.init_weights: {path}: cannot load ({type(err).__name__}: {err})") from None
    state = _state_dict(loaded)
    if state is None:
        raise InputError(f"train.init_weights: {path} holds no state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # a DDP-wrapped save
    head = spec(arch).head + "."
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    given = {k: v for k, v in state.items() if not k.startswith(head)}
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    shapes = [f"{k} {tuple(given[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in given and given[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        examples = (shapes + [f"missing {k}" for k in missing] + [f"unexpected {k}" for k in unexpected])[:3]
        raise InputError(f"train.init_weights: {path} does not match train.arch '{arch}' ({len(missing)} missing, "
                         f"{len(unexpected)} unexpected, {len(shapes)} wrong shape; e.g. {'; '.join(examples)})")
    model.load_state_dict(given, strict=False)
    return len(given)
