"""`sluice init --images ARCHIVE`: a zip, tar or 7z of an image folder is extracted once, safely, into the project."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from PIL import Image

from sluice import init_archive
from sluice.errors import InputError


def _jpeg(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (shade, 255 - shade, 90)).save(out, "JPEG")
    return out.getvalue()


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _classes(prefix: str = "imagenette/train/") -> dict[str, bytes]:
    return {f"{prefix}{c}/{k}.JPEG": _jpeg(40 * k + 100 * i) for i, c in enumerate(("n01440764", "n02102040")) for k in range(3)}


def test_a_tgz_of_class_folders_becomes_a_project_whose_source_is_the_extracted_folder(run_cli, tmp_path):
    archive = _tar(tmp_path / "imagenette2-160.tgz", _classes())
    res = run_cli("init", str(tmp_path / "proj"), "--images", str(archive), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "extracted 6 files" in res.stdout and "2 classes (n01440764, n02102040)" in res.stdout
    params = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())
    (source,) = params["ingest"]["sources"]
    assert source["name"] == "image-imagenette2-160" and source["path"] == "sources/imagenette2-160/imagenette"
    assert (tmp_path / "proj" / source["path"] / "train" / "n01440764" / "0.JPEG").read_bytes() == _classes()[
        "imagenette/train/n01440764/0.JPEG"]
    assert "/sources/" in (tmp_path / "proj" / ".gitignore").read_text()  # images are not committed to git
    again = run_cli("init", str(tmp_path / "proj"), "--images", str(archive), "--force", cwd=tmp_path)
    assert again.returncode == 0 and "already extracted into" in again.stdout  # once


def test_a_tar_of_one_tar_a_class_is_extracted_into_class_folders(tmp_path):
    """ImageNet's ILSVRC2012_img_train.tar holds n01440764.tar, ...: each inner tar becomes its folder."""
    inner = {c: _tar(tmp_path / f"{c}.tar", {f"{c}_{k}.JPEG": _jpeg(k * 50) for k in range(2)}, "w")
             for c in ("n01440764", "n01443537")}
    outer = _tar(tmp_path / "ILSVRC2012_img_train.tar", {f"{c}.tar": p.read_bytes() for c, p in inner.items()}, "w")
    folder = init_archive.extract(outer, tmp_path / "proj", "train.tar")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "n01440764/n01440764_0.JPEG", "n01440764/n01440764_1.JPEG", "n01443537/n01443537_0.JPEG", "n01443537/n01443537_1.JPEG"]


def _hostile_tar(path: Path) -> Path:
    with tarfile.open(path, "w") as tf:
        link = tarfile.TarInfo("cat/passwd.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    return path


def _hostile_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("cat/1.jpg", _jpeg(1))
        zf.writestr("../../escaped.jpg", _jpeg(2))
    return path


@pytest.mark.parametrize("make", [_hostile_tar, _hostile_zip], ids=["link-out-of-it", "dot-dot"])
def test_a_member_that_would_land_outside_refuses_the_archive_and_leaves_nothing(tmp_path, make):
    archive = make(tmp_path / ("evil.tar" if make is _hostile_tar else "evil.zip"))
    with pytest.raises(InputError, match="evil.*refused: a member would be written outside"):
        init_archive.extract(archive, tmp_path / "proj", archive.name)
    assert not list((tmp_path / "proj" / "sources").iterdir()) and not (tmp_path / "escaped.jpg").exists()


def test_a_corrupt_archive_is_one_line_and_a_bomb_stops_at_the_disk_budget(tmp_path, monkeypatch):
    good = _tar(tmp_path / "photos.tar.gz", _classes(""))
    (tmp_path / "cut.tgz").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(InputError, match="cut.tgz: cannot extract"):
        init_archive.extract(tmp_path / "cut.tgz", tmp_path / "proj", "cut.tgz")
    monkeypatch.setattr(init_archive, "RESERVE_BYTES", 1 << 62)  # no room at all
    for archive in (good, tmp_path / "photos.zip"):
        if archive.suffix == ".zip":
            with zipfile.ZipFile(archive, "w") as zf:
                zf.writestr("cat/1.jpg", _jpeg(1))
        with pytest.raises(InputError, match="do not fit the free space"):
            init_archive.extract(archive, tmp_path / "proj", archive.name)
    assert not list((tmp_path / "proj" / "sources").iterdir())


def test_a_folder_in_the_way_is_never_replaced(tmp_path):
    (tmp_path / "proj" / "sources" / "photos" / "mine").mkdir(parents=True)
    with pytest.raises(InputError, match="exists and was not extracted from photos.tgz"):
        init_archive.extract(_tar(tmp_path / "photos.tgz", _classes("")), tmp_path / "proj", "photos.tgz")
    assert (tmp_path / "proj" / "sources" / "photos" / "mine").is_dir()


def test_only_zip_and_tar_names_are_archives(tmp_path):
    import numpy as np

    np.savez(tmp_path / "images.npz", x=np.zeros((2, 4, 4), np.uint8))  # a zip by content: packed arrays, not a folder
    (tmp_path / "notes.tar").write_text("not a tar")
    assert not init_archive.is_archive(tmp_path / "images.npz") and not init_archive.is_archive(tmp_path / "notes.tar")
    assert init_archive.is_archive(_tar(tmp_path / "a.tar.xz", _classes(""), "w:xz"))
    assert init_archive.stem(Path("food-101.tar.gz")) == "food-101" and init_archive.stem(Path("x.TGZ")) == "x"


def test_a_zip_written_with_backslashes_keeps_its_folders(tmp_path):
    """Some Windows tools write cat\\1.jpg; on Linux zipfile would make a file of that name in no class folder."""
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("photos\\cat\\1.jpg", _jpeg(1))
        zf.writestr("photos\\dog\\2.jpg", _jpeg(2))
    folder = init_archive.extract(archive, tmp_path / "proj", "photos.zip")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg")) == ["photos/cat/1.jpg", "photos/dog/2.jpg"]


def test_a_download_folder_of_archives_is_extracted_with_the_files_beside_them(run_cli, tmp_path):
    """Kaggle's dogs-vs-cats/: train.zip (train/cat.0.jpg ...) and test1.zip beside sampleSubmission.csv."""
    download = tmp_path / "dogs-vs-cats"
    download.mkdir()
    with zipfile.ZipFile(download / "train.zip", "w") as zf:
        for k in range(4):
            zf.writestr(f"train/{'cat' if k % 2 else 'dog'}.{k}.jpg", _jpeg(30 * k))
    _tar(download / "test1.tar.gz", {f"test1/{k}.jpg": _jpeg(k) for k in range(2)})
    (download / "sampleSubmission.csv").write_text("id,label\n1,0\n")
    res = run_cli("init", str(tmp_path / "proj"), "--images", str(download), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (source,) = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["ingest"]["sources"]
    assert source["path"] == "sources/dogs-vs-cats" and source["label_from"] == "name"
    folder = tmp_path / "proj" / source["path"]
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert files == {"sampleSubmission.csv", "test1/test1/0.jpg", "test1/test1/1.jpg",
                     *(f"train/train/{'cat' if k % 2 else 'dog'}.{k}.jpg" for k in range(4))}  # no marker among them
    assert init_archive.archives_only(tmp_path / "proj" / "sources") == []  # images there now: nothing to extract


def test_a_competition_zip_beside_its_labels_csv_is_labelled_by_it_with_paths_inside_the_project(run_cli, tmp_path):
    """aerial-cactus: train.zip (train/<id>.jpg) beside train.csv (id,has_cactus): the project names both relatively."""
    download = tmp_path / "cactus"
    download.mkdir()
    with zipfile.ZipFile(download / "train.zip", "w") as zf:
        for k in range(4):
            zf.writestr(f"train/{k:032x}.jpg", _jpeg(40 * k))
    (download / "train.csv").write_text("id,has_cactus\n" + "".join(f"{k:032x}.jpg,{k % 2}\n" for k in range(4)))
    res = run_cli("init", str(tmp_path / "proj"), "--images", str(download), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (source,) = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["ingest"]["sources"]
    assert (source["path"], source["labels_file"], source["label_column"]) == (
        "sources/cactus", "sources/cactus/train.csv", "has_cactus")


def _seven(path: Path, members: dict[str, bytes], password: str | None = None) -> Path:
    import py7zr

    with py7zr.SevenZipFile(path, "w", password=password) as z:
        for name, data in members.items():
            z.writestr(data, name)
    return path


def _png(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (shade, 255 - shade, 90)).save(out, "PNG")
    return out.getvalue()


def test_kaggles_cifar10_download_of_7z_archives_is_extracted_and_labelled_by_train_labels(
        run_cli, tmp_path, monkeypatch):
    """Kaggle's cifar-10/: train.7z (train/1.png ...), test.7z (test/1.png ...: the same names), trainLabels.csv
    (id,label). Each id names a train and a test image; the labels file's name says train, so it labels the train one."""
    from ingest import public
    from sluice.config import load_params

    download = tmp_path / "cifar-10"
    download.mkdir()
    classes = ["frog", "truck", "truck", "deer", "automobile", "automobile"]
    _seven(download / "train.7z", {f"train/{i}.png": _png(30 * i) for i in range(1, 7)})
    _seven(download / "test.7z", {f"test/{i}.png": _png(200 + i) for i in range(1, 4)})
    (download / "trainLabels.csv").write_text("id,label\n" + "".join(f"{i},{c}\n" for i, c in enumerate(classes, 1)))
    (download / "sampleSubmission.csv").write_text("id,label\n1,cat\n")
    res = run_cli("init", str(tmp_path / "proj"), "--images", str(download), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "cifar-10/train.7z: extracted 6 files" in res.stdout
    (source,) = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["ingest"]["sources"]
    assert (source["path"], source["labels_file"]) == ("sources/cifar-10", "sources/cifar-10/trainLabels.csv")
    monkeypatch.chdir(tmp_path / "proj")
    monkeypatch.setenv("SLUICE_PARAMS", "params.yaml")
    out = public.run(load_params())["sources"][source["name"]]
    assert out["quarantine_reasons"] == {"not_an_image_extension": 1}  # sampleSubmission.csv, kept with why
    from sluice.lake import Lake

    rows = {r["item_id"]: r["source_label"] for r in Lake.from_params(load_params()).read("raw_images").to_pylist()}
    assert {k: v for k, v in rows.items() if k.startswith("train/")} == {
        f"train/train/{i}.png": c for i, c in enumerate(classes, 1)}
    assert {k: v for k, v in rows.items() if k.startswith("test/")} == {f"test/test/{i}.png": None for i in range(1, 4)}


def _hostile_7z(path: Path, name: str = "xx/evil.png", evil: str = "../evil.png") -> Path:
    """A 7z whose member is named ``..``-relative (py7zr will not write one: the name is patched, the CRCs redone)."""
    import struct
    import zlib

    import py7zr

    with py7zr.SevenZipFile(path, "w") as z:
        z.set_encoded_header_mode(False)  # a plain header, so the name's UTF-16 bytes can be found
        z.writestr(b"x", name)
    data = bytearray(path.read_bytes())
    at = data.index(name.encode("utf-16-le"))
    data[at:at + len(name) * 2] = evil.encode("utf-16-le")
    offset, size = struct.unpack_from("<QQ", data, 12)
    struct.pack_into("<I", data, 28, zlib.crc32(data[32 + offset:32 + offset + size]))
    struct.pack_into("<I", data, 8, zlib.crc32(data[12:32]))
    path.write_bytes(data)
    return path


def test_a_hostile_encrypted_or_cut_7z_is_one_line_and_leaves_nothing(tmp_path):
    good = _seven(tmp_path / "photos.7z", {f"cat/{k}.png": _png(k) for k in range(3)})
    assert init_archive.is_archive(good) and init_archive.stem(good) == "photos"
    (tmp_path / "cut.7z").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    (tmp_path / "fake.7z").write_text("not an archive")
    assert not init_archive.is_archive(tmp_path / "fake.7z")
    cases = {_hostile_7z(tmp_path / "evil.7z"): "refused: a member would be written outside",
             _seven(tmp_path / "locked.7z", {"cat/1.png": _png(1)}, password="pw"): "encrypted",
             tmp_path / "cut.7z": "cut.7z: cannot extract"}
    for archive, message in cases.items():
        with pytest.raises(InputError, match=message):
            init_archive.extract(archive, tmp_path / "proj", archive.name)
    assert not list((tmp_path / "proj" / "sources").iterdir()) and not (tmp_path / "evil.png").exists()
    folder = init_archive.extract(good, tmp_path / "proj", "photos.7z")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")) == [f"cat/{k}.png" for k in range(3)]


@pytest.mark.parametrize("name", ["photos.zip", "photos.tar.gz", "photos.7z"])
def test_an_archive_cut_short_is_named_as_such_and_leaves_no_project(run_cli, tmp_path, name):
    """A truncated or corrupt download said "an archive: extract it first ... (`sluice init --images` extracts a
    zip...)", the command just run; it is now what it is, and the project folder init made is removed."""
    whole = tmp_path / "whole.zip"
    with zipfile.ZipFile(whole, "w") as z:
        z.writestr("cat/0.jpg", b"x" * 5000)
    (tmp_path / name).write_bytes(whole.read_bytes()[:3000] if name.endswith(".zip") else b"not an archive")
    res = run_cli("init", str(tmp_path / "proj"), "--images", str(tmp_path / name), cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert f"{name}: not a readable {name.rsplit('.', 1)[-1].replace('gz', 'tar')} archive" in res.stderr
    assert not (tmp_path / "proj").exists()
