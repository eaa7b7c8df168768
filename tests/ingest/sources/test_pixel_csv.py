"""Images as rows of pixel values in a CSV: Kaggle's Digit Recognizer, HAM10000's hmnist, FER2013, written small."""

import io

import numpy as np
import pytest
from PIL import Image

from ingest import public
from ingest.sources.pixel_csv import FER, detect
from sluice.errors import InputError


def _columns_csv(path, pixels, labels=None, first="label", name="pixel{}"):
    head = [name.format(i) for i in range(pixels.shape[1])]
    lines = [",".join(([first] if labels is not None else []) + head)]
    for k, row in enumerate(pixels):
        lines.append(",".join(([str(labels[k])] if labels is not None else []) + [str(v) for v in row]))
    path.write_text("\n".join(lines) + "\n")


def _run(make_params, path, **extra):
    params = make_params({"ingest": {"batch_rows": 4, "sources": [{"name": "p", "kind": "pixel_csv", "path": str(path),
                                                                   **extra}]}})
    return public.run(params)["sources"]["p"]


def _image(row) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(row["content"])))


def test_digit_recognizer_train_and_test_csvs(tmp_path, make_params, lake, run_cli):
    """train.csv (label, pixel0..pixel783) and an unlabelled test.csv beside a sample submission: each row a 28 x 28
    greyscale PNG with its label, split by the file's name; sluice init picks the connector for the folder."""
    folder = tmp_path / "digit-recognizer"
    folder.mkdir()
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (6, 784)), rng.integers(0, 256, (3, 784))
    _columns_csv(folder / "train.csv", train, [3, 1, 4, 1, 5, 9])
    _columns_csv(folder / "test.csv", test)
    (folder / "sample_submission.csv").write_text("ImageId,Label\n1,0\n")
    assert detect(str(folder)) == {}
    stats = _run(make_params, folder)
    assert stats["inserted"] == 9 and stats["quarantined"] == 0
    rows = {r["item_id"]: r for r in lake.read("raw_images").to_pylist()}
    assert np.array_equal(_image(rows["train.csv:2"]), train[2].reshape(28, 28))
    assert (rows["train.csv:5"]["source_label"], rows["train.csv:5"]["split_hint"]) == ("9", "train")
    assert (rows["test.csv:1"]["source_label"], rows["test.csv:1"]["split_hint"]) == (None, "test")
    res = run_cli("init", str(tmp_path / "proj"), "--images", str(folder), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "CSVs of pixel values (a row an image), read by the pixel_csv connector" in res.stdout
    assert "5 classes (1, 3, 4, 5, 9)" in res.stdout  # from the label column, in numeric order


def test_hmnist_rgb_columns_make_rgb_images(tmp_path, make_params, lake):
    """HAM10000's hmnist_28_28_RGB.csv: pixel0000..pixel2351 (RGB interleaved), then label; a value past 255 is
    quarantined with its row."""
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (3, 28 * 28 * 3))
    pixels[2, 5] = 300
    path = tmp_path / "hmnist_28_28_RGB.csv"
    head = ",".join(f"pixel{i:04d}" for i in range(pixels.shape[1]))
    path.write_text(head + ",label\n" + "".join(",".join(map(str, row)) + f",{k}\n" for k, row in enumerate(pixels)))
    stats = _run(make_params, path)
    assert stats["inserted"] == 2 and stats["quarantine_reasons"] == {"pixel_out_of_range": 1}
    rows = {r["item_id"]: r for r in lake.read("raw_images").to_pylist()}
    assert np.array_equal(_image(rows["hmnist_28_28_RGB.csv:1"]), pixels[1].reshape(28, 28, 3))
    assert rows["hmnist_28_28_RGB.csv:1"]["split_hint"] is None


def test_fer2013_text_pixels_usage_splits_and_emotion_names(tmp_path, make_params, lake):
    """fer2013.csv: emotion, pixels (2,304 space-separated values), Usage; PublicTest is val, PrivateTest test;
    init names the seven emotions; a row of another count is quarantined."""
    rng = np.random.default_rng(2)
    faces = rng.integers(0, 256, (6, 48 * 48))
    usage = ["Training", "Training", "PublicTest", "PrivateTest", "Training", "PublicTest"]
    lines = ["emotion,pixels,Usage"] + [f"{k},{' '.join(map(str, face))},{u}" for k, (face, u) in enumerate(zip(faces, usage))]
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(lines + ["3,1 2 3,Training"]) + "\n")
    found = detect(str(path))
    assert found == {"class_names": FER}
    stats = _run(make_params, path, **found)
    assert stats["inserted"] == 6 and stats["quarantine_reasons"] == {"bad_pixel_count": 1}
    rows = {r["item_id"]: r for r in lake.read("raw_images").to_pylist()}
    assert np.array_equal(_image(rows["fer2013.csv:3"]), faces[3].reshape(48, 48))
    assert [(rows[f"fer2013.csv:{k}"]["source_label"], rows[f"fer2013.csv:{k}"]["split_hint"]) for k in (0, 2, 3)] == [
        ("Angry", "train"), ("Fear", "val"), ("Happy", "test")]


def test_what_is_not_a_pixel_csv_is_one_line(tmp_path, make_params, png):
    path = tmp_path / "train.csv"
    _columns_csv(path, np.zeros((2, 784), dtype=int), [1, 2])
    path.write_text(path.read_text().replace("\n1,0,", "\n1,x,", 1))
    assert _run(make_params, path)["quarantine_reasons"] == {"pixel_out_of_range": 1}  # 'x' is no pixel value
    path.write_text(path.read_text() + "3,0,0\n")
    with pytest.raises(InputError, match=r"train.csv: not a CSV of pixel values \(CSV parse error: Expected 785 columns"):
        _run(make_params, path)
    _columns_csv(path, np.zeros((2, 700), dtype=int), [1, 2])
    with pytest.raises(InputError, match="cannot tell the image shape from 700 values a row"):
        _run(make_params, path)
    assert _run(make_params, path, shape=[20, 35])["inserted"] == 2
    (tmp_path / "a.png").write_bytes(png(1))
    with pytest.raises(InputError, match="no CSV of pixel values"):
        detect(str(tmp_path))  # a folder of images with a pixel CSV beside them is an image folder
