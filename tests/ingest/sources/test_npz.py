"""Images as NumPy arrays: Keras' mnist.npz, MedMNIST's archives, .npy files, written small."""

import io

import numpy as np
import pytest
from PIL import Image

from ingest import public
from ingest.sources.npz import detect
from sluice.errors import InputError


def _run(make_params, path, batch_rows=4, **extra):
    params = make_params({"ingest": {"batch_rows": batch_rows, "sources": [{"name": "n", "kind": "npz", "path": str(path),
                                                                           **extra}]}})
    return public.run(params)["sources"]["n"]


def _rows(lake):
    return {r["item_id"]: r for r in lake.read("raw_images").to_pylist()}


def _image(row) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(row["content"])))


def test_keras_mnist_npz_lands_labelled_and_split(tmp_path, make_params, lake, run_cli):
    rng = np.random.default_rng(0)
    x_train, x_test = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8), rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=np.array([5, 0, 4, 1, 9, 2], np.uint8), x_test=x_test,
             y_test=np.array([7, 2], np.uint8))
    assert detect(str(path)) == {}
    stats = _run(make_params, path)
    assert stats["inserted"] == 8 and stats["quarantined"] == 0
    rows = _rows(lake)
    assert np.array_equal(_image(rows["mnist.npz:x_train:3"]), x_train[3])
    assert (rows["mnist.npz:x_train:4"]["source_label"], rows["mnist.npz:x_train:4"]["split_hint"]) == ("9", "train")
    assert (rows["mnist.npz:x_test:0"]["source_label"], rows["mnist.npz:x_test:0"]["split_hint"]) == ("7", "test")
    res = run_cli("init", str(tmp_path / "proj"), "--images", str(path), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "NumPy arrays of images, read by the npz connector" in res.stdout and "7 classes (0, 1, 2, 4, 5, 7, 9)" in res.stdout


def test_medmnist_rgb_images_n_by_1_labels_and_multi_label(tmp_path, make_params, lake, caplog):
    """pathmnist.npz (train/val/test_images N x 28 x 28 x 3, labels N x 1) named by class_names; chestmnist's N x 14
    labels land their images unlabelled, said in the log."""
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (4, 28, 28, 3), dtype=np.uint8)
    np.savez(tmp_path / "pathmnist.npz", train_images=train, train_labels=np.array([[0], [2], [1], [2]]),
             val_images=train[:1] // 2, val_labels=np.array([[1]]))
    np.savez(tmp_path / "chestmnist.npz", test_images=train[:2] // 3, test_labels=np.zeros((2, 14), np.uint8))
    with caplog.at_level("INFO"):
        stats = _run(make_params, tmp_path, class_names=["adipose", "background", "debris"])
    assert stats["inserted"] == 7
    rows = _rows(lake)
    assert np.array_equal(_image(rows["pathmnist.npz:train_images:1"]), train[1])
    assert rows["pathmnist.npz:train_images:1"]["source_label"] == "debris"
    assert (rows["pathmnist.npz:val_images:0"]["source_label"], rows["pathmnist.npz:val_images:0"]["split_hint"]) == (
        "background", "val")
    assert rows["chestmnist.npz:test_images:0"]["source_label"] is None
    assert "14 labels an image (multi-label) - its images land unlabelled" in caplog.text


def test_npy_files_channels_first_floats_and_bad_values(tmp_path, make_params, lake):
    """x_train.npy / y_train.npy in a folder; N x C x H x W floats from 0 to 1; an image with a NaN is quarantined."""
    rng = np.random.default_rng(2)
    images = rng.random((3, 3, 8, 8)).astype(np.float32)
    images[2, 0, 0, 0] = np.nan
    np.save(tmp_path / "x_train.npy", images)
    np.save(tmp_path / "y_train.npy", np.array([0, 1, 1]))
    stats = _run(make_params, tmp_path)
    assert stats["inserted"] == 2 and stats["quarantine_reasons"] == {"pixel_out_of_range": 1}
    got = _image(_rows(lake)["x_train.npy:x_train:0"])
    assert got.shape == (8, 8, 3) and np.array_equal(got, np.rint(images[0].transpose(1, 2, 0) * 255).astype(np.uint8))


def test_pickles_and_unpaired_arrays_are_one_line(tmp_path, make_params, png):
    np.save(tmp_path / "x_train.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="x_train.npy: 'x_train' holds Python objects"):
        _run(make_params, tmp_path)
    (tmp_path / "x_train.npy").unlink()
    np.savez(tmp_path / "d.npz", x_train=np.zeros((3, 4, 4), np.uint8), y_train=np.zeros(2, np.uint8))
    with pytest.raises(InputError, match="2 labels for the 3 images of 'x_train'"):
        _run(make_params, tmp_path)
    (tmp_path / "a.png").write_bytes(png(1))
    with pytest.raises(InputError, match="no NumPy array of images"):
        detect(str(tmp_path))  # a folder of images is an image folder


def test_a_compressed_archive_is_read_a_block_at_a_time(tmp_path, make_params, lake):
    """MedMNIST's archives are compressed: the images are decompressed as a stream, 1,024 at a time, in order."""
    from ingest.sources.npz import pairs

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (1100, 6, 6), dtype=np.uint8)
    np.savez_compressed(tmp_path / "octmnist.npz", train_images=images, train_labels=np.arange(1100).reshape(-1, 1) % 4)
    [(_, _, found, labels)] = pairs(tmp_path / "octmnist.npz")
    blocks = list(found.blocks())
    assert [len(b) for b in blocks] == [1024, 76] and np.array_equal(np.concatenate(blocks), images)
    assert _run(make_params, tmp_path / "octmnist.npz", batch_rows=500)["seen"] == 1100
    rows = _rows(lake)
    assert np.array_equal(_image(rows["octmnist.npz:train_images:1099"]), images[1099])
    assert rows["octmnist.npz:train_images:1099"]["source_label"] == "3"
