"""The SVHN connector on MATLAB files written here as SVHN ships them (X: 32 x 32 x 3 x N, y: N x 1)."""

import io

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy.io import savemat

from ingest import public
from sluice.errors import InputError


def write(folder, name, n, labels, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    images = np.random.default_rng(seed).integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    savemat(folder / name, {"X": images, "y": np.array(labels, np.uint8).reshape(-1, 1)})
    return images


def params(make_params, path):
    return make_params({"ingest": {"batch_rows": 4, "sources": [{"name": "s", "kind": "svhn", "path": str(path)}]}})


def test_digits_land_with_10_as_zero_in_their_splits(tmp_path, make_params, lake):
    train = write(tmp_path / "svhn", "train_32x32.mat", 3, [10, 1, 9])
    write(tmp_path / "svhn", "test_32x32.mat", 2, [3, 11], seed=1)  # 11: not a digit
    stats = public.run(params(make_params, tmp_path / "svhn"))["sources"]["s"]
    assert (stats["inserted"], stats["quarantine_reasons"]) == (4, {"bad_label": 1})
    rows = {r["item_id"]: r for r in lake.read("raw_images").to_pylist()}
    assert {k: (r["source_label"], r["split_hint"]) for k, r in rows.items()} == {
        "train_32x32.mat:0": ("0", "train"), "train_32x32.mat:1": ("1", "train"), "train_32x32.mat:2": ("9", "train"),
        "test_32x32.mat:0": ("3", "test")}
    first = np.asarray(Image.open(io.BytesIO(rows["train_32x32.mat:0"]["content"])))
    assert (first == train[:, :, :, 0]).all()  # the pixels as they are, not transposed
    assert rows["train_32x32.mat:2"]["extra"] == '{"train_index": 2}'
    [bad] = lake.read("quarantine").to_pylist()
    assert bad["row_key"].endswith("test_32x32.mat#1") and "outside 1..10" in bad["details"]
    assert public.run(params(make_params, tmp_path / "svhn"))["sources"]["s"]["inserted"] == 0  # idempotent


def test_a_file_that_is_not_svhns_is_one_line(tmp_path, make_params):
    (tmp_path / "train_32x32.mat").write_bytes(b"<html>not found</html>")  # a download that failed
    with pytest.raises(InputError, match="train_32x32.mat: not a readable MATLAB v5 file"):
        public.run(params(make_params, tmp_path))
    savemat(tmp_path / "train_32x32.mat", {"images": np.zeros(3)})
    with pytest.raises(InputError, match="holds no X and y arrays .* found images"):
        public.run(params(make_params, tmp_path))


def test_init_images_on_an_svhn_folder_writes_an_svhn_source(tmp_path, run_cli):
    write(tmp_path / "SVHN", "train_32x32.mat", 2, [10, 4])
    result = run_cli("init", str(tmp_path / "proj"), "--images", str(tmp_path / "SVHN"))
    assert result.returncode == 0, result.stderr
    assert "SVHN's .mat files, read by the svhn connector" in result.stdout and "10 classes (0, 1, 2" in result.stdout
    source = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["ingest"]["sources"][0]
    assert source["kind"] == "svhn"
    dvc = yaml.safe_load((tmp_path / "proj" / "dvc.yaml").read_text())
    assert (tmp_path / "SVHN").as_posix() in dvc["stages"]["ingest_public"]["deps"]
