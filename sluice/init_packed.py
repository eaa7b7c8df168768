"""The packed sources ``sluice init --images`` recognises (IDX, SVHN's .mat, STL-10, pixel CSVs, NumPy arrays, Parquet /
Arrow, TFRecord, WebDataset, HDF5), each told by its connector's ``detect``, and the check that DVC can track a source's file names."""

from __future__ import annotations

import os
from pathlib import Path

from sluice.errors import InputError

FILE_KINDS = ("pixel_csv", "npz", "parquet", "tfrecord", "webdataset", "hdf5")  # kinds whose data may be one file, not a folder

PACKED = {"idx": "IDX files (MNIST's layout)", "svhn": "SVHN's .mat files", "stl10": "STL-10's binary files",  # --images
          "pixel_csv": "CSVs of pixel values (a row an image)", "npz": "NumPy arrays of images",  # of packed images
          "parquet": "Parquet or Hugging Face Arrow files", "tfrecord": "TFRecord files (TensorFlow Datasets, Kaggle's TPU sets)",
          "webdataset": "WebDataset tar shards", "hdf5": "HDF5 datasets of images"}


def packed(p: Path, shown: str) -> str | None:
    """The connector of an ``--images`` folder (or file) of packed images (IDX, SVHN's .mat, pixel CSVs, Hugging
    Face's files...), said; None for a folder holding image files (HAM10000's, beside its pixel CSVs)."""
    from sluice.connectors import connectors
    from sluice.imaging import image_extensions

    if p.is_dir() and any(Path(f).suffix.lower() in image_extensions() for _, _, files in os.walk(p) for f in files):
        return None
    for kind, what in PACKED.items():
        connector = connectors("source").get(kind)
        try:
            if connector is None or connector.detect is None or not (p.is_dir() or kind in FILE_KINDS):
                continue
            connector.detect(str(p))
        except InputError:
            continue
        print(f"[init] {shown}: {what}, read by the {kind} connector")
        return kind
    return None


def names_dvc_can_track(p: Path, shown: str) -> None:
    """Refuse a CIFAR, Parquet or IDX folder holding a name that is not UTF-8 (a Latin-1 ``café.bin``
    from an old system): ``dvc repro`` hashes such a folder as the ingest stage's input and stops on it
    ("surrogates not allowed"), so say it here, with the fix. An image folder is not DVC's to hash (the
    stage ``list_sources`` digests it, any name read as it is on disk)."""
    if not p.is_dir():
        return
    bad = []
    for top, dirs, files in os.walk(p):
        for name in (*dirs, *files):
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                bad.append(os.fsencode(os.path.relpath(os.path.join(top, name), p)).decode("utf-8", "backslashreplace"))
    if bad:
        raise InputError(f"{shown}: {len(bad)} file or folder name(s) not in UTF-8 (first: '{bad[0]}'), which DVC "
                         f"cannot track as the ingest stage's input; rename them (e.g. convmv -r -f latin1 -t utf8 "
                         f"--notest {shown}) and run sluice init again")
