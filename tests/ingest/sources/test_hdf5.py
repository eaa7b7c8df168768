"""HDF5 datasets of images: PatchCamelyon's x / y files per split, Galaxy10's images / ans in one file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ingest import public
from ingest.sources.hdf5 import Hdf5Source, class_names, detect
from sluice.errors import InputError


def pcam(root, n=4):
    """PatchCamelyon as torchvision downloads it: an x file and a y file (N x 1 x 1 x 1) per split."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        with h5py.File(root / f"camelyon_patchlevel2_split_{split}_x.h5", "w") as f:
            f.create_dataset("x", data=rng.integers(0, 255, (n, 12, 12, 3), dtype=np.uint8), chunks=(1, 12, 12, 3))
        with h5py.File(root / f"camelyon_patchlevel2_split_{split}_y.h5", "w") as f:
            f.create_dataset("y", data=(np.arange(n) % 2).astype(np.uint8).reshape(n, 1, 1, 1))
    return root


def test_pcam_files_pair_across_files_and_land_by_split(tmp_path, make_params, lake):
    root = pcam(tmp_path / "pcam")
    assert detect(str(root)) == {}
    params = make_params({"ingest": {"batch_rows": 3, "sources": [
        {"name": "p", "kind": "hdf5", "path": str(root), "class_names": ["normal", "tumor"]}]}})
    public.run(params)
    rows = {r["item_id"]: (r["source_label"], r["split_hint"]) for r in lake.read("raw_images").to_pylist()}
    assert len(rows) == 8
    assert rows["camelyon_patchlevel2_split_train_x.h5:x:1"] == ("tumor", "train")
    assert rows["camelyon_patchlevel2_split_valid_x.h5:x:2"] == ("normal", "val")


def test_galaxy10_images_and_ans_in_one_file_with_other_columns(tmp_path, make_params, lake):
    path = tmp_path / "Galaxy10_DECals.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.arange(5 * 8 * 8 * 3, dtype=np.uint8).reshape(5, 8, 8, 3))
        f.create_dataset("ans", data=np.array([0, 3, 3, 9, 1], np.uint8))
        f.create_dataset("ra", data=np.zeros(5))  # not images, not labels: left alone
    assert detect(str(path)) == {}
    assert class_names(Hdf5Source(name="g", kind="hdf5", path=str(path))) == ["0", "1", "3", "9"]
    params = make_params({"ingest": {"sources": [{"name": "g", "kind": "hdf5", "path": str(path)}]}})
    stats = public.run(params)["sources"]["g"]
    assert stats["inserted"] == 5
    labels = {r["item_id"]: r["source_label"] for r in lake.read("raw_images").to_pylist()}
    assert labels == {f"Galaxy10_DECals.h5:images:{i}": label for i, label in enumerate(["0", "3", "3", "9", "1"])}


def test_what_is_not_an_hdf5_of_images_is_one_line(tmp_path):
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5 file"):
        detect(str(tmp_path / "bad.h5"))
    with h5py.File(tmp_path / "table.h5", "w") as f:
        f.create_dataset("values", data=np.zeros((10, 3)))
    with pytest.raises(InputError, match="no HDF5 dataset of images"):
        detect(str(tmp_path / "table.h5"))
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("x", data=np.zeros((4, 8, 8), np.uint8))
        f.create_dataset("y", data=np.zeros(3, np.uint8))
    with pytest.raises(InputError, match="3 labels for the 4 images"):
        detect(str(tmp_path / "x.h5"))


def test_sluice_init_reads_a_folder_of_h5_files_as_hdf5(run_cli, tmp_path):
    import yaml

    from sluice.imaging import image_extensions

    assert ".h5" not in image_extensions()  # Pillow's HDF5 stub identifies files it cannot decode: no image here
    pcam(tmp_path / "pcam")
    res = run_cli("init", str(tmp_path / "proj"), "--images", str(tmp_path / "pcam"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    [source] = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["ingest"]["sources"]
    assert source["kind"] == "hdf5" and "HDF5 datasets of images, read by the hdf5 connector" in res.stdout


def test_a_dataset_of_giant_images_is_one_line_not_an_out_of_memory(tmp_path, make_params):
    with h5py.File(tmp_path / "huge.h5", "w") as f:  # 2 images of 20,000 x 20,000 x 3 (2.4 GB), never written
        f.create_dataset("images", shape=(2, 20_000, 20_000, 3), dtype=np.uint8, chunks=(1, 100, 100, 3))
    params = make_params({"ingest": {"sources": [{"name": "h", "kind": "hdf5", "path": str(tmp_path / "huge.h5")}]}})
    with pytest.raises(InputError, match="more than 256 MiB an image"):
        public.run(params)


def test_a_dataset_stored_in_another_file_is_refused(tmp_path):
    """HDF5's external storage maps a dataset onto any file's bytes: a hostile file would land /etc/hostname as
    pixels."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(range(256)) * 3)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("images", shape=(3, 16, 16), dtype=np.uint8, external=[(str(secret), 0, 768)])
    with pytest.raises(InputError, match="keeps its data in other files"):
        detect(str(tmp_path / "x.h5"))


@pytest.mark.parametrize("store", ["vlen", "fixed"])
def test_a_dataset_of_encoded_images_lands_each_files_bytes(tmp_path, make_params, lake, png, store):
    """A folder packed into one file by a script: each item a PNG / JPEG file's bytes (variable-length uint8, or
    fixed-length bytes), beside integer labels; an empty item and a class index past the names are quarantined."""
    files = [png(i) for i in range(3)] + [b""]
    path = tmp_path / "train_images.h5"
    with h5py.File(path, "w") as f:
        if store == "vlen":
            data = f.create_dataset("images", (4,), dtype=h5py.vlen_dtype(np.uint8))
            for i, raw in enumerate(files):
                data[i] = np.frombuffer(raw, np.uint8)
        else:
            f.create_dataset("images", data=np.array(files, dtype=f"S{max(map(len, files))}"))
        f.create_dataset("labels", data=np.array([0, 1, 5, 0]))
    assert detect(str(tmp_path)) == {}
    stats = public.run(make_params({"ingest": {"sources": [
        {"name": "h", "kind": "hdf5", "path": str(tmp_path), "class_names": ["cat", "dog"]}]}}))["sources"]["h"]
    rows = {r["item_id"]: (r["content"], r["source_label"], r["split_hint"]) for r in lake.read("raw_images").to_pylist()}
    assert rows == {"train_images.h5:images:0": (files[0], "cat", "train"), "train_images.h5:images:1": (files[1], "dog", "train")}
    assert stats["quarantine_reasons"] == {"bad_label": 1, "missing_image_bytes": 1}


def test_a_compressed_dataset_of_huge_fixed_items_is_one_line(tmp_path, make_params):
    """200 items of 60 MB each, gzip-compressed: a file of a few hundred KB that would read 12 GB."""
    with h5py.File(tmp_path / "train.h5", "w") as f:
        f.create_dataset("images", shape=(200,), dtype="S60000000", compression="gzip", chunks=(1,))
    with pytest.raises(InputError, match="over ingest.max_file_bytes"):
        public.run(make_params({"ingest": {"sources": [{"name": "h", "kind": "hdf5", "path": str(tmp_path)}]}}))
