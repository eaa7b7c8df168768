"""Classify image files with a trained or compressed model, preprocessing exactly as the pipeline does.

Preprocessing is the clean stage's own ``sluice.imaging.decode`` (decode, EXIF orientation, any mode to
RGB with alpha composited on the background, bicubic resize to the snapshot's geometry: size and resize
policy as the clean stage recorded them, carried by the snapshot manifest) followed
by the trainer's ``train.data.normalize`` with the snapshot's train-split mean/std, which every model
folder records in its ``config.json``. A file the clean stage would reject is rejected here with the same
reason code.

A model folder is either an exported program (``model.pt2``, written by the compress stage: pruned, int8,
pruned_int8, sparse) or the trainer's fp32 state dict (``model.pt``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sluice.config import CleanParams
from sluice.errors import InputError
from sluice.imaging import Geometry, Limits, Reject, decode
from sluice.snapshot import MANIFEST
from train.data import normalize
from train.model import Frozen, load_inference_model
from train.quantize import CONFIG


def model_geometry(config: dict, background: tuple[int, int, int]) -> Geometry:
    """The geometry the model's snapshot was made with: ``config["geometry"]``, else the manifest of the
    snapshot it names (when its content hash matches), else its ``image_shape`` squashed (the only policy
    before geometry was recorded)."""
    if config.get("geometry"):
        return Geometry.from_dict(config["geometry"])
    manifest_path = Path(config.get("snapshot") or "") / MANIFEST
    if config.get("snapshot") and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("geometry") and manifest.get("content_hash") == config.get("dataset_hash"):
            return Geometry.from_dict(manifest["geometry"])
    h, w, _ = config["image_shape"]
    return Geometry(int(h), int(w), "squash", tuple(background))


@dataclass
class Prediction:
    path: str
    label: str | None = None
    confidence: float | None = None
    error: str | None = None  # "<reason>: <details>" when the file was rejected


class Classifier:
    """A model folder plus its preprocessing; ``predict`` maps file paths to labels and confidences."""

    def __init__(self, model_dir: Path | str, clean: CleanParams | None = None, compile: bool = False):
        folder = Path(model_dir)
        config_path = folder / CONFIG
        if not config_path.is_file():
            raise InputError(f"{folder}: not a model folder (no {CONFIG}); train one (`dvc repro`) or pass --model")
        config = json.loads(config_path.read_text())
        missing = [k for k in ("classes", "image_shape", "mean", "std") if k not in config]
        if missing:
            raise InputError(f"{config_path}: lacks {', '.join(missing)} needed for preprocessing")
        clean = clean or CleanParams()
        self.geometry = model_geometry(config, clean.background)
        self.limits = Limits(clean.max_pixels, clean.min_side, clean.animated)
        self.classes: list[str] = list(config["classes"])
        self.mean = torch.tensor(config["mean"], dtype=torch.float32)
        self.std = torch.tensor(config["std"], dtype=torch.float32).clamp_min(1e-6)
        model = load_inference_model(folder)[0]
        self.model = model.fn if isinstance(model, Frozen) else model  # the program itself, for compile
        if compile:
            from train.quantize import compile_program

            self.model = compile_program(self.model)
        self.name = str(folder)

    def pixels(self, path: Path) -> np.ndarray:
        """The (H, W, 3) uint8 pixels the pipeline would store for this file; raises Reject or OSError."""
        if path.is_dir():
            raise Reject("not_a_file", "a folder of no image files")
        return decode(path.read_bytes(), self.geometry, self.limits).pixels

    @torch.inference_mode()
    def classify(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class indices and softmax confidences for a uint8 (n, H, W, 3) batch."""
        x = normalize(torch.tensor(pixels), self.mean, self.std).contiguous(memory_format=torch.channels_last)
        probs = torch.softmax(self.model(x).float(), dim=1)
        conf, idx = probs.max(dim=1)
        return idx.numpy(), conf.numpy()

    def predict(self, paths: list[str], batch_size: int = 64) -> Iterator[Prediction]:
        """One Prediction per path, in order; unreadable or invalid files come back with ``error`` set."""
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            results: list[Prediction] = []
            good: list[tuple[int, np.ndarray]] = []
            for i, p in enumerate(chunk):
                try:
                    good.append((i, self.pixels(Path(p))))
                    results.append(Prediction(p))
                except Reject as err:
                    results.append(Prediction(p, error=f"{err.reason}: {err.details}"))
                except OSError as err:
                    results.append(Prediction(p, error=f"unreadable: {err.strerror or err}"))
            if good:
                idx, conf = self.classify(np.stack([px for _, px in good]))
                for (i, _), k, c in zip(good, idx, conf):
                    results[i].label, results[i].confidence = self.classes[int(k)], float(c)
            yield from results
