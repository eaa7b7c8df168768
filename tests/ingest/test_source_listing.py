"""The image folders' digest that ingest_public depends on in place of the folders."""

from __future__ import annotations

import os
from pathlib import Path

from ingest.source_listing import HashCache, list_folder


def _listing(folder: Path, cache_path: Path) -> dict:
    cache = HashCache(cache_path)
    found = list_folder(folder, cache)
    cache.save([os.fsencode(os.path.abspath(folder)) + b"/"])
    return found


def _folder(root: Path) -> Path:
    for cls, n in (("cat", 3), ("dog", 2)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            (root / cls / f"{i}.jpg").write_bytes(f"{cls} {i}".encode())
    return root


def test_the_digest_follows_contents_and_names_not_times(tmp_path):
    photos, cache = _folder(tmp_path / "photos"), tmp_path / "runs" / "hashes.sqlite"
    first = _listing(photos, cache)
    assert (first["files"], first["bytes"], first["hashed"]) == (5, 5 * 5, 5)
    again = _listing(photos, cache)
    assert again == {**first, "hashed": 0}  # every hash from the cache

    for path in photos.rglob("*.jpg"):  # new times, same contents: rehashed, the same digest
        os.utime(path, ns=(1, 1))
    touched = _listing(photos, cache)
    assert touched["sha256"] == first["sha256"] and touched["hashed"] == 5

    (photos / "dog" / "1.jpg").write_bytes(b"dog X")  # same size, new contents
    changed = _listing(photos, cache)
    assert changed["sha256"] != first["sha256"] and changed["hashed"] == 1
    (photos / "dog" / "1.jpg").write_bytes(b"dog 1")
    assert _listing(photos, cache)["sha256"] == first["sha256"]

    (photos / "dog" / "1.jpg").rename(photos / "cat" / "9.jpg")  # the same bytes under another label
    moved = _listing(photos, cache)
    assert moved["sha256"] != first["sha256"] and moved["files"] == 5


def test_any_name_on_disk_is_listed_and_metadata_folders_are_not(tmp_path):
    photos, cache = _folder(tmp_path / "photos"), tmp_path / "hashes.sqlite"
    before = _listing(photos, cache)
    (photos / ".git").mkdir()
    (photos / ".git" / "index").write_bytes(b"changes every commit")
    (photos / "__MACOSX").mkdir()
    (photos / "__MACOSX" / "._0.jpg").write_bytes(b"resource fork")
    (photos / ".DS_Store").write_bytes(b"Finder rewrites it whenever the folder is opened")
    (photos / "dog" / "Thumbs.db").write_bytes(b"Windows' thumbnails")
    assert _listing(photos, cache)["sha256"] == before["sha256"]  # as the connector, left out

    with open(os.fsencode(photos / "cat") + b"/caf\xe9.jpg", "wb") as fh:  # a Latin-1 name from an old disk
        fh.write(b"cafe")
    latin1 = _listing(photos, cache)
    assert (latin1["files"], latin1["names_not_utf8"]) == (6, 1) and latin1["sha256"] != before["sha256"]


def test_a_broken_link_is_listed_as_unreadable_and_deleted_files_leave_the_cache(tmp_path):
    photos, cache_path = _folder(tmp_path / "photos"), tmp_path / "hashes.sqlite"
    (photos / "cat" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    found = _listing(photos, cache_path)
    assert (found["files"], found["hashed"]) == (6, 5)  # listed, counted, not hashable
    (photos / "cat" / "gone.jpg").unlink()
    assert _listing(photos, cache_path)["sha256"] != found["sha256"]  # it was in the digest
    (photos / "cat" / "0.jpg").unlink()
    _listing(photos, cache_path)
    cache = HashCache(cache_path)
    assert sorted(Path(os.fsdecode(p)).name for p in cache.rows) == ["0.jpg", "1.jpg", "1.jpg", "2.jpg"]


def test_the_stage_lists_each_image_folder_and_refuses_one_holding_the_project(tmp_path, make_params, monkeypatch):
    import pytest

    from ingest.source_listing import run
    from sluice.errors import InputError

    photos = _folder(tmp_path / "photos")
    params = make_params({"ingest": {"sources": [
        {"name": "mine", "kind": "image_folder", "path": str(photos)},
        {"name": "gone", "kind": "image_folder", "path": str(tmp_path / "nowhere")},
        {"name": "table", "kind": "parquet", "path": str(tmp_path / "t.parquet")}]}})  # DVC hashes a file itself
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    listing = run(params)
    assert set(listing) == {"mine", "gone"} and listing["gone"]["missing"] is True
    assert listing["mine"]["files"] == 5 and (tmp_path / "proj" / "runs" / "source_hashes.sqlite").is_file()
    (photos / "proj").mkdir()
    monkeypatch.chdir(photos / "proj")
    with pytest.raises(InputError, match="image folder of source 'mine' holds this project"):
        run(params)
