"""WebDataset shards (timm's imagenet-1k-wds, img2dataset's output): samples by key, labels from .cls / .json,
hostile members, a shard cut short, and what is not a WebDataset."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from ingest import public
from ingest.sources.webdataset import detect
from sluice.errors import InputError


def shard(path, members: list[tuple[str, bytes | None]]) -> None:
    """A tar of ``(name, bytes)`` in order; ``None`` bytes: a symlink."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_shards_land_with_labels_ids_and_splits(tmp_path, make_params, lake, png):
    root = tmp_path / "wds"
    shard(root / "imagenet1k-train-0000.tar", [
        ("000000.jpg", png(0)), ("000000.cls", b"1"), ("000000.json", b'{"filename": "n1.JPEG"}'),
        ("000001.png", png(1)), ("000001.json", json.dumps({"label": "tench", "caption": "a fish"}).encode()),
        ("000002.jpg", png(2)), ("000002.txt", b"a caption is not a label"),
        ("000003.jpg", png(3)), ("000003.cls", b"9"),  # past the names
        ("000004.txt", b"no image"),
        ("../../etc/000005.jpg", png(5)), ("../../etc/000005.cls", b"0"),  # a hostile path is only a name
        ("000006.jpg", None)])  # a link, not a file
    shard(root / "imagenet1k-validation-0000.tar", [("v0.jpg", png(7)), ("v0.cls", b"0")])
    shard(tmp_path / "named" / "train-0000.tar", [("n0.jpg", png(8)), ("n0.cls", b"4"),
                                                 ("n0.json", b'{"label": 4, "class_name": "great white shark"}')])
    params = make_params({"ingest": {"sources": [{"name": "w", "kind": "webdataset", "path": str(root),
                                                  "class_names": ["goldfish", "tench"]}]}})
    stats = public.run(params)["sources"]["w"]
    assert stats["quarantine_reasons"] == {"bad_label": 1, "missing_image_bytes": 1, "unreadable": 1}
    rows = {r["item_id"]: (r["source_label"], r["split_hint"]) for r in lake.read("raw_images").to_pylist()}
    assert rows == {"000000": ("tench", "train"), "000001": ("tench", "train"), "000002": (None, "train"),
                    "../../etc/000005": ("goldfish", "train"), "v0": ("goldfish", "val")}
    assert not (tmp_path / "etc").exists()
    params = make_params({"ingest": {"sources": [{"name": "n", "kind": "webdataset", "path": str(tmp_path / "named")}]}})
    public.run(params)  # no class_names: the index is named by the class name its json gives
    assert {r["item_id"]: r["source_label"] for r in lake.read("raw_images").to_pylist()}["n0"] == "great white shark"


def test_a_shard_cut_short_keeps_what_came_before(tmp_path, make_params, lake, png):
    whole = tmp_path / "full.tar"
    shard(whole, [(f"{i:03d}.jpg", png(i, size=(64, 64))) for i in range(4)])
    cut = tmp_path / "wds" / "part-00000.tar"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[:int(whole.stat().st_size * 0.6)])  # a partial download
    params = make_params({"ingest": {"sources": [{"name": "w", "kind": "webdataset", "path": str(cut.parent)}]}})
    stats = public.run(params)["sources"]["w"]
    assert stats["quarantine_reasons"] == {"truncated": 1}
    assert 1 <= len(lake.read("raw_images")) < 4


def test_detection(tmp_path, png):
    shard(tmp_path / "a" / "00000.tar", [("00000.jpg", png(0)), ("00000.txt", b"caption")])
    assert detect(str(tmp_path / "a")) == {} and detect(str(tmp_path / "a" / "00000.tar")) == {}
    shard(tmp_path / "b" / "photos.tar", [("cat/1.jpg", png(1)), ("dog/2.jpg", png(2))])  # a tarred image folder
    with pytest.raises(InputError, match="a tar of folders of images, not WebDataset shards: extract it"):
        detect(str(tmp_path / "b" / "photos.tar"))
    shard(tmp_path / "c" / "docs.tar", [("readme.md", b"# hi")])
    with pytest.raises(InputError, match="holds no image file"):
        detect(str(tmp_path / "c"))
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="no WebDataset shards"):
        detect(str(tmp_path / "d"))


def test_sluice_init_on_a_folder_of_shards_writes_the_source(run_cli, tmp_path, png):
    import yaml

    shard(tmp_path / "shards" / "train-0000.tar", [("k0.jpg", png(0)), ("k0.cls", b"3")])
    res = run_cli("init", str(tmp_path / "proj"), "--images", str(tmp_path / "shards"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    [source] = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["ingest"]["sources"]
    assert source["kind"] == "webdataset" and "WebDataset tar shards, read by the webdataset connector" in res.stdout


def test_a_patient_field_of_the_json_is_each_samples_subject(tmp_path, png):
    from ingest.sources.webdataset import WebDatasetSource, read_webdataset

    path = tmp_path / "xray-train-000.tar"
    shard(path, [m for i, p in enumerate(["p1", "p1", "p2"]) for m in (
        (f"{i:04d}.png", png(i)), (f"{i:04d}.json", json.dumps({"label": "normal", "patient_id": p}).encode()))])
    found = detect(str(path))
    assert found == {"subject_field": "patient_id"}
    records = list(read_webdataset(WebDatasetSource(name="x", kind="webdataset", path=str(path), **found), 10**6))
    assert [(r.label, r.subject) for r in records] == [("normal", "p1"), ("normal", "p1"), ("normal", "p2")]


def test_sluice_init_says_the_subject_a_shard_names(run_cli, tmp_path, png):
    shard(tmp_path / "shards" / "train-000.tar", [("0.png", png(0)), ("0.json", b'{"label": "a", "patient_id": "p1"}')])
    res = run_cli("init", str(tmp_path / "proj"), "--images", str(tmp_path / "shards"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "field 'patient_id' names what each image shows (a patient, a lesion, a sequence)" in res.stdout
    assert "export SLUICE_PSEUDONYM_KEY=" in res.stdout
