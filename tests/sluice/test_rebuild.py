"""Rebuilding a snapshot from its manifest by Delta time travel, without the export stage or params."""

from __future__ import annotations

import pytest

from sluice.errors import UserError
from sluice.rebuild import rebuild
from sluice.snapshot import read_manifest
from tests.transform.test_export import dataset_rows, image_rows, put_images


@pytest.fixture
def exported(lake, make_params, tmp_path):
    from demo.generate import digit_images
    from transform.export import export

    images, labels = digit_images(0)
    rows = image_rows(images[:120])
    put_images(lake, rows)
    ids = rows.column("image_id").to_pylist()
    splits = ["train", "val", "test", "nonsense"] + ["train"] * 116  # one row the export quarantines
    lake.overwrite("dataset", dataset_rows(ids, labels[:120], splits=splits))
    params = make_params({"export": {"out_dir": str(tmp_path / "snap"), "shard_rows": 32}})
    manifest, rejects, _ = export(lake, tmp_path / "snap", params)
    assert rejects
    return manifest


def test_rebuild_from_the_manifest_matches_the_export(lake, exported, tmp_path):
    lake.overwrite("dataset", dataset_rows(["x"], [0]))  # the lake moves on; time travel goes back
    rebuilt = rebuild(lake, exported, tmp_path / "again")
    assert rebuilt["content_hash"] == exported["content_hash"]
    assert read_manifest(tmp_path / "again") == exported


def test_rebuild_of_a_vacuumed_version_is_one_line(lake, exported, tmp_path):
    from sluice.maintenance import maintain_table

    lake.overwrite("dataset", dataset_rows(["x"], [0]))
    maintain_table(lake, "dataset", set(), retention_hours=0, target_file_mb=1, dry_run=False)
    with pytest.raises(UserError, match=r"dataset@\d+: its data files were vacuumed .* oldest readable version is"):
        rebuild(lake, exported, tmp_path / "again")
