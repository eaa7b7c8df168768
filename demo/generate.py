"""The built-in demo: real handwritten digits (scikit-learn's ``load_digits``) with planted defects.

The 1,797 8x8 digit scans ship inside scikit-learn, so the demo needs no network. They are upscaled to
32x32 RGB (with a mild per-image tint so channels differ) and written in the three public layouts the
connectors read — an image folder with train/test levels, a CIFAR-10 python-pickle folder and a
Hugging Face style Parquet file — plus the defects later stages must catch. ``ground_truth.json``
records every planted defect so tests and reports can check that each one was caught, among them
``label_noise``: ``demo.label_noise`` of the train images get a wrong class in the CIFAR and Parquet
files (each with its given and true label), which the ``oof`` stage's label issues should find.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import ExifTags, Image, ImageEnhance

from sluice.config import DemoParams

CLASSES = [str(i) for i in range(10)]
SIZE = 32


def digit_images(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as (N, 32, 32, 3) uint8 and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    out = np.empty((len(digits.images), SIZE, SIZE, 3), np.uint8)
    for i, img in enumerate(digits.images):
        grey = Image.fromarray((img * (255 / 16)).astype(np.uint8)).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
        tint = rng.uniform(0.75, 1.0, size=3)
        out[i] = (np.asarray(grey, np.float32)[..., None] * tint).clip(0, 255).astype(np.uint8)
    return out, digits.target.astype(np.int64)


def _encode(img: np.ndarray | Image.Image, fmt: str = "PNG", **kw) -> bytes:
    im = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height black pixels: tiny on disk, huge once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _jpeg_with_gps(img: np.ndarray) -> bytes:
    exif = Image.Exif()
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.0)
    exif[ExifTags.Base.Make] = "SluiceDemoCam"
    return _encode(img, "JPEG", quality=95, exif=exif.tobytes())


def _label_noise(labels: np.ndarray, candidates: list[int], count: int, params: DemoParams) -> dict[int, int]:
    """The planted label noise: ``count`` of the candidate images (never of the rare class) get another
    class (never the rare one), drawn from their own stream so the other defects stay where they were."""
    rng = np.random.default_rng([params.seed, 6])
    pool = [i for i in candidates if labels[i] != params.rare_class]
    picked = rng.choice(len(pool), size=min(count, len(pool)), replace=False) if count else []
    flips = {}
    for p in sorted(int(p) for p in picked):
        i = pool[p]
        others = [c for c in range(len(CLASSES)) if c not in (labels[i], params.rare_class)]
        flips[i] = int(others[int(rng.integers(len(others)))])
    return flips


def build_demo(params: DemoParams, out_dir: str | None = None) -> dict:
    """Write the demo under ``out_dir`` (default ``params.out_dir``) and return its inventory."""
    out = Path(out_dir or params.out_dir)
    if out.exists():
        shutil.rmtree(out)
    folder, cifar_dir, parquet_dir = out / "folder", out / "cifar", out / "parquet"
    for d in (folder, cifar_dir, parquet_dir):
        d.mkdir(parents=True)

    images, labels = digit_images(params.seed)
    rng = np.random.default_rng(params.seed)
    order = rng.permutation(len(images))
    # One class made rare: keep only `rare_keep` of its images.
    rare = np.flatnonzero(labels[order] == params.rare_class)[params.rare_keep:]
    dropped_rare = order[rare]
    order = np.delete(order, rare)

    n = len(order)
    n_folder, n_cifar = int(n * 0.6), int(n * 0.25)
    folder_idx, cifar_idx, parquet_idx = order[:n_folder], order[n_folder:n_folder + n_cifar], order[n_folder + n_cifar:]

    truth: dict = {"out_dir": out.as_posix(), "classes": CLASSES, "true_labels": {}, "source_index": {},
                   "exact_duplicates": [], "near_duplicates": [], "truncated": [], "non_image": [],
                   "decompression_bomb": [], "gps_jpegs": [], "label_conflicts": [], "label_noise": [],
                   "rare_class": {"label": CLASSES[params.rare_class], "kept": params.rare_keep,
                                  "dropped": int(len(dropped_rare))}}
    files = 0

    def put(path: Path, data: bytes, label: int, index: int) -> str:
        nonlocal files
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files += 1
        uri = path.as_posix()
        truth["true_labels"][uri] = CLASSES[label]
        truth["source_index"][uri] = int(index)
        return uri

    # --- image folder: 80% train / 20% test, PNG, plus most planted defects
    folder_uris: dict[int, str] = {}
    gps_idx = set(folder_idx[:5].tolist())
    for k, i in enumerate(folder_idx):
        split = "test" if k % 5 == 0 else "train"
        lab = int(labels[i])
        if i in gps_idx:
            uri = put(folder / split / CLASSES[lab] / f"digit_{i:04d}.jpg", _jpeg_with_gps(images[i]), lab, i)
            truth["gps_jpegs"].append(uri)
        else:
            uri = put(folder / split / CLASSES[lab] / f"digit_{i:04d}.png", _encode(images[i]), lab, i)
        folder_uris[int(i)] = uri

    train_pngs = [i for i in folder_idx if i not in gps_idx and "/train/" in folder_uris[int(i)]]
    pick = iter(rng.permutation(train_pngs).tolist())

    for _ in range(15):  # exact duplicates: the same bytes under another name
        i = next(pick)
        src = Path(folder_uris[i])
        copy = put(src.with_name(src.stem + "_copy.png"), src.read_bytes(), int(labels[i]), i)
        truth["exact_duplicates"].append([folder_uris[i], copy])

    for kind in ("jpeg_reencode", "resize", "brightness"):  # near-duplicates of train images
        for _ in range(10):
            i = next(pick)
            im = Image.fromarray(images[i])
            if kind == "jpeg_reencode":
                data, ext = _encode(im, "JPEG", quality=80), "jpg"
            elif kind == "resize":
                data, ext = _encode(im.resize((48, 48), Image.Resampling.BICUBIC)), "png"
            else:
                data, ext = _encode(ImageEnhance.Brightness(im).enhance(1.15)), "png"
            src = Path(folder_uris[i])
            copy = put(src.with_name(f"{src.stem}_{kind}.{ext}"), data, int(labels[i]), i)
            truth["near_duplicates"].append({"original": folder_uris[i], "copy": copy, "kind": kind})

    for _ in range(8):  # conflicting labels: identical bytes filed under another class
        i = next(pick)
        lab = int(labels[i])
        wrong = (lab + 1 + int(rng.integers(0, 9))) % 10
        if wrong == params.rare_class or wrong == lab:
            wrong = (lab + 2) % 10 if (lab + 2) % 10 != params.rare_class else (lab + 3) % 10
        src = Path(folder_uris[i])
        path = folder / "train" / CLASSES[wrong] / f"{src.stem}_mislabeled.png"
        path.write_bytes(src.read_bytes())
        files += 1
        truth["true_labels"][path.as_posix()] = CLASSES[lab]
        truth["source_index"][path.as_posix()] = int(i)
        truth["label_conflicts"].append({"paths": [folder_uris[i], path.as_posix()],
                                         "labels": [CLASSES[lab], CLASSES[wrong]], "true": CLASSES[lab]})

    for j in range(3):  # truncated files: the first part of a valid PNG
        i = next(pick)
        data = _encode(images[i])
        path = folder / "train" / CLASSES[int(labels[i])] / f"truncated_{j}.png"
        path.write_bytes(data[: len(data) // 2])
        files += 1
        truth["truncated"].append(path.as_posix())

    path = folder / "train" / "3" / "not_an_image.png"  # a non-image file with an image extension
    path.write_bytes(b"<!doctype html><html><body>404 Not Found</body></html>\n")
    files += 1
    truth["non_image"].append(path.as_posix())

    path = folder / "train" / "8" / "bomb.png"  # decompression bomb: 400 million pixels
    path.write_bytes(_png_bomb(20_000, 20_000))
    files += 1
    truth["decompression_bomb"].append(path.as_posix())

    # --- CIFAR-10 python-pickle layout
    import pickle

    cifar_split = {"data_batch_1": cifar_idx[: int(len(cifar_idx) * 0.8)], "test_batch": cifar_idx[int(len(cifar_idx) * 0.8):]}
    parquet_train = [int(i) for k, i in enumerate(parquet_idx) if k % 5 != 0]
    n_train = sum("/train/" in u for u in folder_uris.values()) + len(cifar_split["data_batch_1"]) + len(parquet_train)
    given = _label_noise(labels, [int(i) for i in cifar_split["data_batch_1"]] + parquet_train,
                         round(params.label_noise * n_train), params)
    for name, idx in cifar_split.items():
        batch = {b"batch_label": name.encode(), b"labels": [given.get(int(i), int(labels[i])) for i in idx],
                 b"data": images[idx].transpose(0, 3, 1, 2).reshape(len(idx), -1),
                 b"filenames": [f"digit_{i:04d}.png".encode() for i in idx]}
        (cifar_dir / name).write_bytes(pickle.dumps(batch, protocol=2))
        files += 1
        for row, i in enumerate(idx):
            truth["true_labels"][f"{(cifar_dir / name).as_posix()}#{row}"] = CLASSES[int(labels[i])]
            truth["source_index"][f"{(cifar_dir / name).as_posix()}#{row}"] = int(i)
    (cifar_dir / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CLASSES]}, protocol=2))
    files += 1

    # --- Hugging Face style Parquet: image struct {bytes, path} + ClassLabel int
    rows_img, rows_lab, rows_split = [], [], []
    for k, i in enumerate(parquet_idx):
        rows_img.append({"bytes": _encode(images[i]), "path": f"digit_{i:04d}.png"})
        rows_lab.append(given.get(int(i), int(labels[i])))
        rows_split.append("test" if k % 5 == 0 else "train")
    # five cross-layout exact duplicates: folder images repeated byte for byte in the Parquet file
    for i in rng.permutation(train_pngs)[:5].tolist():
        data = Path(folder_uris[i]).read_bytes()
        rows_img.append({"bytes": data, "path": Path(folder_uris[i]).name})
        rows_lab.append(int(labels[i]))
        rows_split.append("train")
        dup_uri = f"{(parquet_dir / 'digits.parquet').as_posix()}#{len(rows_img) - 1}"
        truth["exact_duplicates"].append([folder_uris[i], dup_uri])
        truth["true_labels"][dup_uri] = CLASSES[int(labels[i])]
        truth["source_index"][dup_uri] = int(i)
    hf_meta = {"info": {"features": {"image": {"_type": "Image"},
                                     "label": {"_type": "ClassLabel", "names": CLASSES},
                                     "split": {"_type": "Value", "dtype": "string"}}}}
    table = pa.table({"image": pa.array(rows_img, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      "label": pa.array(rows_lab, pa.int64()), "split": rows_split})
    table = table.replace_schema_metadata({"huggingface": json.dumps(hf_meta)})
    pq.write_table(table, parquet_dir / "digits.parquet")
    files += 1
    for row, i in enumerate(parquet_idx):
        uri = f"{(parquet_dir / 'digits.parquet').as_posix()}#{row}"
        truth["true_labels"][uri] = CLASSES[int(labels[i])]
        truth["source_index"][uri] = int(i)
    # the planted label noise: rows whose file says `given`, while the digit is `true`
    truth["label_noise"] = sorted(({"uri": u, "given": CLASSES[given[truth["source_index"][u]]], "true": t}
                                   for u, t in truth["true_labels"].items() if truth["source_index"][u] in given),
                                  key=lambda f: f["uri"])

    truth["counts"] = {"files": files, "digits_used": int(n), "folder": int(len(folder_idx)),
                       "cifar": int(len(cifar_idx)), "parquet": int(len(parquet_idx))}
    from demo.crowd import build_crowd_demo  # simulated annotator pool over these images

    truth["crowd"] = build_crowd_demo(out, truth, params.seed)
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    from demo.site import build_site  # the demo website the crawl connector crawls

    build_site(out, params.seed)
    return truth


def main() -> None:
    from sluice.config import load_params
    from sluice.stage import stage_main

    def go():
        truth = build_demo(load_params().demo)
        print(f"[demo] wrote {truth['counts']['files']} files to {truth['out_dir']}")

    stage_main(go)


if __name__ == "__main__":
    main()
