"""Pointers in place of data (a clone without Git LFS or git-annex content) are named, never read as data."""

from __future__ import annotations

import hashlib
import os

import pytest

from sluice import not_downloaded
from sluice.errors import InputError


def lfs_pointer(content: bytes) -> bytes:
    """What `git clone` without `git lfs` leaves in place of a file tracked by LFS."""
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(content).hexdigest()}\n"
            f"size {len(content)}\n").encode()


def test_an_lfs_pointer_is_named_with_its_size_and_the_command_that_fetches_it():
    note = not_downloaded.pointer_note(lfs_pointer(b"abc"))
    assert note == "a Git LFS pointer to 3 bytes, not the file: run `git lfs pull` in its repository"
    assert "git annex get" in not_downloaded.pointer_note(b"/annex/objects/SHA256E-s886--0c3b.jpg\n")


@pytest.mark.parametrize("content", [
    b"\x89PNG\r\n\x1a\n" + b"\0" * 40,  # an image
    b"version https://example.com/spec/v1\n",  # text that is no pointer
    lfs_pointer(b"abc") + b" " * 2000,  # larger than any pointer: content
    b"",
])
def test_anything_else_is_not_a_pointer(content):
    assert not_downloaded.pointer_note(content) is None


def test_a_broken_link_into_git_annex_is_named_and_a_working_link_is_not(tmp_path):
    objects = tmp_path / ".git" / "annex" / "objects" / "Xk" / "3Q"
    objects.mkdir(parents=True)
    (tmp_path / "cat.jpg").symlink_to(objects / "SHA256E-s886--0c3b.jpg")
    assert "git annex get" in not_downloaded.file_note(tmp_path / "cat.jpg")
    (objects / "SHA256E-s886--0c3b.jpg").write_bytes(b"\xff\xd8 a jpeg's bytes")  # `git annex get` done
    assert not_downloaded.file_note(tmp_path / "cat.jpg") is None
    (tmp_path / "other.jpg").symlink_to(tmp_path / "gone.jpg")  # broken, but no annex link: not ours to name
    assert not_downloaded.file_note(tmp_path / "other.jpg") is None


def test_a_source_mostly_of_pointers_is_refused_and_a_partial_one_is_said(tmp_path, capsys):
    data = tmp_path / "hf" / "data"
    data.mkdir(parents=True)
    (tmp_path / "hf" / ".gitattributes").write_text("*.parquet filter=lfs diff=lfs merge=lfs -text\n")  # not data
    (data / "train.parquet").write_bytes(lfs_pointer(b"p" * 5000))
    with pytest.raises(InputError, match=r"hf: 1 of the 1 files are pointers .*train.parquet is a Git LFS pointer "
                                         r"to 5,000 bytes.*git lfs pull"):
        not_downloaded.check(tmp_path / "hf", "hf")
    with pytest.raises(InputError, match="train.parquet: a Git LFS pointer to 5,000 bytes"):
        not_downloaded.check(data / "train.parquet", "train.parquet")
    for k in range(3):
        (data / f"real{k}.parquet").write_bytes(b"PAR1" + os.urandom(2000))
    not_downloaded.check(tmp_path / "hf", "hf")  # partly fetched (`git lfs pull --include`): said, not refused
    assert "hf: 1 of the 4 files are pointers" in capsys.readouterr().out
    assert not_downloaded.scan(tmp_path / "hf", limit=2)[1] == 2  # a large folder is looked at in part


def test_init_refuses_a_clone_without_its_lfs_content(run_cli, tmp_path):
    photos = tmp_path / "photos" / "cat"
    photos.mkdir(parents=True)
    for k in range(3):
        (photos / f"{k}.jpg").write_bytes(lfs_pointer(bytes([k]) * 900))
    res = run_cli("init", str(tmp_path / "proj"), "--images", str(tmp_path / "photos"), cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "3 of the 3 files are pointers to content never downloaded" in res.stderr
    assert "git lfs pull" in res.stderr and not (tmp_path / "proj" / "params.yaml").exists()
