"""Window codes kept between dedup runs: stored with the groups, read back, only new images hashed."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow.compute as pc
import pytest
from PIL import Image

from sluice.lake import Lake
from transform import dedup_codes
from transform.dedup import run
from transform.dedup_codes import WindowCodes, fill
from transform.dedup_match import WINDOWS, window_codes

COLUMNS = ["image_id", "dup_group", "is_canonical", "match_kind", "match_score", "match_with"]


def test_codes_round_trip_and_a_code_of_another_length_is_not_taken(monkeypatch):
    ids = pl.Series("image_id", ["a", "b", "c", "d", "e"])
    codes = WindowCodes(ids, 8).bind(np.array([0, 2, 3]))  # b and e: detail-free, never searched
    codes.windows[[0, 1]] = np.arange(2 * len(WINDOWS)).reshape(2, -1) - 7  # a and c; negative codes too
    codes.have_windows[[0, 1]] = True
    codes.probes[2], codes.have_probes[2] = np.arange(8), True  # d
    monkeypatch.setattr(dedup_codes, "CHUNK_ROWS", 2)  # chunks of 2 rows: codes split across them
    windows, probes = codes.binary("windows"), codes.binary("probes")
    assert windows.num_chunks == 3 and windows.null_count == 3 and probes.null_count == 4
    stored = pl.DataFrame({"image_id": ids, "window_codes": pl.from_arrow(windows), "probe_codes": pl.from_arrow(probes)})
    assert stored["window_codes"][2] == codes.windows[1].astype("<i8").tobytes()
    back = WindowCodes(ids, 8, stored.reverse()).bind(np.array([0, 1, 2, 3]))  # joined by image id, not position
    assert np.array_equal(back.have_windows, [True, False, True, False])
    assert np.array_equal(back.windows[[0, 2]], codes.windows[[0, 1]])
    assert np.array_equal(back.have_probes, [False, False, False, True]) and np.array_equal(back.probes[3], np.arange(8))
    assert not WindowCodes(ids, 4, stored).bind(np.arange(5)).have_probes.any()  # stored with 8 windows, asked 4


def test_fill_hashes_only_the_rows_without_codes(monkeypatch):
    rng = np.random.default_rng(0)
    thumbs = rng.integers(0, 256, (6, 32, 32), dtype=np.uint8)
    rows = np.array([1, 2, 4])
    codes, have = np.zeros((3, len(WINDOWS)), np.int64), np.zeros(3, bool)
    codes[1], have[1] = 12345, True  # row 2's stored code: taken as it is
    hashed = []
    monkeypatch.setattr(dedup_codes, "window_codes", lambda t, w: hashed.append(len(t)) or window_codes(t, w))
    out = fill(codes, have, thumbs, WINDOWS, rows).reshape(3, -1)
    assert hashed == [2] and (out[1] == 12345).all() and have.all()
    assert np.array_equal(out[[0, 2]], window_codes(thumbs[[1, 4]], WINDOWS))
    with pytest.raises(ValueError, match="laid out for 3 rows, asked for 6"):
        fill(codes, have, thumbs, WINDOWS, np.arange(6))


@pytest.fixture
def textured_lake(tmp_path, make_params):
    """A lake of 240 images with detail (the demo's digit scans have none, so its window search is empty),
    every sixth a copy shifted by 2 px, through ingest and clean."""
    from ingest import public
    from transform.clean import run as clean

    rng = np.random.default_rng(3)
    for k in range(240):
        coarse = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        big = np.asarray(Image.fromarray(coarse).resize((48, 48), Image.Resampling.BILINEAR))
        (tmp_path / "img" / f"c{k % 3}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(big).save(tmp_path / "img" / f"c{k % 3}" / f"{k}.png")
        if k % 6 == 0:
            Image.fromarray(np.roll(big, 2, axis=1)).save(tmp_path / "img" / f"c{k % 3}" / f"{k}-shifted.png")
    params = make_params({"lake": {"root": str(tmp_path / "lake")}, "ingest": {"sources": [
        {"name": "t", "kind": "image_folder", "path": str(tmp_path / "img")}]}})
    public.run(params)
    clean(params)
    return tmp_path / "lake"


def test_an_incremental_run_reads_the_stored_codes(textured_lake, make_params, monkeypatch):
    lake = Lake(str(textured_lake))
    params = make_params({"lake": {"root": str(textured_lake)}})
    full = make_params({"lake": {"root": str(textured_lake)}, "dedup": {"incremental": False}})
    assert run(full)["counts"]["near_pairs"] >= 30  # a full pass (the shifted copies found) stores every code
    stored = pl.from_arrow(lake.read("image_groups")).sort("image_id")
    assert stored["window_codes"].null_count() == 0 and (stored["window_codes"].bin.size() == 8 * len(WINDOWS)).all()
    assert (stored["probe_codes"].bin.size() == 8 * 8).all()  # dedup.mirrored: 4 windows and their mirrors
    late = stored["image_id"].to_list()[::25]
    rows = lake.read("images", filter=pc.field("image_id").isin(late))
    lake.overwrite("images", rows.schema.empty_table(), predicate="image_id IN ({})".format(", ".join(f"'{i}'" for i in late)))
    run(full)
    lake.append("images", rows)
    hashed = []
    real = dedup_codes.window_codes
    monkeypatch.setattr(dedup_codes, "window_codes", lambda t, w: hashed.append(len(t)) or real(t, w))
    counts = run(params)["counts"]
    assert counts["mode"] == "incremental" and counts["new_images"] == len(late)
    assert hashed == [len(late), len(late)]  # the new images' query and indexed windows, no one else's
    after = pl.from_arrow(lake.read("image_groups")).sort("image_id")
    assert after.select(COLUMNS).equals(stored.select(COLUMNS))  # the groups of the full pass
    assert after["window_codes"].equals(stored["window_codes"]) and after["probe_codes"].equals(stored["probe_codes"])
