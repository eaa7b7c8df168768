"""STL-10's binary files, written small in the published layout; the pixels checked against torchvision's own
reader of those files."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from ingest import public
from ingest.sources.stl10 import IMAGE_BYTES, NAMES, detect
from sluice.errors import InputError


def _write(folder, part, images, labels=None):
    """``images`` (N, 96, 96, 3) as STL-10 stores them: each channel column by column."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{part}_X.bin").write_bytes(np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes())
    if labels is not None:
        (folder / f"{part}_y.bin").write_bytes(np.asarray(labels, dtype=np.uint8).tobytes())


def _images(n, seed):
    return np.random.default_rng(seed).integers(0, 255, (n, 96, 96, 3), dtype=np.uint8)


def _run(make_params, path, **extra):
    params = make_params({"ingest": {"batch_rows": 4, "sources": [{"name": "stl", "kind": "stl10", "path": str(path),
                                                                   **extra}]}})
    return public.run(params)["sources"]["stl"]


def test_images_land_as_torchvision_reads_them_labelled_and_split(tmp_path, make_params, lake):
    from torchvision.datasets import STL10

    folder = tmp_path / "data" / "stl10_binary"
    train, test = _images(5, 1), _images(3, 2)
    _write(folder, "train", train, [1, 2, 10, 4, 1])
    _write(folder, "test", test, [3, 3, 7])
    _write(folder, "unlabeled", _images(2, 3))
    (folder / "class_names.txt").write_text("\n".join(NAMES) + "\n")
    assert detect(str(tmp_path / "data")) == {"path": folder.as_posix()}

    stats = _run(make_params, folder)
    assert stats["inserted"] == 8 and stats["quarantined"] == 0  # unlabeled not landed by default
    rows = {r["item_id"]: r for r in lake.read("raw_images").to_pylist()}
    reader = STL10.__new__(STL10)  # torchvision's reader of the same files, without its download check
    reader.root, reader.base_folder = str(tmp_path / "data"), "stl10_binary"
    for part, count in (("train", 5), ("test", 3)):
        chw, labels = reader._STL10__loadfile(f"{part}_X.bin", f"{part}_y.bin")
        for i in range(count):
            row = rows[f"{part}_X.bin:{i}"]
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(row["content"]))), chw[i].transpose(1, 2, 0))
            assert row["source_label"] == NAMES[labels[i]] and row["split_hint"] == part
            assert json.loads(row["extra"]) == {f"{part}_index": i}
    assert rows["train_X.bin:2"]["source_label"] == "truck"


def test_unlabeled_images_land_when_asked_and_bad_labels_are_quarantined(tmp_path, make_params, lake, caplog):
    _write(tmp_path, "train", _images(3, 1), [1, 11, 0])
    _write(tmp_path, "unlabeled", _images(2, 3))
    with caplog.at_level("INFO"):
        _run(make_params, tmp_path)
    assert "2 unlabeled images in unlabeled_X.bin not landed (set unlabeled: true" in caplog.text
    assert sorted(r["reason"] for r in lake.read("quarantine").to_pylist()) == ["bad_label", "bad_label"]
    stats = _run(make_params, tmp_path, unlabeled=True)
    assert stats["inserted"] == 2 and stats["already_present"] == 1
    unlabeled = [r for r in lake.read("raw_images").to_pylist() if r["item_id"].startswith("unlabeled")]
    assert len(unlabeled) == 2 and all(r["source_label"] is None and r["split_hint"] is None for r in unlabeled)


def test_a_partial_download_or_unpaired_labels_is_one_line(tmp_path, make_params):
    _write(tmp_path, "train", _images(2, 1), [1, 2])
    (tmp_path / "test_X.bin").write_bytes(b"\0" * (IMAGE_BYTES + 7))
    with pytest.raises(InputError, match=rf"test_X.bin: {IMAGE_BYTES + 7} bytes is not a whole number of STL-10 images"):
        _run(make_params, tmp_path)
    _write(tmp_path, "test", _images(2, 2), [1])
    with pytest.raises(InputError, match="test_y.bin: 1 labels for the 2 images of test_X.bin"):
        _run(make_params, tmp_path)


def test_init_reads_an_stl10_folder_given_as_images(run_cli, tmp_path):
    _write(tmp_path / "data" / "stl10_binary", "train", _images(2, 1), [1, 2])
    res = run_cli("init", str(tmp_path / "proj"), "--images", str(tmp_path / "data"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "STL-10's binary files, read by the stl10 connector" in res.stdout
    assert "10 classes (airplane, bird, car, cat, deer, dog, horse, monkey, ...)" in res.stdout
