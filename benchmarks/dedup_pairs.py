"""A labelled near-duplicate set built from real photographs, for ``benchmarks/dedup.py``.

Originals are CIFAR-10 JPEGs (``~/data/cifar10/{train,test}/<class>/*.jpg`` when present) plus tiles
of scikit-learn's two sample photographs; each gets edited copies at graded strengths (shifts with
content entering from the border, crops resized back, greyscale, colour and contrast shifts, JPEG
re-encodes, mirror images, frames and letterboxes) and a *hard negative*: the other image of its class
whose grey pixels correlate best with it (similar scenes that are not copies). Unrelated distractors
fill the collection.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR = Path.home() / "data" / "cifar10"
EDITS = {  # edit type -> strengths
    "shift": (1, 2, 3, 4), "crop": (0.05, 0.10, 0.15, 0.25), "grey": (1,), "colour": (1, 2),
    "contrast": (1, 2), "jpeg": (80, 50, 25),
    "mirror": (0, 2, 0.10),  # flipped left to right; then shifted 2 px, or cropped by 10%
    "border": (0.06, 0.12),  # shrunk into a frame of one random colour, 6% or 12% a side (a square pad)
    "letterbox": (0.12,),  # bars of one random colour top and bottom (12% each), the picture stretched across
    "caption": (0.1, 0.2),  # a black bar over the bottom 10% or 20% (a meme's caption, a banner)
    "watermark": (0.1, 0.2),  # a half-transparent white strip with dark marks, 80% wide, 10% or 20% tall, anywhere
    # the centre 80% / 75% / 67% of the width or the height stretched back to a square: a 5:4, 4:3 or 3:2 photo
    # squashed to a square, against its centre crop
    "stretch": (0.2, 0.25, 0.33),
}


def _resize(a: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((side, side), Image.Resampling.BICUBIC))


def load_photos(count: int, seed: int, split: str = "test") -> tuple[list[np.ndarray], list[str]]:
    """Up to ``count`` (image, class) from CIFAR-10 (``split``), else sklearn sample-photo tiles."""
    rng = np.random.default_rng(seed)
    files = sorted((CIFAR / split).glob("*/*.jpg")) if (CIFAR / split).is_dir() else []
    if files:
        pick = rng.choice(len(files), min(count, len(files)), replace=False)
        return ([np.asarray(Image.open(files[k]).convert("RGB")) for k in pick], [files[k].parent.name for k in pick])
    return sample_tiles(count, 32, seed), ["photo"] * count


def sample_tiles(count: int, side: int, seed: int) -> list[np.ndarray]:
    """Random square tiles of scikit-learn's two sample photographs, resized to ``side``."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = load_sample_images().images
    out = []
    for _ in range(count):
        p = photos[rng.integers(len(photos))]
        s = int(rng.integers(60, 200))
        y, x = rng.integers(0, p.shape[0] - s), rng.integers(0, p.shape[1] - s)
        out.append(_resize(np.ascontiguousarray(p[y:y + s, x:x + s]), side))
    return out


def edit(img: np.ndarray, kind: str, strength, rng: np.random.Generator) -> np.ndarray:
    """One edited copy of an (s, s, 3) uint8 image."""
    s = img.shape[0]
    f = img.astype(np.float32)
    if kind == "mirror":
        flipped = np.ascontiguousarray(img[:, ::-1])
        return flipped if strength == 0 else edit(flipped, "shift" if strength >= 1 else "crop", strength, rng)
    if kind in ("border", "letterbox"):
        b = max(1, round(s * strength))
        out = np.full_like(img, int(rng.integers(0, 256)))
        if kind == "border":
            out[b:s - b, b:s - b] = _resize(img, s - 2 * b)
        else:
            out[b:s - b] = np.asarray(Image.fromarray(img).resize((s, s - 2 * b), Image.Resampling.BICUBIC))
        return out
    if kind == "caption":
        out = img.copy()
        out[s - max(1, round(s * strength)):] = 0
        return out
    if kind == "watermark":
        h, w, x = max(2, round(s * strength)), round(s * 0.8), round(s * 0.1)
        y = int(rng.integers(0, s - h + 1))
        strip = np.full((h, w, 3), 255.0, np.float32)
        strip[h // 4:h - h // 4, ::3] = 40  # the letters
        f[y:y + h, x:x + w] = 0.5 * f[y:y + h, x:x + w] + 0.5 * strip
        return np.clip(np.rint(f), 0, 255).astype(np.uint8)
    if kind == "shift":  # content enters from the border (reflected), as when a camera frame moves
        dy, dx = rng.choice([-1, 1], 2) * np.array([strength, rng.integers(0, strength + 1)])
        if rng.random() < 0.5:
            dy, dx = dx, dy
        pad = np.pad(img, ((strength, strength), (strength, strength), (0, 0)), mode="reflect")
        return pad[strength + dy:strength + dy + s, strength + dx:strength + dx + s].copy()
    if kind == "stretch":
        keep = round(s * (1 - strength))
        cut = img[(s - keep) // 2:(s - keep) // 2 + keep] if rng.random() < 0.5 else img[:, (s - keep) // 2:(s - keep) // 2 + keep]
        return _resize(np.ascontiguousarray(cut), s)
    if kind == "crop":
        h = round(s * (1 - strength))
        y, x = rng.integers(0, s - h + 1, 2)
        return _resize(np.ascontiguousarray(img[y:y + h, x:x + h]), s)
    if kind == "grey":
        g = f @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.repeat(np.clip(np.rint(g), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if kind == "colour":
        spread = 0.15 * strength
        f = f * rng.uniform(1 - spread, 1 + spread, 3) + rng.uniform(-12, 12, 3) * strength
    elif kind == "contrast":
        c = rng.choice([1 - 0.2 * strength, 1 + 0.25 * strength])
        f = (f - f.mean()) * c + f.mean() + rng.uniform(-15, 15) * strength
        f = 255.0 * (np.clip(f, 0, 255) / 255.0) ** rng.choice([1 - 0.15 * strength, 1 + 0.2 * strength])
    elif kind == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=int(strength))
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def hard_negatives(originals: list[np.ndarray], classes: list[str], pool: list[np.ndarray],
                   pool_classes: list[str]) -> list[int]:
    """Index into ``pool`` of the same-class image whose grey pixels correlate best with each original."""
    def z(images):
        g = np.stack([_resize(a, 32) for a in images]).astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        g = g.reshape(len(g), -1) - g.reshape(len(g), -1).mean(axis=1, keepdims=True)
        return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-3)

    corr = z(originals) @ z(pool).T
    same = np.asarray(classes)[:, None] == np.asarray(pool_classes)[None, :]
    corr[~same] = -2
    corr[corr > 0.97] = -2  # a pool image this close is a real duplicate, not a negative
    return corr.argmax(axis=1).tolist()


def build(n_originals: int, n_distractors: int, side: int, seed: int) -> dict:
    """The collection at ``side`` px: images (N, side, side, 3), family per image, labelled pairs."""
    rng = np.random.default_rng(seed)
    originals, classes = load_photos(n_originals, seed, "test")
    pool, pool_classes = load_photos(n_originals * 8 + n_distractors, seed + 1, "train")
    neg = hard_negatives(originals, classes, pool[:n_originals * 8], pool_classes[:n_originals * 8])
    base = [_resize(a, side) if a.shape[0] != side else a for a in originals]
    images, family, pairs = list(base), list(range(len(base))), []  # pairs: (i, j, edit, strength, positive)
    for o, img in enumerate(base):
        for kind, strengths in EDITS.items():
            for st in strengths:
                images.append(edit(img, kind, st, rng))
                family.append(o)
                pairs.append((o, len(images) - 1, kind, st, True))
    used = set()
    for o, k in enumerate(neg):
        if k in used:
            continue
        used.add(k)
        images.append(_resize(pool[k], side))
        family.append(-1 - len(images))
        pairs.append((o, len(images) - 1, "hard_negative", 0, False))
    for k in range(n_originals * 8, len(pool)):
        images.append(_resize(pool[k], side))
        family.append(-1 - len(images))
    return {"images": np.stack(images), "family": np.asarray(family), "pairs": pairs}
