"""`sluice predict`: pipeline preprocessing, labels and confidences, and bad files reported one line each."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sluice import snapshot
from train import quantize
from train.data import EvalLoader, LoaderSpec, load_data
from train.model import load_model
from train.predict import Classifier

AGREEMENT = 0.95  # `sluice predict` on PNG files = the model on the snapshot's pixels, for >= 95% of files


@pytest.fixture(scope="module")
def models(small_snapshot, trained_fp32, tmp_path_factory):
    """An fp32 model from the trainer and its int8 program, saved as the compress stage saves it."""
    out = tmp_path_factory.mktemp("predict")
    model, config = load_model(trained_fp32)
    data = load_data(small_snapshot, LoaderSpec(), splits=("train",))
    example = quantize.example_input(config["image_shape"])
    calibration = quantize.calibration_batches(EvalLoader(data.train.split, data.mean, data.std, batch_size=64), 256)
    int8 = quantize.quantize_ptq(model, calibration, example)
    preprocess = {k: config[k] for k in ("classes", "image_shape", "mean", "std")}
    quantize.save_program(out / "int8", quantize.export_program(int8, example), {**preprocess, "variant": "int8"})
    return out


@pytest.fixture(scope="module")
def images(small_snapshot, tmp_path_factory):
    """Test-split digits written as PNG files (RGB, and one as greyscale+alpha to exercise conversion)."""
    folder = tmp_path_factory.mktemp("pngs")
    test = snapshot.load_split(small_snapshot, "test")
    paths = []
    for i in range(40):
        path = folder / f"digit{i:02d}.png"
        Image.fromarray(np.asarray(test.images[i])).save(path)
        paths.append(str(path))
    return paths, np.asarray(test.images[:40]), test.labels[:40]


def _params(tmp_path):
    return {"lake": {"root": str(tmp_path / "lake")}}


def test_predict_prints_label_and_confidence_per_file(models, images, run_cli, tmp_path):
    paths, pixels, labels = images
    result = run_cli("predict", *paths, "--model", str(models / "int8"), params=_params(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(paths)
    rows = [line.split("\t") for line in lines]
    assert [r[0] for r in rows] == paths
    assert all(0.0 < float(r[2]) <= 1.0 for r in rows)
    # same decode/resize/normalise as the pipeline: the file's answer is the model's answer on the snapshot pixels
    classifier = Classifier(models / "int8")
    direct, _ = classifier.classify(pixels)
    predicted = np.array([classifier.classes.index(r[1]) for r in rows])
    assert (predicted == direct).mean() >= AGREEMENT
    assert (predicted == labels).mean() >= 0.8  # and it is actually right on real digits


def test_predict_reports_bad_files_one_line_each_and_continues(models, images, run_cli, tmp_path):
    paths, _, _ = images
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(open(paths[0], "rb").read()[:60])
    text = tmp_path / "notes.txt"
    text.write_text("this is not an image\n")
    missing = tmp_path / "missing.png"
    result = run_cli("predict", str(truncated), paths[1], str(text), str(missing), "--model", str(models / "int8"),
                     params=_params(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[0].startswith(paths[1] + "\t")
    errors = [line for line in result.stderr.splitlines() if line.startswith("sluice: predict: /")]
    assert len(errors) == 3
    assert str(truncated) in errors[0] and ("truncated" in errors[0] or "undecodable" in errors[0])
    assert str(text) in errors[1] and "not_an_image" in errors[1]
    assert str(missing) in errors[2] and "unreadable" in errors[2]
    assert "Traceback" not in result.stderr


def test_predict_takes_a_folder_as_its_image_files_in_name_order(models, images, run_cli, tmp_path):
    """A folder stands for the image files in it and below (sorted; hidden ones and other files left out, the
    latter counted); a folder of no image is one rejection."""
    import shutil

    paths, _, _ = images
    folder = tmp_path / "photos"
    (folder / "b").mkdir(parents=True)
    (folder / ".cache").mkdir()
    shutil.copy(paths[0], folder / "z.png")
    shutil.copy(paths[1], folder / "b" / "a.png")
    shutil.copy(paths[2], folder / ".cache" / "x.png")
    (folder / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    result = run_cli("predict", str(folder), str(tmp_path / "empty"), "--model", str(models / "int8"),
                     params=_params(tmp_path))
    assert result.returncode == 0, result.stderr
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [str(folder / "b" / "a.png"),
                                                                            str(folder / "z.png")]
    assert f"{folder}: 1 file(s) without an image extension left out" in result.stderr
    assert f"{tmp_path / 'empty'}: not_a_file: a folder of no image files" in result.stderr


def test_predict_exits_non_zero_only_when_every_file_fails(models, run_cli, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    result = run_cli("predict", str(bad), str(empty), "--model", str(models / "int8"), params=_params(tmp_path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "all 2 input(s) failed" in result.stderr
    assert "zero_byte" in result.stderr
    assert "Traceback" not in result.stderr


def test_predict_with_the_fp32_folder_and_json_output(trained_fp32, images, run_cli, tmp_path):
    paths, _, labels = images
    result = run_cli("predict", *paths[:5], "--model", str(trained_fp32), "--format", "json",
                     params=_params(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == paths[:5]
    assert all(set(r) == {"path", "label", "confidence"} for r in rows)


def test_predict_without_a_compress_stage_uses_the_trained_model(trained_fp32, images, run_cli, tmp_path):
    """A project made without --compress has no models/int8: the default fell on it and said to run a stage the
    project does not have; the trained fp32 model is used instead, said on stderr."""
    paths, _, _ = images
    params = {**_params(tmp_path), "train": {"out_dir": str(trained_fp32)},
              "compress": {"out_dir": str(tmp_path / "models")}}
    result = run_cli("predict", *paths[:2], params=params)
    assert result.returncode == 0, result.stderr
    assert f"no int8 model at {tmp_path / 'models' / 'int8'} (the compress stage has not run): using" in result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_predict_converts_modes_like_the_clean_stage(models, images, tmp_path):
    paths, pixels, _ = images
    grey_alpha = tmp_path / "la.png"
    Image.fromarray(pixels[0]).convert("LA").save(grey_alpha)
    classifier = Classifier(models / "int8")
    [pred] = list(classifier.predict([str(grey_alpha)]))
    assert pred.error is None and pred.label in classifier.classes


def test_predict_names_a_missing_model_folder(run_cli, tmp_path, images):
    paths, _, _ = images
    result = run_cli("predict", paths[0], "--model", str(tmp_path / "nowhere"), params=_params(tmp_path))
    assert result.returncode == 2
    assert "nowhere" in result.stderr and "not a model folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_folder_of_extensionless_dicom_files_expands_to_them(tmp_path):
    """A PACS export's IM000000 files are images (read by content, as ingest reads them); its DICOMDIR index and a
    README are not."""
    from pydicom.data import get_testdata_file

    from train.predict_commands import expand

    series = tmp_path / "DICOM" / "PA000000"
    series.mkdir(parents=True)
    ct = open(get_testdata_file("CT_small.dcm"), "rb").read()
    (series / "IM000000").write_bytes(ct)
    (series / "IM000001").write_bytes(ct)
    (tmp_path / "DICOMDIR").write_bytes(ct)
    (tmp_path / "README").write_text("exported")
    assert expand([str(tmp_path)]) == [str(series / "IM000000"), str(series / "IM000001")]
