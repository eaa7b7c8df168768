"""summary.json and the text summary, `sluice quality diff`, and the gate's exit codes as DVC sees them."""

from __future__ import annotations

import json

import pytest


def test_report_writes_summary_metric_and_page(world):
    from quality.report import build_report, render

    for layer in ("bronze", "gold"):
        world.run(layer)
    summary = build_report(world.params, world.lake, docs=False)
    reports = world.root / "reports"
    assert json.loads((reports / "summary.json").read_text()) == summary
    assert summary["success"] and set(summary["layers"]) == {"bronze", "gold"}
    assert summary["layers"]["gold"]["failed"] == 0 and summary["layers"]["gold"]["passed"] >= 15
    assert (reports / "dataset.html").is_file()
    text = render(summary, reports)
    assert "bronze" in text and "gold" in text and len(text.splitlines()) < 25


def test_summary_without_gate_reports_is_a_user_error(tmp_path):
    from quality.report import summarize
    from sluice.errors import InputError

    with pytest.raises(InputError, match="no gate reports"):
        summarize(tmp_path)


def _edit_dataset(world):
    rows = world.lake.read("dataset").to_pylist()
    rows[0]["label"] = "dog" if rows[0]["label"] != "dog" else "cat"  # a relabel
    moved = next(r for r in rows if r["split"] == "val")
    moved["split"] = "train"  # a split move
    removed = rows.pop()  # an image dropped
    import pyarrow as pa

    world.lake.overwrite("dataset", pa.Table.from_pylist(rows, schema=world.lake.read("dataset").schema))
    return removed


def test_diff_between_dataset_versions(world):
    from quality.diff import compare, load_side, render

    first = world.lake.version("dataset")
    _edit_dataset(world)
    diff = compare(load_side(str(first), world.lake), load_side("current", world.lake))
    assert (diff["common"], diff["removed"], diff["added"]) == (23, 1, 0)
    assert (diff["labels_changed"], diff["split_moves"]) == (1, 1)
    assert diff["label_agreement"] == pytest.approx(22 / 23)
    a, b = diff["profile_a"], diff["profile_b"]
    assert a["rows"] == 24 and b["rows"] == 23
    assert a["dup_rate"] == pytest.approx(1 / 24)  # the planted pair shares one group
    assert a["train_share"] == pytest.approx({"cat": 1 / 3, "dog": 1 / 3, "fox": 1 / 3})
    text = render(diff)
    assert "label agreement 95.65% (1 changed)" in text and "rows val" in text


def test_diff_names_versions_as_every_command_does(world):
    """@N (or N) is a Delta version; anything else is a git ref, never a Delta version in disguise."""
    from quality.diff import load_side
    from sluice.errors import UserError

    first = world.lake.version("dataset")
    _edit_dataset(world)
    assert load_side(f"@{first}", world.lake).rows.height == load_side(str(first), world.lake).rows.height == 24
    assert load_side("current", world.lake).rows.height == 23
    with pytest.raises(UserError):  # "v1" is a git tag (none here), not Delta version 1
        load_side("v1", world.lake)


def test_diff_snapshot_against_table(world):
    from quality.diff import compare, load_side

    diff = compare(load_side(str(world.root / "dataset"), world.lake), load_side("current", world.lake))
    assert diff["common"] == 24 and diff["label_agreement"] == 1.0 and diff["split_moves"] == 0
    assert diff["profile_a"]["groups_across_splits"] == 0


def test_diff_cli_and_bad_side(world, run_cli):
    version = str(world.lake.version("dataset"))
    ok = run_cli("quality", "diff", f"@{version}", "current", "--json", params=world.raw)  # @N: a Delta version
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["common"] == 24
    bad = run_cli("quality", "diff", version, "no/such/thing", params=world.raw)
    assert bad.returncode == 2
    [line] = bad.stderr.strip().splitlines()
    assert line.startswith("sluice: error: 'no/such/thing': not @N (a Delta version of the dataset table), current, "
                           "a snapshot folder with manifest.json, nor a dataset version's git ref")


def test_gate_stage_exit_codes(world, run_cli):
    rows = world.lake.read("dataset").to_pylist()
    member = next(r for r in rows if r["dup_group"] != r["image_id"])
    member["split"] = "test"  # a leak: one duplicate group in train and test
    import pyarrow as pa

    world.lake.overwrite("dataset", pa.Table.from_pylist(rows, schema=world.lake.read("dataset").schema))
    failed = run_cli("gold", params=world.raw, module="quality.gate")
    assert failed.returncode == 3, failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("sluice: error: quality gate 'gold' failed: dataset.no_dup_group_across_splits")
    assert "report: " in last and "gold.json" in last and "Traceback" not in failed.stderr
    assert "CRITICAL dataset.no_dup_group_across_splits" in failed.stderr  # the summary is a log (stderr)

    usage = run_cli("platinum", params=world.raw, module="quality.gate")
    assert usage.returncode == 2 and "usage: python -m quality.gate" in usage.stderr
