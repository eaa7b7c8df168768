"""Right to erasure in the lake: an erased image's id and bytes are in no file of any table at any version,
its history is expired, the audit row holds hashes only, --verify proves it; workers; the privacy report."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from sluice.erasure_scan import sha, walk
from sluice.lake import Lake
from sluice.privacy import pseudonym

KEY = "erasure-test-key"
SIZE = 8


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (12, 12, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _pixels(seed: int) -> bytes:
    return np.random.default_rng(1000 + seed).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8).tobytes()


def build_lake(lake: Lake, n: int = 6) -> dict:
    """Every table of the catalog, written over several versions, as the stages would. Returns what it wrote."""
    contents = [_png(i) for i in range(n)]
    ids = [hashlib.sha256(c).hexdigest() for c in contents]
    uris = [f"https://example.org/img/{i}.png" for i in range(n)]
    now = pa.scalar(0, pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us", tz="UTC"))
    raw = pa.table({"image_id": ids, "content": pa.array(contents, pa.binary()), "source": ["crawl"] * n,
                    "source_uri": uris, "license": ["CC-BY-4.0"] * (n - 1) + [None],
                    "extra": [json.dumps({"gps_removed": True})] + [None] * (n - 1),
                    "fetched_at": pa.array([now.value] * n, pa.timestamp("us", tz="UTC")), "run_id": ["r"] * n})
    lake.merge_insert("raw_images", raw.slice(0, n // 2))
    lake.merge_insert("raw_images", raw.slice(n // 2))
    lake.append("crawl_log", pa.table({"url": uris, "outcome": ["image"] * n, "fetched_at": raw["fetched_at"],
                                       "run_id": ["r"] * n}))
    pixels = [_pixels(i) for i in range(n)]
    lake.merge_insert("images", pa.table({
        "image_id": ids, "width": [12] * n, "height": [12] * n, "mode": ["RGB"] * n, "format": ["PNG"] * n,
        "pixels": pa.array(pixels, pa.binary()), "pixel_hash": [hashlib.sha256(p).hexdigest() for p in pixels],
        "phash": list(range(n)), "run_id": ["r"] * n}))
    group = ids[0]  # ids[0] is the canonical of a group with ids[1]
    groups = [group, group] + ids[2:]
    lake.overwrite("image_groups", pa.table({"image_id": ids, "dup_group": groups,
                                             "is_canonical": [i == g for i, g in zip(ids, groups)],
                                             "match_with": [None, ids[0]] + [None] * (n - 2), "run_id": ["r"] * n}))
    workers = ["A1WORKER", "B2WORKER"]
    pseudo = [pseudonym(w, KEY.encode()) for w in workers]
    votes = [(ids[i], pseudo[i % 2]) for i in range(n)]
    lake.merge_insert("crowd_votes", pa.table({
        "vote_id": [f"v{i}" for i in range(n)], "item_ref": [f"{i}.png" for i in range(n)],
        "item": [v[0] for v in votes], "item_key": ["auto"] * n, "image_id": [v[0] for v in votes],
        "worker_id": [v[1] for v in votes], "label": ["cat"] * n, "status": ["approved"] * n,
        "source_file": ["votes.csv"] * n, "source_format": ["csv"] * n, "run_id": ["r"] * n}))
    lake.overwrite("annotators", pa.table({"worker_id": pseudo, "votes": [3, 3], "is_spammer": [False] * 2,
                                           "is_adversarial": [False] * 2, "run_id": ["r"] * 2}))
    lake.overwrite("labels", pa.table({"item": ids, "image_id": ids, "label": ["cat"] * n,
                                       "label_source": ["majority"] * n, "votes": [1] * n, "status": ["resolved"] * n,
                                       "run_id": ["r"] * n}))
    lake.append("quarantine", pa.table({
        "source_table": ["raw_images", "crowd_votes"], "row_key": [ids[0], "v9"], "stage": ["clean", "labels"],
        "check": ["too_small", "worker"], "reason": ["small", "spam"],
        "details": [f"image {ids[0]} is small", f"worker {pseudo[0]} spams"],
        "quarantined_at": pa.array([now.value] * 2, pa.timestamp("us", tz="UTC")), "run_id": ["r"] * 2}))
    for version in range(2):  # two versions of the gold table
        lake.overwrite("dataset", pa.table({"image_id": ids, "split": ["train"] * n, "label": ["cat"] * n,
                                            "class_index": [0] * n, "weight": [1.0 + version] * n,
                                            "dup_group": groups, "run_id": ["r"] * n}))
    lake.append("predictions", pa.table({"image_id": ids, "dataset_hash": ["h"] * n, "fold": [0] * n,
                                         "label": ["cat"] * n, "probs": [[1.0]] * n, "run_id": ["r"] * n}))
    lake.append("label_issues", pa.table({
        "image_id": ids, "dataset_hash": ["h"] * n, "given_label": ["cat"] * n, "suggested_label": ["dog"] * n,
        "self_confidence": [0.1] * n, "margin": [0.1] * n, "score": [0.1] * n, "rank": list(range(1, n + 1)),
        "evidence": [json.dumps({"workers": [pseudo[i % 2]]}) for i in range(n)], "run_id": ["r"] * n}))
    return {"ids": ids, "contents": contents, "pixels": pixels, "uris": uris, "workers": workers, "pseudo": pseudo}


def files_holding(root: Path, needles: list[bytes]) -> list[str]:
    """Files under ``root`` whose raw bytes, or whose Parquet cells, contain any needle."""
    import pyarrow.parquet as pq

    found = []
    for path in walk(root):
        data = path.read_bytes()
        cells = b""
        if data[:4] == b"PAR1":
            table = pq.read_table(path)
            cells = b"\n".join(v if isinstance(v, bytes) else str(v).encode()
                               for c in table.columns for v in c.to_pylist())
        if any(n in data or n in cells for n in needles):
            found.append(str(path.relative_to(root)))
    return found


@pytest.fixture
def params(tmp_path, make_params):
    return {"lake": {"root": str(tmp_path / "lake")}}


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("SLUICE_PSEUDONYM_KEY", KEY)
    return {"SLUICE_PSEUDONYM_KEY": KEY}


def test_erasing_an_image_leaves_no_trace_in_any_file_of_any_version(lake, params, env, run_cli, tmp_path):
    made = build_lake(lake)
    victim, other = made["ids"][0], made["ids"][2]
    needles = [victim.encode(), made["contents"][0], made["pixels"][0], made["uris"][0].encode()]
    assert files_holding(Path(lake.root), needles)  # the lake holds it everywhere before
    history_before = lake.version("dataset")

    dry = run_cli("erase", "--image-id", victim, "--dry-run", params=params, env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would delete" in dry.stdout and files_holding(Path(lake.root), needles)

    report = tmp_path / "reports/quality/silver.json"  # a quality report written before the erasure
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"sample": [victim, other]}))
    out = run_cli("erase", "--image-id", victim, "--reason", "GDPR art. 17 request", params=params, env=env)
    assert out.returncode == 0, out.stderr
    assert "1 report or manifest file(s) in the workspace name erased data" in out.stdout, out.stdout
    found = run_cli("erase", "--verify", params=params, env=env)
    assert found.returncode == 1 and "reports/quality/silver.json: image id" in found.stdout
    report.unlink()  # rewritten by the rebuild the command names
    assert files_holding(Path(lake.root), needles) == []  # no file, no version, no log entry
    assert files_holding(Path(lake.root), [other.encode(), made["contents"][2]])  # the others are still there
    for table in ("raw_images", "images", "labels", "dataset", "crowd_votes", "predictions", "label_issues"):
        assert victim not in lake.read(table, ["image_id"]).column(0).to_pylist(), table
    assert lake.count("raw_images") == 5 and lake.count("quarantine") == 1 and lake.count("crawl_log") == 5

    # the group whose canonical was erased has a surviving canonical; the dataset follows
    groups = {r["image_id"]: r for r in lake.read("image_groups").to_pylist()}
    assert groups[made["ids"][1]]["dup_group"] == made["ids"][1] and groups[made["ids"][1]]["is_canonical"]
    assert groups[made["ids"][1]]["match_with"] is None

    # time travel to before the erasure is one line
    sql = run_cli("sql", "select count(*) from dataset", "--at", f"dataset={history_before}", params=params)
    assert sql.returncode == 2 and len(sql.stderr.strip().splitlines()) == 1, sql.stderr

    # the audit row: hashes and counts, never the id, the uri or the reason's neighbours
    row = lake.read("erasures").to_pylist()[0]
    assert row["selector"] == "image_id" and row["image_hashes"] == [sha(victim)]
    assert json.loads(row["rows_deleted"])["raw_images"] == 1 and row["reason"] == "GDPR art. 17 request"
    assert victim not in json.dumps(row, default=str) and "example.org" not in json.dumps(row, default=str)

    verify = run_cli("erase", "--verify", params=params, env=env)
    assert verify.returncode == 0 and "0 hit(s) for 1 erasure(s)" in verify.stdout, verify.stdout + verify.stderr

    # a stray copy of the bytes is found by --verify
    (Path(lake.root) / "stray.bin").write_bytes(made["contents"][0])
    found = run_cli("erase", "--verify", params=params, env=env)
    assert found.returncode == 1 and "stray.bin: image bytes (whole file)" in found.stdout


def test_erasing_a_worker_by_raw_id_removes_their_pseudonym_everywhere(lake, params, env, run_cli):
    made = build_lake(lake)
    raw, pseudo = made["workers"][0], made["pseudo"][0]
    out = run_cli("erase", "--worker", raw, params=params, env=env)
    assert out.returncode == 0, out.stderr
    assert files_holding(Path(lake.root), [pseudo.encode(), raw.encode()]) == []
    assert files_holding(Path(lake.root), [made["pseudo"][1].encode()])
    assert lake.count("raw_images") == 6  # images stay
    row = lake.read("erasures").to_pylist()[0]
    assert row["selector_hashes"] == [sha(pseudo)] and raw not in json.dumps(row, default=str)
    nokey = run_cli("erase", "--worker", raw, params=params, env={"SLUICE_PSEUDONYM_KEY": ""})
    assert nokey.returncode == 2 and "SLUICE_PSEUDONYM_KEY" in nokey.stderr


def test_erasing_by_source_uri_and_the_privacy_report(lake, params, env, run_cli):
    made = build_lake(lake)
    out = run_cli("erase", "--source-uri", made["uris"][5], made["uris"][4], params=params, env=env)
    assert out.returncode == 0, out.stderr
    assert files_holding(Path(lake.root), [made["ids"][5].encode(), made["uris"][4].encode()]) == []
    rep = run_cli("privacy", "report", "--format", "json", params=params, env=env)
    assert rep.returncode == 0, rep.stderr
    rows = {(r["section"], r["item"]): r for r in json.loads(rep.stdout)}
    assert rows[("erasures", "erasures performed")]["count"] == 1
    assert rows[("erasures", "images erased")]["count"] == 2
    assert rows[("metadata", "metadata stripped at landing")]["count"] == 1
    assert rows[("workers", "workers stored as pseudonyms")]["count"] == 2
    assert rows[("licences", "crawl")]["count"] == 4 and rows[("licences", "crawl")]["share"] == 0.0
    assert rows[("access", "roles defined")]["count"] == 0


def test_bad_selectors_are_one_line(params, env, run_cli, lake):
    build_lake(lake, n=2)
    out = run_cli("erase", "--image-id", "not-a-hash", params=params, env=env)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "64-hex" in out.stderr
    out = run_cli("erase", "--verify", "--dry-run", params=params, env=env)
    assert out.returncode == 2


def test_erased_data_is_not_landed_again_and_a_write_in_flight_is_reported(lake, params, env, run_cli):
    made = build_lake(lake)
    victim = made["ids"][3]
    raw_row = lake.read("raw_images").filter(pa.compute.equal(lake.read("raw_images")["image_id"], victim))
    inflight = Path(lake.uri("images")) / "part-00000-in-flight.parquet"  # written, not committed yet
    import pyarrow.parquet as pq

    pq.write_table(lake.read("images"), inflight)
    out = run_cli("erase", "--image-id", victim, "--worker", made["workers"][1], params=params, env=env)
    assert out.returncode == 2  # one selector kind per erasure
    out = run_cli("erase", "--image-id", victim, params=params, env=env)
    assert out.returncode == 1 and "still found after the erasure" in out.stderr and inflight.name in out.stderr
    assert "run `sluice erase` again once the pipeline is idle" in out.stderr
    inflight.unlink()  # the write died
    assert run_cli("erase", "--verify", params=params, env=env).returncode == 0

    again = Lake(lake.root)  # the next ingest, with the original still at its source
    assert again.merge_insert("raw_images", raw_row) == 0 and again.count("raw_images") == 5
    assert again.append("crawl_log", pa.table({"url": [made["uris"][3]], "outcome": ["image"],
                                               "fetched_at": raw_row["fetched_at"], "run_id": ["r2"]})) == 0
    assert files_holding(Path(lake.root), [victim.encode(), made["contents"][3]]) == []


def test_the_scanner_finds_ids_bytes_and_pixels_in_any_container(tmp_path):
    import pyarrow.parquet as pq

    from sluice.erasure_record import _originals
    from sluice.erasure_scan import Targets, scan_bytes

    content, pixels = _png(1), _pixels(1)
    image_id, pixel_hash = hashlib.sha256(content).hexdigest(), hashlib.sha256(pixels).hexdigest()
    targets = Targets({sha(image_id)}, {sha(pixel_hash)}, {sha("https://example.org/x.png")})
    assert scan_bytes(content, targets) == {"image bytes (whole file)"}
    assert scan_bytes(f'{{"id": "{image_id}"}}'.encode(), targets) == {"image id"}
    assert scan_bytes(b"<a href='https://example.org/x.png'>", targets) == {"erased value"}
    buf = io.BytesIO()
    np.save(buf, np.stack([np.zeros((SIZE, SIZE, 3), np.uint8), np.frombuffer(pixels, np.uint8).reshape(SIZE, SIZE, 3)]))
    assert scan_bytes(buf.getvalue(), targets) == {"image pixels"}
    import base64

    thumb = io.BytesIO()  # as the dataset page embeds a sample (quality/page.py: png_data_uri)
    Image.fromarray(np.frombuffer(pixels, np.uint8).reshape(SIZE, SIZE, 3)).save(thumb, format="PNG")
    page = f"<img src='data:image/png;base64,{base64.b64encode(thumb.getvalue()).decode()}' title='a cat'>".encode()
    assert scan_bytes(page, targets) == {"image pixels (embedded image)"}
    nested = pa.table({"add": [{"stats": json.dumps({"minValues": {"image_id": image_id}})}],
                       "blob": pa.array([content], pa.binary())})
    pq.write_table(nested, tmp_path / "t.parquet", compression="zstd")
    assert scan_bytes((tmp_path / "t.parquet").read_bytes(), targets) == {"image id", "image bytes"}
    assert scan_bytes(b"nothing " + hashlib.sha256(b"other").hexdigest().encode(), targets) == set()
    (tmp_path / "cat.png").write_bytes(content)
    assert _originals({str(tmp_path / "cat.png"), str(tmp_path / "gone.png"), "https://x/y.png"}) == [
        str(tmp_path / "cat.png")]


def _photos(lake: Lake, subjects: list[str | None], root: str = "/data/photos") -> list[str]:
    """Images from a local folder source, as an image-folder ingest lands them, with their subject. Returns ids."""
    contents = [_png(100 + i) for i in range(len(subjects))]
    ids = [hashlib.sha256(c).hexdigest() for c in contents]
    n = len(ids)
    lake.merge_insert("raw_images", pa.table({
        "image_id": ids, "content": pa.array(contents, pa.binary()), "source": ["photos"] * n,
        "source_uri": [f"{root}/train/cat/cat_{i:04d}.png" for i in range(n)], "license": [None] * n,
        "extra": [None] * n, "fetched_at": pa.array([0] * n, pa.timestamp("us", tz="UTC")), "run_id": ["r"] * n,
        "subject": pa.array(subjects, pa.string())}))
    return ids


def _votes(items: list[str], image_ids: list[str | None], start: int = 0) -> pa.Table:
    n = len(items)
    return pa.table({"vote_id": [f"v{start + i}" for i in range(n)], "item_ref": items, "item": items,
                     "item_key": ["auto"] * n, "image_id": pa.array(image_ids, pa.string()),
                     "worker_id": [pseudonym("A1WORKER", KEY.encode())] * n, "label": ["cat"] * n,
                     "status": ["approved"] * n, "source_file": ["votes.csv"] * n, "source_format": ["csv"] * n,
                     "run_id": ["r"] * n})


def test_a_subject_without_the_key_or_matching_nothing_is_refused_and_not_recorded(lake, params, env, run_cli):
    from sluice.privacy import subject_pseudonym

    _photos(lake, [subject_pseudonym("MRN-1", KEY.encode())] * 2 + [subject_pseudonym("MRN-2", KEY.encode())])
    nokey = run_cli("erase", "--subject", "MRN-1", "--reason", "x", params=params, env={"SLUICE_PSEUDONYM_KEY": ""})
    assert nokey.returncode == 2 and len(nokey.stderr.strip().splitlines()) == 1, nokey.stderr
    assert "SLUICE_PSEUDONYM_KEY is not set" in nokey.stderr and "deleted" not in nokey.stdout
    assert lake.count("raw_images") == 3 and not lake.exists("erasures")  # no audit row claiming it happened

    typo = run_cli("erase", "--subject", "MRN-99", params=params, env=env)
    assert typo.returncode == 2 and len(typo.stderr.strip().splitlines()) == 1, typo.stderr
    assert "matches nothing in the lake" in typo.stderr and "nothing recorded" in typo.stderr
    assert not lake.exists("erasures")
    dry = run_cli("erase", "--subject", "MRN-99", "--dry-run", params=params, env=env)
    assert dry.returncode == 2 and "matches nothing" in dry.stderr

    out = run_cli("erase", "--subject", "MRN-1", params=params, env=env)
    assert out.returncode == 0 and "deleted 2 row(s) in 1 table(s), 2 image(s)" in out.stdout, out.stdout + out.stderr
    again = run_cli("erase", "--subject", "MRN-1", params=params, env=env)
    assert again.returncode == 2 and "already erased by an earlier erasure" in again.stderr, again.stderr
    assert lake.count("erasures") == 1 and lake.count("raw_images") == 1


def test_votes_naming_an_erased_image_by_its_path_are_erased_and_not_landed_again(lake, params, env, run_cli, capsys):
    ids = _photos(lake, [None, None])
    # a vote that landed before its image (pending: image_id null, item = the relative path), one resolved
    lake.merge_insert("crowd_votes", _votes(["train/cat/cat_0000.png", "train/cat/cat_0001.png"], [None, ids[1]]))
    out = run_cli("erase", "--image-id", ids[0], params=params, env=env)
    assert out.returncode == 0, out.stderr
    assert lake.read("crowd_votes", ["item"]).column(0).to_pylist() == ["train/cat/cat_0001.png"]
    assert files_holding(Path(lake.root), [b"cat_0000.png"]) == []

    again = Lake(lake.root)  # the next votes ingest, the export still naming the erased image three ways
    names = ["train/cat/cat_0000.png", "https://bucket.example/photos/train/cat/cat_0000.png",
             "/data/photos/train/cat/cat_0000.png", "train/cat/cat_0001.png"]
    from sluice.stage import configure_logging

    configure_logging("normal")  # as every stage has it
    capsys.readouterr()
    assert again.merge_insert("crowd_votes", _votes(names, [None] * 4, start=10)) == 1
    assert "[erase] crowd_votes: 3 row(s) of erased data not written again" in capsys.readouterr().err
    assert sorted(lake.read("crowd_votes", ["item"]).column(0).to_pylist()) == ["train/cat/cat_0001.png"] * 2

    # --verify looks for the names too: a vote table written around the lake's check is found
    import pyarrow.parquet as pq

    pq.write_table(_votes(names[:1], [None]), Path(lake.uri("crowd_votes")) / "part-stray.parquet")
    found = run_cli("erase", "--verify", params=params, env=env)
    assert found.returncode == 1 and "part-stray.parquet: erased item name" in found.stdout, found.stdout


def test_run_reports_and_the_source_hash_cache_lose_erased_images(lake, params, env, run_cli, tmp_path):
    import base64
    import sqlite3

    made = build_lake(lake)
    victim, other = made["ids"][0], made["ids"][2]
    thumb = f'<img src="data:image/png;base64,{base64.b64encode(made["contents"][0]).decode()}">'
    for place in ("runs/20260101T000000Z-aaaa/report.html", "runs/20260102T000000Z-bbbb/report.html",
                  "reports/run.html"):
        (tmp_path / place).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / place).write_text(f"<html>{thumb}<td>{made['pseudo'][1]}</td></html>")
    (tmp_path / "runs/train").mkdir()
    (tmp_path / "runs/train/ckpt.pt").write_bytes(made["contents"][0])  # checkpoints are not looked into
    db = sqlite3.connect(tmp_path / "runs/source_hashes.sqlite")
    db.execute("create table hashes (path blob primary key, dev int, ino int, size int, mtime_ns int, sha256 text)")
    db.executemany("insert into hashes values (?, 1, 1, 1, 1, ?)", [(b"/p/a.png", victim), (b"/p/b.png", other)])
    db.commit()
    db.close()

    out = run_cli("erase", "--image-id", victim, params=params, env=env)
    assert out.returncode == 0, out.stderr
    assert "source hash cache: 1 entry of erased images dropped" in out.stdout, out.stdout
    assert "2 past run report(s) show erased data" in out.stdout and "rerun with --purge-snapshots" in out.stdout
    assert "1 report or manifest file(s) in the workspace name erased data (e.g. reports/run.html" in out.stdout
    rows = sqlite3.connect(tmp_path / "runs/source_hashes.sqlite").execute("select sha256 from hashes").fetchall()
    assert rows == [(other,)] and victim.encode() not in (tmp_path / "runs/source_hashes.sqlite").read_bytes()
    found = run_cli("erase", "--verify", params=params, env=env)
    assert found.returncode == 1 and "reports/run.html: image bytes" in found.stdout, found.stdout
    assert "runs/20260101T000000Z-aaaa/report.html" in found.stdout and "ckpt.pt" not in found.stdout

    purge = run_cli("erase", "--image-id", victim, "--purge-snapshots", params=params, env=env)
    assert purge.returncode == 0, purge.stderr
    assert "deleted 2 past run report(s) that showed erased data" in purge.stdout, purge.stdout
    assert not list((tmp_path / "runs").glob("*/report.html"))
    (tmp_path / "reports/run.html").unlink()  # rewritten by the rebuild the command names
    assert run_cli("erase", "--verify", params=params, env=env).returncode == 0

    # a worker's pseudonym in a run report is found the same way
    (tmp_path / "runs/20260103T000000Z-cccc").mkdir()
    (tmp_path / "runs/20260103T000000Z-cccc/report.html").write_text(f"<td>{made['pseudo'][1]}</td>")
    worker = run_cli("erase", "--worker", made["workers"][1], "--purge-snapshots", params=params, env=env)
    assert worker.returncode == 0 and "deleted 1 past run report(s)" in worker.stdout, worker.stdout + worker.stderr
