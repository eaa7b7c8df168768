"""``sluice duplicates``: the demo's planted copies listed by file, a test/train leak found, errors in one line."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from sluice.lake import Lake


def listed(run_cli, root, *args) -> tuple[list[dict], str]:
    """``sluice duplicates --format json ARGS`` on the lake at ``root`` (a subprocess: the CLI ends its process)."""
    done = run_cli("duplicates", "--format", "json", *args, params={"lake": {"root": str(root)}},
                   env={"SLUICE_ROLE": ""})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_every_planted_copy_is_listed_by_file(run_cli, demo_lake, demo_truth):
    pairs, err = listed(run_cli, demo_lake)
    as_pairs = {frozenset((p["uri"], p["partner_uri"])) for p in pairs}
    assert len(as_pairs) == len(pairs)  # each pair once, in one direction
    groups, _ = listed(run_cli, demo_lake, "--groups")
    group_of = {g["uri"]: g["dup_group"] for g in groups}

    # the same bytes landed twice: listed as an identical pair, the later landing against the first
    raw = Lake(str(demo_lake)).read("raw_images", columns=["image_id", "source", "source_uri"]).to_pylist()
    by_id: dict[str, list] = {}
    for r in raw:
        by_id.setdefault(r["image_id"], []).append((r["source"], r["source_uri"]))
    relanded = {frozenset((min(v)[1], uri)) for v in by_id.values() if len(v) > 1 for _, uri in sorted(v)[1:]}
    identical = {frozenset((p["uri"], p["partner_uri"])) for p in pairs if p["kind"] == "identical"}
    assert relanded and identical == relanded
    assert all(p["score"] == 1.0 and p["image_id"] == p["partner_id"] for p in pairs if p["kind"] == "identical")

    # every planted exact and near copy shares a listed group with its original (dedup's own recall is
    # tested in test_dedup.py; here: the listing loses none of the groups it found)
    for original, copy in demo_truth["exact_duplicates"]:
        assert group_of[original] == group_of[copy]
    near = demo_truth["near_duplicates"]
    assert sum(group_of.get(d["original"], 1) == group_of.get(d["copy"], 2) for d in near) / len(near) >= 0.95

    # --groups: every group has its stated number of files, two or more
    sizes: dict[str, int] = {}
    for g in groups:
        sizes[g["dup_group"]] = sizes.get(g["dup_group"], 0) + 1
    assert all(g["group_files"] == sizes[g["dup_group"]] >= 2 for g in groups)
    assert f"{len(pairs):,} pairs" in err and "0 of them across splits" in err

    cropped, _ = listed(run_cli, demo_lake, "--kind", "recoloured", "--min-score", "0.9")
    assert cropped and all(p["kind"] == "recoloured" and p["score"] >= 0.9 for p in cropped)


def test_a_test_image_landed_again_in_train_is_a_leak(run_cli, demo_copy):
    lake = Lake(str(demo_copy))
    raw = lake.read("raw_images")
    test_row = raw.filter(pc.equal(raw["split_hint"], "test")).slice(0, 1)
    leak = test_row.set_column(test_row.schema.get_field_index("source_uri"), "source_uri",
                               pa.array(["leaked/train/copy.png"]))
    leak = leak.set_column(leak.schema.get_field_index("split_hint"), "split_hint", pa.array(["train"]))
    lake.merge_insert("raw_images", leak)

    pairs, err = listed(run_cli, demo_copy, "--across-splits")
    assert [(p["kind"], {p["split"], p["partner_split"]}) for p in pairs] == [("identical", {"test", "train"})]
    assert "leaked/train/copy.png" in (pairs[0]["uri"], pairs[0]["partner_uri"])
    assert "1 of them across splits" in err
    groups, err = listed(run_cli, demo_copy, "--groups", "--across-splits")
    assert len(groups) >= 2 and {g["splits"] for g in groups} == {"test,train"} and "1 of them span splits" in err


def test_a_lake_without_dedup_is_one_line_exit_2(run_cli, tmp_path):
    done = run_cli("duplicates", params={"lake": {"root": str(tmp_path / "empty-lake")}})
    err = done.stderr.strip()
    assert done.returncode == 2 and "no raw_images table yet: run the ingest stage" in err and "\n" not in err
