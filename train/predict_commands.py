"""``sluice predict IMAGE...``: label and confidence for image files, with the served (int8) model."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from sluice.errors import InputError


def register(sub) -> None:
    p = sub.add_parser(
        "predict", help="classify image files with the int8 model (or --model DIR)",
        description="Classify image files: decode, convert to RGB and resize exactly as the clean stage does, "
                    "normalise with the training snapshot's mean/std, run the model. Prints one line per file "
                    "(path, label, confidence). A folder stands for the image files in it and below, in name order. A "
                    "bad file gets one error line and the rest continue; the exit code is non-zero only if every "
                    "file failed.")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files (PNG, JPEG, ... anything Pillow reads), or folders of them")
    p.add_argument("--model", help="model folder: models/int8 (default), models/pruned_int8, models/pruned, "
                                   "models/sparse or models/fp32")
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text: 'PATH<TAB>LABEL<TAB>CONFIDENCE' lines (default); json: one object per line")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--compile", action="store_true",
                   help="compile the model with Inductor first (int8 kernels; worth it only for many images)")
    p.set_defaults(func=_predict)


def _settings():
    """The clean stage's settings and the default model folder, from params.yaml when there is one: the int8 model,
    else (a project without the compress stage, or before it ran) the trained fp32 one, said on stderr."""
    from sluice.config import CleanParams, CompressParams, DEFAULT_PARAMS, TrainParams, load_params
    from train.model import CONFIG

    if Path(os.environ.get("SLUICE_PARAMS", DEFAULT_PARAMS)).is_file():
        params = load_params()
        clean, int8, fp32 = params.clean, Path(params.compress.out_dir) / "int8", Path(params.train.out_dir)
    else:
        clean, int8, fp32 = CleanParams(), Path(CompressParams().out_dir) / "int8", Path(TrainParams().out_dir)
    if not (int8 / CONFIG).is_file() and (fp32 / CONFIG).is_file():
        print(f"sluice: predict: no int8 model at {int8} (the compress stage has not run): using {fp32}",
              file=sys.stderr)
        return clean, fp32
    return clean, int8


def _predict(args) -> int:
    from train.predict import Classifier

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1 (got {args.batch_size})")
    clean, default_model = _settings()
    classifier = Classifier(args.model or default_model, clean, compile=args.compile)
    ok = failed = 0
    for pred in classifier.predict(expand(args.images), args.batch_size):
        if pred.error is not None:
            failed += 1
            print(f"sluice: predict: {pred.path}: {pred.error}", file=sys.stderr, flush=True)
            if args.format == "json":
                print(json.dumps({"path": pred.path, "error": pred.error}), flush=True)
            continue
        ok += 1
        if args.format == "json":
            print(json.dumps({"path": pred.path, "label": pred.label, "confidence": round(pred.confidence, 6)}),
                  flush=True)
        else:
            print(f"{pred.path}\t{pred.label}\t{pred.confidence:.4f}", flush=True)
    if ok == 0:
        print(f"sluice: predict: all {failed} input(s) failed", file=sys.stderr)
        return 2
    if failed:
        print(f"sluice: predict: {ok} classified, {failed} rejected", file=sys.stderr)
    return 0


def expand(paths: list[str]) -> list[str]:
    """``paths`` with each folder replaced by the image files in it and below (by extension, or DICOM files without
    one as a PACS export names them; name order, hidden files and folders left out); the other files of a folder are
    counted in one line, a folder of no image is kept to be rejected as such."""
    from sluice.dicom import file_is_dicom
    from sluice.imaging import image_extensions

    extensions, out = image_extensions(), []
    for path in paths:
        if not Path(path).is_dir():
            out.append(path)
            continue
        found, other = [], 0
        for parent, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(n for n in names if not n.startswith(".")):
                suffix = Path(name).suffix.lower()
                if suffix in extensions or not suffix and name.upper() != "DICOMDIR" \
                        and file_is_dicom(Path(parent, name)):
                    found.append(os.path.join(parent, name))
                else:
                    other += 1
        if other:
            print(f"sluice: predict: {path}: {other} file(s) without an image extension left out", file=sys.stderr)
        out.extend(sorted(found) or [path])
    return out
