"""Landing vote exports in crowd_votes: once per vote, pending items, rejects quarantined, user errors."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
import pytest

from ingest.votes.land import land_export, run
from ingest.votes.mturk import MTurkExport
from ingest.votes.plain_csv import CsvVotesExport
from sluice.errors import InputError
from sluice.items import ItemIndex

NOW = datetime(2026, 1, 1, tzinfo=UTC)
URIS = ["data/a.png", "https://example.org/b.png", "data/c.parquet#0"]


def image_id(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()


@pytest.fixture
def landed(lake):
    """A lake whose raw_images holds three images named by a path, a URL and a file#row."""
    rows = [{"image_id": image_id(u), "content": u.encode(), "source": "t", "source_uri": u, "source_label": None,
             "fetched_at": NOW, "run_id": "r"} for u in URIS]
    lake.merge_insert("raw_images", pa.Table.from_pylist(rows))
    return lake


def votes(lake) -> pl.DataFrame:
    return pl.from_arrow(lake.read("crowd_votes")).sort("vote_id")


def quarantine(lake) -> pl.DataFrame:
    return pl.from_arrow(lake.read("quarantine"))


MTURK_HEADER = "HITId,AssignmentId,WorkerId,AssignmentStatus,SubmitTime,Input.image_url,Answer.label,Approve,Reject\n"


def test_a_toloka_tsv_lands_with_rejected_assignments_apart(landed, tmp_path):
    """Toloka's TSV: the columns found through their prefixes, REJECTED assignments never aggregated."""
    from ingest.votes.plain_csv import detect

    path = tmp_path / "assignments.tsv"
    path.write_text("INPUT:image\tOUTPUT:result\tGOLDEN:result\tASSIGNMENT:worker_id\tASSIGNMENT:status\n"
                    "data/a.png\tcat\t\tw1\tAPPROVED\n"
                    "data/a.png\tdog\t\tw2\tREJECTED\n"
                    "https://example.org/b.png\tdog\tdog\tw1\tSUBMITTED\n")
    found = detect(str(path))
    assert found == {"item_column": "INPUT:image", "worker_column": "ASSIGNMENT:worker_id",
                     "label_column": "OUTPUT:result", "status_column": "ASSIGNMENT:status"}
    export = CsvVotesExport(name="t", kind="csv", path=str(path), **found)
    stats = land_export(landed, export, ItemIndex.from_lake(landed), "run-1")
    assert (stats.rows, stats.new, stats.rejected_assignments) == (3, 3, 1)
    v = votes(landed)
    assert sorted(zip(v["label"], v["status"])) == [("cat", "submitted"), ("dog", "rejected"), ("dog", "submitted")]
    assert v["image_id"].null_count() == 0


def test_mturk_lands_every_assignment_once_with_status(landed, tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text(MTURK_HEADER
                    + "H1,A1,W1,Approved,Sun Nov 29 10:00:00 PST 2026,data/a.png,cat,x,\n"
                    + "H1,A2,W2,Submitted,Sun Nov 29 10:05:00 PST 2026,data/a.png, dog ,,\n"
                    + "H1,A3,W3,Submitted,Sun Nov 29 10:06:00 PST 2026,data/a.png,cat,,too fast\n"
                    + "H2,A4,W1,Approved,not a time,https://example.org/b.png,dog,x,\n"
                    + "H1,A2,W2,Submitted,Sun Nov 29 10:05:00 PST 2026,data/a.png, dog ,,\n")  # A2 submitted twice
    export = MTurkExport(name="m", kind="mturk", path=str(path))
    stats = land_export(landed, export, ItemIndex.from_lake(landed), "run-1")
    assert (stats.rows, stats.new, stats.duplicates, stats.rejected_assignments) == (5, 4, 1, 1)
    assert stats.unparsed_times == 1
    v = votes(landed)
    assert v.height == 4
    by_assignment = {r["task_id"] + "/" + r["worker_id"]: r for r in v.iter_rows(named=True)}
    assert by_assignment["H1/W2"]["label"] == "dog"  # trimmed
    assert by_assignment["H1/W3"]["status"] == "rejected"  # Reject column filled in
    assert by_assignment["H1/W1"]["status"] == "approved"
    assert by_assignment["H1/W1"]["submitted_at"] == datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
    assert by_assignment["H2/W1"]["image_id"] == image_id("https://example.org/b.png")  # resolved by URL
    assert by_assignment["H2/W1"]["submitted_at"] is None
    assert set(v["source_format"]) == {"mturk"}


def test_reingesting_an_export_adds_no_votes(landed, tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("item,worker,label\ndata/a.png,w1,cat\ndata/a.png,w2,dog\n")
    export = CsvVotesExport(name="c", kind="csv", path=str(path))
    first = land_export(landed, export, ItemIndex.from_lake(landed), "run-1")
    again = land_export(landed, export, ItemIndex.from_lake(landed), "run-2")
    assert (first.new, again.new, again.already_present) == (2, 0, 2)
    assert landed.count("crowd_votes") == 2


def test_unknown_item_lands_pending_not_quarantined(landed, tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("item\tworker\tlabel\tts\nnowhere.png\tw1\tcat\t2026-01-01T00:00:00\nfile://data/a.png\tw1\tcat\t\n")
    export = CsvVotesExport(name="c", kind="csv", path=str(path), time_column="ts")  # tab-delimited, detected
    stats = land_export(landed, export, ItemIndex.from_lake(landed), "run-1")
    assert (stats.new, stats.pending_items, stats.quarantined) == (2, 1, 0)
    v = votes(landed)
    assert v.filter(pl.col("item_ref") == "nowhere.png")["image_id"][0] is None
    assert v.filter(pl.col("item_ref") == "file://data/a.png")["image_id"][0] == image_id("data/a.png")
    assert v.filter(pl.col("item_ref") == "file://data/a.png")["item"][0] == "data/a.png"  # normalised
    assert landed.count("quarantine") == 0


def test_a_name_two_folders_share_is_reported_as_such_not_as_waiting(landed, tmp_path):
    from ingest.votes.land import _report

    rows = [{"image_id": image_id(u), "content": u.encode(), "source": "t", "source_uri": u, "source_label": None,
             "fetched_at": NOW, "run_id": "r"} for u in ("cats/001.png", "dogs/001.png")]
    landed.merge_insert("raw_images", pa.Table.from_pylist(rows))
    path = tmp_path / "votes.csv"
    path.write_text("item,worker,label\n001.png,w1,cat\ndogs/001.png,w1,dog\nlater.png,w1,cat\n")
    stats = land_export(landed, CsvVotesExport(name="c", kind="csv", path=str(path)), ItemIndex.from_lake(landed), "r")
    assert (stats.pending_items, stats.shared_items, stats.shared_example) == (2, 1, "001.png")
    line = _report("c", stats)
    assert "names several landed files, e.g. '001.png'" in line
    assert ("pending (no image landed yet, e.g. 'later.png': if its image has landed under another name, set item_key "
            "or item_pattern on the export) 1") in line
    index = ItemIndex.from_lake(landed)
    names = pl.Series(["001.png", "dogs/001.png", "later.png", "001"])
    assert index.shared(names, "auto").to_list() == [True, False, False, True]  # auto matches 001 by its stem too
    assert index.shared(names, "stem").to_list() == [False, False, False, True]
    assert index.shared(names, "image_id").to_list() == [False] * 4


def test_rows_without_worker_or_label_are_quarantined_with_their_line(landed, tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("item,worker,label\ndata/a.png,w1,cat\ndata/a.png,,cat\ndata/a.png,w3,  \n")
    stats = land_export(landed, CsvVotesExport(name="c", kind="csv", path=str(path)), ItemIndex.from_lake(landed), "r")
    assert (stats.new, stats.quarantined) == (1, 2)
    assert sorted(quarantine(landed)["row_key"]) == [f"{path}:3", f"{path}:4"]
    # the stage reruns on the same file (an image folder changed): the rows still reconcile, none land twice
    from ingest.votes.land import _report

    again = land_export(landed, CsvVotesExport(name="c", kind="csv", path=str(path)), ItemIndex.from_lake(landed), "r2")
    assert (again.new, again.already_present, again.quarantined) == (0, 1, 2)
    assert "quarantined 2" in _report("c", again) and landed.count("quarantine") == 2


def test_header_only_export_lands_nothing(landed, tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("item,worker,label\n")
    stats = land_export(landed, CsvVotesExport(name="c", kind="csv", path=str(path)), ItemIndex.from_lake(landed), "r")
    assert (stats.rows, stats.new) == (0, 0)


@pytest.mark.parametrize("content, message", [
    ("", "is empty (0 bytes)"),
    ("item,worker\nx,y\n", "missing column(s) 'label'"),
    ("item:worker:label\nx:y:z\n", "unknown delimiter"),
])
def test_bad_csv_is_a_user_error(landed, tmp_path, make_params, content, message):
    path = tmp_path / "votes.csv"
    path.write_text(content)
    params = make_params({"labels": {"exports": [{"name": "c", "kind": "csv", "path": str(path)}]}})
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(params)
    assert landed.count("crowd_votes") == 0


def test_cli_reports_user_errors_in_one_line(run_cli, tmp_path):
    (tmp_path / "ls.json").write_text("[{not json")
    params = {"lake": {"root": str(tmp_path / "lake")},
              "labels": {"exports": [{"name": "ls", "kind": "label_studio", "path": "ls.json"}]}}
    result = run_cli(params=params, module="ingest.votes")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[-1]] and "ls.json: not valid JSON" in lines[-1]
    missing = run_cli("votes", "ingest", params={**params, "labels": {"exports": [
        {"name": "m", "kind": "mturk", "path": "nope.csv"}]}})
    assert missing.returncode == 2 and "nope.csv: file of vote export 'm' does not exist" in missing.stderr


def test_raw_worker_ids_land_nowhere(run_cli, tmp_path):
    """After ingest and aggregation no file under the lake, no manifest and no output holds the raw worker ID."""
    (tmp_path / "votes.csv").write_text("item,worker,label\n1,AWORKERSECRET1,cat\n1,AWORKERSECRET2,cat\n2,AWORKERSECRET1,fish\n")
    params = {"lake": {"root": str(tmp_path / "lake")},
              "labels": {"classes": ["cat", "dog"], "max_unknown_label_share": 1.0,
                         "exports": [{"name": "v", "kind": "csv", "path": "votes.csv"}]}}
    outputs = [run_cli("votes", "ingest", params=params), run_cli("labels", "aggregate", params=params),
               run_cli("labels", "worker", "--reveal", "AWORKERSECRET1", params=params)]
    assert all(r.returncode == 0 for r in outputs), outputs[-1].stderr
    assert outputs[-1].stdout.startswith("w-") and "votes 1" in outputs[-1].stdout  # the fish vote is not usable
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name not in ("votes.csv", "params.yaml")]
    assert any("lake" in p.parts for p in written)
    for p in written:
        assert b"AWORKERSECRET" not in p.read_bytes(), p
    assert all("AWORKERSECRET" not in r.stdout + r.stderr for r in outputs[:2])


def test_ingest_without_the_key_is_refused(run_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("SLUICE_PSEUDONYM_KEY")
    (tmp_path / "votes.csv").write_text("item,worker,label\n1,w,cat\n")
    params = {"lake": {"root": str(tmp_path / "lake")},
              "labels": {"exports": [{"name": "v", "kind": "csv", "path": "votes.csv"}]}}
    result = run_cli("votes", "ingest", params=params)
    assert result.returncode == 2 and "SLUICE_PSEUDONYM_KEY is not set" in result.stderr.strip().splitlines()[-1]
    assert run_cli("votes", "ingest", params={**params, "privacy": {"pseudonymize_workers": False}}).returncode == 0


def test_mturk_crowd_form_json_answers(landed, tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text('HITId,AssignmentId,WorkerId,Input.image_url,Answer.taskAnswers\n'
                    'H1,A1,W1,data/a.png,"[{""crowd-image-classifier"":{""label"":""Cat""}}]"\n'
                    'H1,A2,W2,data/a.png,"[{""category"":{""label"":""Dog""}}]"\n')
    export = MTurkExport(name="m", kind="mturk", path=str(path), label_column="Answer.taskAnswers")
    assert land_export(landed, export, ItemIndex.from_lake(landed), "r").new == 2
    assert sorted(votes(landed)["label"]) == ["Cat", "Dog"]


def test_a_long_parquet_of_votes_lands_like_a_csv(landed, tmp_path):
    """Votes shipped as Parquet, one vote a row (a Hugging Face dataset's layout), with numeric columns."""
    from ingest.votes.plain_csv import detect

    path = tmp_path / "votes.parquet"
    pl.DataFrame({"image": ["data/a.png", "data/a.png", None], "annotator_id": [7, 8, 9],
                  "answer": ["cat", " dog ", "cat"]}).write_parquet(path)
    found = detect(str(path))
    assert found == {"item_column": "image", "worker_column": "annotator_id", "label_column": "answer"}
    stats = land_export(landed, CsvVotesExport(name="p", kind="csv", path=str(path), **found),
                        ItemIndex.from_lake(landed), "run-1")
    assert (stats.rows, stats.new, stats.quarantined) == (3, 2, 1)
    assert sorted(votes(landed)["label"].to_list()) == ["cat", "dog"]
    with pytest.raises(InputError, match="missing column.*'worker'"):
        land_export(landed, CsvVotesExport(name="p", kind="csv", path=str(path)), ItemIndex.from_lake(landed), "run-2")


def test_attention_check_trials_land_apart_and_are_never_aggregated(landed, tmp_path):
    """CIFAR-10H's raw trials mark attention checks (is_attn_check); its published counts leave them out."""
    from ingest.votes.plain_csv import detect

    path = tmp_path / "cifar10h-raw.csv"
    path.write_text("annotator_id,is_attn_check,image_filename,chosen_category\n"
                    "1,0,data/a.png,cat\n1,1,data/c.parquet#0,dog\n2,0,data/a.png,cat\n")
    found = detect(str(path))
    assert found["status_column"] == "is_attn_check" and found["rejected_values"] == ["1", "true", "yes"]
    stats = land_export(landed, CsvVotesExport(name="h", kind="csv", path=str(path), **found),
                        ItemIndex.from_lake(landed), "run-1")
    assert (stats.rows, stats.new, stats.rejected_assignments) == (3, 3, 1)

    report = tmp_path / "f8-full.csv"  # Figure Eight's full report: a failed contributor's work is _tainted
    report.write_text("_unit_id,_golden,_tainted,_worker_id,label\n"
                      "data/a.png,false,false,7,cat\ndata/a.png,false,true,8,dog\n")
    found = detect(str(report))
    assert found == {"item_column": "_unit_id", "worker_column": "_worker_id", "status_column": "_tainted",
                     "rejected_values": ["1", "true", "yes"]}
    stats = land_export(landed, CsvVotesExport(name="f8", kind="csv", path=str(report), **found),
                        ItemIndex.from_lake(landed), "run-2")
    assert (stats.rows, stats.new, stats.rejected_assignments) == (2, 2, 1)


def test_a_worker_answering_again_further_down_a_file_keeps_the_later_answer(landed, tmp_path):
    """Within one file the last occurrence of a vote wins, as the labels stage's latest-vote rule says."""
    path = tmp_path / "votes.csv"
    path.write_text("item,worker,label\ndata/a.png,w1,cat\ndata/a.png,w2,dog\ndata/a.png,w1,dog\n")
    stats = land_export(landed, CsvVotesExport(name="c", kind="csv", path=str(path)), ItemIndex.from_lake(landed), "r")
    assert (stats.rows, stats.new, stats.duplicates) == (3, 2, 1)
    assert sorted(votes(landed)["label"]) == ["dog", "dog"]


def test_a_redownloaded_export_updates_the_votes_it_changed(landed, tmp_path):
    """More assignments rejected, an answer corrected: the landed votes take the new values (Delta's history keeps the
    old ones), the stage's line says so, and the labels stage leaves the now rejected votes out."""
    from ingest.votes.land import _report
    from transform.labels.inputs import load_votes
    from transform.labels.vocabulary import Vocabulary

    path = tmp_path / "batch.csv"
    rows = ["H1,A1,W1,Approved,,data/a.png,cat,,", "H1,A2,W2,Submitted,,data/a.png,dog,,",
            "H1,A3,W3,Submitted,,data/a.png,cat,,"]
    path.write_text(MTURK_HEADER + "\n".join(rows) + "\n")
    export = MTurkExport(name="m", kind="mturk", path=str(path))
    assert land_export(landed, export, ItemIndex.from_lake(landed), "run-1").new == 3
    first = landed.version("crowd_votes")
    path.write_text(MTURK_HEADER + "\n".join([rows[0].replace(",cat,", ",Cat,"), rows[1].replace("Submitted", "Rejected"),
                                              rows[2]]) + "\n")
    again = land_export(landed, export, ItemIndex.from_lake(landed), "run-2")
    assert (again.new, again.already_present, again.changed, again.rejected_assignments) == (0, 3, 2, 1)
    assert "already present 3 (changed since landed: 2, updated)" in _report("m", again)
    assert "changed" in again.as_dict()
    v = votes(landed)
    assert sorted(zip(v["label"], v["status"], v["run_id"])) == [
        ("Cat", "approved", "run-2"), ("cat", "submitted", "run-1"), ("dog", "rejected", "run-2")]
    old = pl.from_arrow(landed.read("crowd_votes", version=first))
    assert sorted(old["status"]) == ["approved", "submitted", "submitted"]  # time travel keeps what was landed
    counts = load_votes(landed, Vocabulary(("cat", "dog"), {}), ItemIndex.from_lake(landed)).counts
    assert (counts["rejected_assignments"], counts["used"]) == (1, 2)
    third = land_export(landed, export, ItemIndex.from_lake(landed), "run-3")  # the same file again: nothing changes
    assert (third.changed, landed.version("crowd_votes")) == (0, landed.version("crowd_votes"))


def test_a_ragged_row_and_a_repeated_header_are_quarantined_with_their_line(landed, tmp_path):
    """Two exports joined end to end (the second header is no vote for a class named 'label') and a row with an
    unquoted comma: quarantined with file:line, the rest lands, the line reconciles."""
    from ingest.votes.land import _report

    path = tmp_path / "votes.csv"
    path.write_text("item,worker,label\ndata/a.png,w1,cat\ndata/a.png,w2,cat,fat\nitem,worker,label\n"
                    "data/a.png,w3,dog\n")
    stats = land_export(landed, CsvVotesExport(name="c", kind="csv", path=str(path)), ItemIndex.from_lake(landed), "r")
    assert (stats.rows, stats.new, stats.quarantined) == (4, 2, 2)
    assert dict(stats.reasons) == {"ragged_row": 1, "repeated_header": 1}
    assert "quarantined 2 (ragged_row 1, repeated_header 1)" in _report("c", stats)
    q = quarantine(landed)
    assert sorted(zip(q["row_key"], q["reason"])) == [(f"{path}:3", "ragged_row"), (f"{path}:4", "repeated_header")]
    assert sorted(votes(landed)["label"]) == ["cat", "dog"]
    batch = tmp_path / "batch.csv"  # an MTurk batch the same way
    batch.write_text(MTURK_HEADER + "H1,A1,W1,Approved,,data/a.png,cat,,\nH1,A2,W2,Approved,,data/a.png,cat,,,x\n"
                     + MTURK_HEADER)
    stats = land_export(landed, MTurkExport(name="m", kind="mturk", path=str(batch)), ItemIndex.from_lake(landed), "r")
    assert (stats.rows, stats.new, dict(stats.reasons)) == (3, 1, {"ragged_row": 1, "repeated_header": 1})


def test_a_header_only_export_is_said_by_name(landed, tmp_path, make_params, caplog):
    """No votes is a warning naming the file (an export of a batch nobody answered yet is still an export)."""
    path = tmp_path / "votes.csv"
    path.write_text("item,worker,label\n")
    run(make_params({"labels": {"exports": [{"name": "c", "kind": "csv", "path": str(path)}]}}))
    assert any(f"c: no votes in {path} (header only)" in r.getMessage() for r in caplog.records)


def test_votes_first_name_an_item_they_wait_for_without_a_hint(lake, tmp_path):
    """With no image landed at all, waiting is what votes do: the line names an item, no setting to change."""
    from ingest.votes.land import _report

    path = tmp_path / "votes.csv"
    path.write_text("item,worker,label\ncat/0000.png,w1,cat\n")
    stats = land_export(lake, CsvVotesExport(name="c", kind="csv", path=str(path)), ItemIndex.from_lake(lake), "r")
    assert "pending (no image landed yet, e.g. 'cat/0000.png') 1" in _report("c", stats)


def test_votes_of_an_erased_image_are_counted_apart_not_as_present_or_pending(lake, tmp_path, run_cli):
    """After `sluice erase --image-id`, the same export lands again: its votes on the erased image are dropped
    (sluice/tombstones.py) and counted as erased data, not "already present" nor "pending (no image landed yet)"
    with advice to set item_key; the reconciliation stays exact."""
    from ingest.votes.land import _report
    from sluice.lake import Lake

    rows = [{"image_id": hashlib.sha256(u.encode() + b" pixels").hexdigest(), "content": u.encode() + b" pixels",
             "source": "t", "source_uri": u, "source_label": None, "fetched_at": NOW, "run_id": "r"}
            for u in ("data/a.png", "data/b.png")]
    lake.merge_insert("raw_images", pa.Table.from_pylist(rows))
    path = tmp_path / "votes.csv"
    path.write_text("item,worker,label\ndata/a.png,w1,cat\ndata/a.png,w2,dog\ndata/b.png,w1,cat\n")
    export = CsvVotesExport(name="c", kind="csv", path=str(path))
    land_export(lake, export, ItemIndex.from_lake(lake), "run-1")
    done = run_cli("erase", "--image-id", rows[0]["image_id"], "--reason", "test",
                   params={"lake": {"root": lake.root}}, env={"SLUICE_PSEUDONYM_KEY": "k" * 32})
    assert done.returncode == 0, done.stdout + done.stderr
    lake = Lake(lake.root)
    stats = land_export(lake, export, ItemIndex.from_lake(lake), "run-2")
    assert (stats.erased, stats.new, stats.already_present, stats.pending_items) == (2, 0, 1, 0)
    line = _report("c", stats)
    assert "already present 1, of erased data (not landed again) 2" in line and "pending" not in line
