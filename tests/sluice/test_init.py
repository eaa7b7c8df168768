"""`sluice init` and `sluice pipeline`: a user's project holds only the stages and files it needs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sluice.config import load_params_file
from sluice.errors import ConfigError
from sluice.pipeline import STAGES, build, code_paths, render, upstream_manifests
from tests.sluice.test_dicom import make_dicom

REPO = Path(__file__).resolve().parents[2]


def _folder(root: Path, classes=("cat", "dog"), n: int = 2) -> Path:
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (40 + i, 30), (60 * c, 20 * i, 90)).save(root / name / f"{i}.jpg")
    return root


def _init(run_cli, tmp_path, *args):
    return run_cli("init", str(tmp_path / "proj"), *args, cwd=tmp_path)


def _project(tmp_path) -> tuple[dict, dict]:
    root = tmp_path / "proj"
    return yaml.safe_load((root / "params.yaml").read_text()), yaml.safe_load((root / "dvc.yaml").read_text())


def _all_deps(dvc: dict) -> list[str]:
    return [d for s in dvc["stages"].values() for d in s.get("deps", [])]


def test_numbered_class_folders_are_listed_in_numeric_order(run_cli, tmp_path):
    """Folders 1..12: "10" is the tenth class, as the dataset stage numbers them (sorted as text it was second,
    and the snapshot gate's classes_match failed on a correct snapshot)."""
    _folder(tmp_path / "photos", classes=[str(k) for k in range(1, 13)])
    assert _init(run_cli, tmp_path, "--images", str(tmp_path / "photos")).returncode == 0
    params, _ = _project(tmp_path)
    assert params["labels"]["classes"] == [str(k) for k in range(1, 13)]


def test_class_folders_differing_only_in_case_are_one_class_said_at_init(run_cli, tmp_path):
    """`Cat/` and `cat/`: the labels stage folds case and refused a list holding both; init lists one, says so."""
    _folder(tmp_path / "photos", classes=["cat", "Cat", "dog"])
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "photos"))
    assert res.returncode == 0, res.stderr
    assert _project(tmp_path)[0]["labels"]["classes"] == ["Cat", "dog"]
    assert "class folders Cat and cat differ only in case: one class 'Cat'" in res.stdout


def test_images_only_project_has_no_demo_crawl_or_crowd_stage(run_cli, tmp_path):
    _folder(tmp_path / "photos")
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "photos"), "--size", "96")
    assert res.returncode == 0, res.stderr
    params, dvc = _project(tmp_path)
    assert "demo" not in params and "crawl" not in params and params["labels"]["exports"] == []
    assert params["labels"]["classes"] == ["cat", "dog"] and params["clean"]["size"] == 96
    assert [s["path"] for s in params["ingest"]["sources"]] == [(tmp_path / "photos").as_posix()]
    stages = list(dvc["stages"])
    assert {"demo", "crawl", "ingest_crowd", "compress", "oof", "insight"}.isdisjoint(stages)
    assert stages[:2] == ["list_sources", "ingest_public"] and "train" in stages and "quality_snapshot" in stages
    deps = _all_deps(dvc)
    assert not [d for d in deps if "demo" in d or d.endswith(("gold.csv", "ground_truth.json"))]
    assert not [d for d in deps if d.endswith(".py")]  # a user's project has no Sluice source files
    # DVC depends on the folder's digest (every `dvc repro` relists it), not on the folder
    assert dvc["stages"]["ingest_public"]["deps"] == ["data/source_listing.json"]
    assert dvc["stages"]["list_sources"]["always_changed"] is True and "deps" not in dvc["stages"]["list_sources"]
    assert all(s["cmd"].startswith("${paths.python} -m ") for s in dvc["stages"].values())
    assert params["paths"]["python"] == sys.executable  # the venv's interpreter, not `python` on PATH
    root = tmp_path / "proj"
    assert (root / ".git").is_dir() and (root / ".dvc").is_dir() and (root / ".gitignore").is_file()
    assert "dvc repro" in res.stdout and "cd " in res.stdout
    loaded = load_params_file(root / "params.yaml")  # what init writes loads
    # the keys the recipe chooses are null, so `recipe: auto` sizes the run to the data (a concrete demo
    # default here pinned a 50k-image CIFAR project to the demo's width-8, 6-epoch model)
    assert params["train"]["recipe"] == "auto"
    assert all(params["train"][k] is None for k in ("epochs", "width", "lr", "batch_size", "whiten", "lookahead"))
    assert set(params["train"]["augment"].values()) == {None}
    assert loaded.train.width is None and "width" in loaded.train.model_fields_set


def test_one_class_is_said_at_init(run_cli, tmp_path):
    _folder(tmp_path / "photos", classes=("china",))
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "photos"))
    assert res.returncode == 0, res.stderr
    assert "1 class (china); a classifier needs two or more: `sluice train` stops until" in res.stdout + res.stderr


def test_insight_adds_the_label_issue_stages(run_cli, tmp_path):
    _folder(tmp_path / "photos")
    assert _init(run_cli, tmp_path, "--images", str(tmp_path / "photos"), "--insight").returncode == 0
    params, dvc = _project(tmp_path)
    assert params["insight"]["test_issues"] is True and "compress" not in params
    stages = list(dvc["stages"])
    assert stages.index("evaluate") < stages.index("oof") < stages.index("insight") and "compress" not in stages
    assert "models/int8" not in dvc["stages"]["insight"]["deps"]  # fp32 alone without a compress stage
    assert "reports/metrics/label_issues.json" in dvc["stages"]["report"]["deps"]


def test_votes_and_crawl_add_their_stages_only_when_asked(run_cli, tmp_path):
    _folder(tmp_path / "photos")
    (tmp_path / "votes.csv").write_text("item,worker,label\ncat/0.jpg,w1,cat\n")
    (tmp_path / "ls.json").write_text("[]")
    (tmp_path / "mturk.csv").write_text("HITId,WorkerId,Input.image_url,Answer.label\n")
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "photos"), "--votes", str(tmp_path / "votes.csv"),
                "--votes", str(tmp_path / "ls.json"), "--votes", str(tmp_path / "mturk.csv"),
                "--crawl", "http://127.0.0.1:9/")
    assert res.returncode == 0, res.stderr
    params, dvc = _project(tmp_path)
    assert [e["kind"] for e in params["labels"]["exports"]] == ["csv", "label_studio", "mturk"]
    assert params["crawl"]["start_urls"] == ["http://127.0.0.1:9/"] and "demo_site_dir" not in params["crawl"]
    assert params["labels"]["classes"] is None  # crowd or crawl labels: inferred at run time
    assert {"crawl", "ingest_crowd"} <= set(dvc["stages"])
    assert (tmp_path / "votes.csv").as_posix() in dvc["stages"]["ingest_crowd"]["deps"]
    assert "deps" not in dvc["stages"]["crawl"]  # no demo site to serve (its params still make it a real stage)


def test_a_file_of_image_urls_is_a_crawl_of_the_images_it_lists(run_cli, tmp_path):
    """--urls: a CSV of URLs and labels reads its labels column; one URL a line lands unlabelled; the file is the
    crawl stage's dependency. With --crawl, or a missing file: one line, exit 2."""
    (tmp_path / "train.csv").write_text("id,url,landmark_id\na,https://x.example/a.jpg,1\n")
    (tmp_path / "urls.txt").write_text("https://x.example/a.jpg\n")
    assert _init(run_cli, tmp_path, "--urls", str(tmp_path / "train.csv")).returncode == 0
    params, dvc = _project(tmp_path)
    crawl = params["crawl"]
    listed = (tmp_path / "train.csv").as_posix()
    assert (crawl["start_urls"], crawl["url_list"]["path"], crawl["label"]["source"]) == ([], listed, "column")
    assert crawl["source"] == "urls-train" and listed in dvc["stages"]["crawl"]["deps"]
    res = run_cli("init", str(tmp_path / "plain"), "--urls", str(tmp_path / "urls.txt"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert yaml.safe_load((tmp_path / "plain" / "params.yaml").read_text())["crawl"]["label"]["source"] == "none"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"SAMPLE_ID": [1], "URL": ["https://x.example/a.jpg"], "TEXT": ["a dog"]}),
                   tmp_path / "laion.parquet")  # LAION's columns: captions, no labels
    (tmp_path / "captions.csv").write_text("url,caption\nhttps://x.example/a.jpg,a dog\n")
    for name in ("laion.parquet", "captions.csv"):
        res = run_cli("init", str(tmp_path / f"p-{name}"), "--urls", str(tmp_path / name), cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert yaml.safe_load((tmp_path / f"p-{name}" / "params.yaml").read_text())["crawl"]["label"]["source"] == "none"
    res = run_cli("init", str(tmp_path / "urls.txt"), "--urls", str(tmp_path / "urls.txt"), cwd=tmp_path)
    assert res.returncode == 2 and "a file, not a folder" in res.stderr  # the project's folder given as the list
    res = run_cli("init", str(tmp_path / "both"), "--urls", str(tmp_path / "urls.txt"), "--crawl", "https://x.example/",
                  cwd=tmp_path)
    assert res.returncode == 2 and "one crawl a project" in res.stderr
    res = run_cli("init", str(tmp_path / "none"), "--urls", str(tmp_path / "missing.csv"), cwd=tmp_path)
    assert res.returncode == 2 and "--urls" in res.stderr and "no such file" in res.stderr


def test_a_ground_truth_job_folder_or_manifest_is_read_as_one(run_cli, tmp_path):
    """SageMaker Ground Truth: the job's folder (workers' answers) or its output manifest; another folder is one
    line, exit 2 (it was a traceback: a folder opened as a CSV)."""
    import json

    _folder(tmp_path / "photos")
    job = tmp_path / "animals"
    (job / "manifests" / "output").mkdir(parents=True)
    (job / "manifests" / "output" / "output.manifest").write_text(json.dumps(
        {"source-ref": "s3://b/cat/0.jpg", "animals": 0, "animals-metadata": {
            "class-name": "cat", "type": "groundtruth/image-classification", "job-name": "animals"}}) + "\n")
    (tmp_path / "consolidated.manifest").write_text((job / "manifests" / "output" / "output.manifest").read_text())
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "photos"), "--votes", str(job),
                "--votes", str(tmp_path / "consolidated.manifest"))
    assert res.returncode == 0, res.stderr
    assert [e["kind"] for e in _project(tmp_path)[0]["labels"]["exports"]] == ["ground_truth", "ground_truth"]
    res = run_cli("init", str(tmp_path / "other"), "--votes", str(tmp_path / "photos"), cwd=tmp_path)
    assert res.returncode == 2 and "not a Ground Truth job folder" in res.stderr and "Traceback" not in res.stderr


def test_a_labelbox_export_is_told_from_json_lines_of_votes(run_cli, tmp_path):
    import json

    _folder(tmp_path / "photos")
    (tmp_path / "export.ndjson").write_text(json.dumps({"data_row": {"external_id": "0.jpg"}, "projects": {"p": {"labels": [
        {"label_details": {"created_by": "ann@x"}, "annotations": {"classifications": [
            {"name": "animal", "radio_answer": {"name": "cat"}}]}}]}}}) + "\n")
    (tmp_path / "votes.jsonl").write_text(json.dumps({"picture": "cat/0.jpg", "who": "w1", "what": "cat"}) + "\n")
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "photos"), "--votes", str(tmp_path / "export.ndjson"))
    assert res.returncode == 0, res.stderr
    assert [e["kind"] for e in _project(tmp_path)[0]["labels"]["exports"]] == ["labelbox"]
    res = run_cli("init", str(tmp_path / "other"), "--votes", str(tmp_path / "votes.jsonl"), cwd=tmp_path)
    # the general reader's word on JSON Lines it cannot read, not a platform's "not a Labelbox export"
    assert res.returncode == 2 and "cannot tell which" in res.stderr and "not a " not in res.stderr


def test_crawl_only_and_votes_only_projects(tmp_path):
    from sluice.config import parse_params

    raw = {"paths": {}, "crawl": {"start_urls": ["https://example.org/"]}, "labels": {"classes": None}}
    dvc = build(raw, parse_params(raw), code_root=None)
    assert "ingest_public" not in dvc["stages"] and "crawl" in dvc["stages"]
    assert dvc["stages"]["clean"]["deps"] == ["data/manifests/crawl.json", "reports/quality/bronze.json"]
    raw = {"labels": {"exports": [{"name": "v", "kind": "csv", "path": "v.csv"}]}}
    dvc = build(raw, parse_params(raw), code_root=None)
    assert dvc["stages"]["ingest_crowd"]["deps"] == ["v.csv"] and "ingest_public" not in dvc["stages"]
    # votes alone: no image stage to fail on a lake without images (the bronze gate stopped `dvc repro`)
    assert list(dvc["stages"]) == ["ingest_crowd", "labels", "summary"]
    assert "params" not in dvc["stages"]["labels"]  # only keys the params file sets (DVC needs them)


def test_vote_csv_columns_are_found_by_their_usual_names(run_cli, tmp_path):
    _folder(tmp_path / "photos")
    (tmp_path / "votes.csv").write_text("Image,Annotator ID,answer\ncat/0.jpg,w1,cat\n")
    (tmp_path / "trials.csv").write_text("annotator_id;trial_index;chosen_label;true_label;image_filename\n")
    (tmp_path / "named.csv").write_text("annotator_id,chosen_label,chosen_category,true_category,image_filename\n")
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "photos"), "--votes", str(tmp_path / "votes.csv"),
                "--votes", str(tmp_path / "trials.csv"), "--votes", str(tmp_path / "named.csv"))
    assert res.returncode == 0, res.stderr
    assert "item_column=Image, worker_column=Annotator ID, label_column=answer" in res.stdout
    exports = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["labels"]["exports"]
    assert {k: v for k, v in exports[0].items() if k.endswith("_column")} == {
        "item_column": "Image", "worker_column": "Annotator ID", "label_column": "answer"}
    assert (exports[1]["item_column"], exports[1]["worker_column"], exports[1]["label_column"]) == (
        "image_filename", "annotator_id", "chosen_label")  # the answer given, not the reference label
    assert exports[2]["label_column"] == "chosen_category"  # the class name before its index


def test_json_vote_records_are_found_as_the_long_kind_and_label_studio_stays_itself(run_cli, tmp_path):
    _folder(tmp_path / "photos")
    (tmp_path / "votes.jsonl").write_text('{"image": "cat/0.jpg", "user": {"id": 3}, "class": "cat"}\n')
    (tmp_path / "votes.json").write_text('[{"file": "cat/0.jpg", "rater": "r", "choice": "cat"}]')
    (tmp_path / "ls.json").write_text('[{"id": 1, "data": {"image": "cat/0.jpg"}, "annotations": []}]')
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "photos"), "--votes", str(tmp_path / "votes.jsonl"),
                "--votes", str(tmp_path / "votes.json"), "--votes", str(tmp_path / "ls.json"))
    assert res.returncode == 0, res.stderr
    exports = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["labels"]["exports"]
    assert [(e["kind"], e.get("item_column"), e.get("worker_column"), e.get("label_column")) for e in exports] == [
        ("csv", "image", "user.id", "class"), ("csv", "file", "rater", "choice"), ("label_studio", None, None, None)]


@pytest.mark.parametrize("header, found", [
    # Toloka's TSV: platform prefixes looked through, the reference answer (GOLDEN:) never the vote
    ("INPUT:image\tOUTPUT:result\tGOLDEN:result\tASSIGNMENT:worker_id\tASSIGNMENT:status",
     ("INPUT:image", "ASSIGNMENT:worker_id", "OUTPUT:result")),
    ("task,worker,label", ("task", "worker", "label")),  # crowd-kit's own layout
    ("HITId,image,task,worker_id,label", ("image", "worker_id", "label")),  # an image column beats a task id
    ("object_id,performer_id,output", ("object_id", "performer_id", "output")),
    ("photo,annotator,answer", ("photo", "annotator", "answer")),
    # Labelbox: the file's own name (External ID) before the platform's row id, the labeller's e-mail
    ("DataRow ID,External ID,Created By,Label", ("External ID", "Created By", "Label")),
    ("question,worker,answer", ("question", "worker", "answer")),  # the truth-inference benchmark's answer.csv
    ("_unit_id,_golden,_worker_id,_trust,label", ("_unit_id", "_worker_id", "label")),  # Figure Eight's full report
    # ... whose answer column is named by its question, beside that question's gold answer
    ("_unit_id,_golden,_worker_id,_trust,image_url,is_it_a_cat,is_it_a_cat_gold,is_it_a_cat_gold_reason",
     ("image_url", "_worker_id", "is_it_a_cat")),
])
def test_vote_csv_columns_of_other_platforms(header, found):
    from ingest.votes.plain_csv import columns_of

    names = header.split("\t") if "\t" in header else header.split(",")
    assert tuple(columns_of(names).values()) == found


def test_parquet_image_and_label_columns_are_found_in_the_file(run_cli, tmp_path):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    (tmp_path / "hf").mkdir()
    pq.write_table(pa.table({"caption": ["a"], "img": [{"bytes": buf.getvalue(), "path": "0.png"}], "fine_label": [3]}),
                   tmp_path / "hf" / "train-00000.parquet")
    pq.write_table(pa.table({"id": ["a"], "jpeg": [buf.getvalue()]}), tmp_path / "unlabelled.parquet")
    pq.write_table(pa.table({"id": ["a"], "text": ["no image here"]}), tmp_path / "text.parquet")
    res = _init(run_cli, tmp_path, "--parquet", str(tmp_path / "hf"), "--parquet", str(tmp_path / "unlabelled.parquet"))
    assert res.returncode == 0, res.stderr
    first, second = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["ingest"]["sources"]
    assert (first["image_column"], first["label_column"]) == ("img", "fine_label")
    assert (second["image_column"], second["label_column"]) == ("jpeg", None)
    res = _init(run_cli, tmp_path, "--parquet", str(tmp_path / "text.parquet"), "--force")
    assert res.returncode == 2 and "no column of image bytes" in res.stderr and "id, text" in res.stderr


def test_user_mistakes_are_one_line(run_cli, tmp_path):
    for args, needle in ((), "nothing to ingest"), (("--images", str(tmp_path / "nope")), "image folder not found"):
        res = _init(run_cli, tmp_path, *args)
        assert res.returncode == 2 and needle in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    (tmp_path / "votes.xlsx").write_bytes(b"PK\x03\x04 a workbook")
    res = _init(run_cli, tmp_path, "--votes", str(tmp_path / "votes.xlsx"))
    assert res.returncode == 2 and "save the sheet as CSV" in res.stderr
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    res = _init(run_cli, tmp_path, "--votes", str(tmp_path / "bad.csv"))
    assert res.returncode == 2 and "holds the item or worker or label" in res.stderr
    (tmp_path / "part.csv").write_text("shot,annotator,answer\n1.jpg,w1,cat\n")
    res = _init(run_cli, tmp_path, "--votes", str(tmp_path / "part.csv"))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "holds the item (header 'shot,annotator,answer'; found worker 'annotator', label 'answer')" in res.stderr
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "tables").mkdir()
    latin1 = os.fsencode(tmp_path / "tables") + b"/caf\xe9.parquet"  # a name from an old system's disk
    with open(latin1, "wb") as fh:
        pq.write_table(pa.table({"id": ["a"], "text": ["a row"]}), fh)
    res = _init(run_cli, tmp_path, "--parquet", str(tmp_path / "tables"))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "1 file or folder name(s) not in UTF-8 (first: 'caf\\xe9.parquet'), which DVC cannot track" in res.stderr
    assert not (tmp_path / "proj" / "params.yaml").exists()
    _folder(tmp_path / "photos")  # an image folder is digested by list_sources, not hashed by DVC: any name is fine
    Path(os.fsdecode(os.fsencode(tmp_path / "photos" / "cat") + b"/caf\xe9.jpg")).write_bytes(
        (tmp_path / "photos" / "cat" / "0.jpg").read_bytes())
    res = run_cli("init", str(tmp_path / "photos" / "proj"), "--images", str(tmp_path / "photos"), cwd=tmp_path)
    assert res.returncode == 2 and "would lie inside this source folder" in res.stderr, res.stderr
    assert _init(run_cli, tmp_path, "--images", str(tmp_path / "photos")).returncode == 0
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "photos"), "--size", "64")
    assert res.returncode == 2 and "exists; use --force" in res.stderr


def test_repository_dvc_yaml_is_the_demo_project_pipeline(run_cli, tmp_path):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert render(raw, load_params_file(REPO / "params.yaml"), REPO) == (REPO / "dvc.yaml").read_text(), \
        "dvc.yaml is out of date with params.yaml / sluice/pipeline.py: run `sluice pipeline`"
    res = run_cli("init", str(tmp_path / "demo"), "--demo", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    demo = yaml.safe_load((tmp_path / "demo" / "dvc.yaml").read_text())
    repo = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert list(demo["stages"]) == list(repo["stages"]) and demo["plots"] == repo["plots"]
    for name, stage in repo["stages"].items():
        assert demo["stages"][name]["cmd"] == stage["cmd"]
        code = code_paths(STAGES[[s.name for s in STAGES].index(name)].code, REPO)
        assert demo["stages"][name].get("deps", []) == [d for d in stage["deps"] if d not in code]
    assert (tmp_path / "demo" / "params.yaml").read_text() == (REPO / "params.yaml").read_text()


def test_demo_only_deps_are_in_the_demo_project_only():
    repo = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert "data/demo/votes/gold.csv" in repo["labels"]["deps"]  # the demo sets labels.gold_file ...
    from sluice.config import parse_params

    dvc = build({"labels": {}}, parse_params({}), REPO)["stages"]  # ... a project without it does not
    assert not [d for s in dvc.values() for d in s.get("deps", []) if "demo" in d]
    assert list(dvc)[0] == "labels"


def test_stage_table_code_exists_and_manifest_links(tmp_path):
    for stage in STAGES:
        assert code_paths(stage.code, REPO)  # raises naming a required module that is gone
    with pytest.raises(ConfigError, match="module 'ingest.gone' of the stage table"):
        code_paths(("ingest.gone", "ingest.maybe?"), REPO)
    assert code_paths(("transform.labels", "ingest.crawl", "ingest.maybe?"), REPO)[1] == "ingest/crawl"
    assert upstream_manifests("export") == ["dataset.json"]
    assert upstream_manifests("ingest_public") == []


def test_pipeline_command_rewrites_and_checks(run_cli, tmp_path):
    _folder(tmp_path / "photos")
    res = run_cli("init", str(tmp_path / "photos" / "proj"), "--images", str(tmp_path / "photos"), cwd=tmp_path)
    assert res.returncode == 2 and "would lie inside this source folder" in res.stderr, res.stderr
    assert _init(run_cli, tmp_path, "--images", str(tmp_path / "photos")).returncode == 0
    root = tmp_path / "proj"
    env = {"SLUICE_PARAMS": str(root / "params.yaml")}
    assert run_cli("pipeline", "--check", cwd=root, env=env).returncode == 0
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["compress"] = {}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    assert run_cli("pipeline", "--check", cwd=root, env=env).returncode == 1
    assert run_cli("pipeline", cwd=root, env=env).returncode == 0
    assert "compress" in yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    assert json.loads(json.dumps(params))  # params stayed plain data


def test_oof_and_insight_stages_split_the_insight_section():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    stages = build(raw, load_params_file(REPO / "params.yaml"), REPO)["stages"]
    oof = [p for p in stages["oof"]["params"] if p.startswith("insight")]
    mine = [p for p in stages["insight"]["params"] if p.startswith("insight")]
    assert "insight.folds" in oof and "insight.robustness" in mine and "insight.saliency_per_class" in mine
    assert not set(oof) & set(mine) and set(oof) | set(mine) == {f"insight.{k}" for k in raw["insight"]}
    assert "models/int8" in stages["insight"]["deps"] and "reports/insight" in stages["insight"]["outs"]
    del raw["compress"]  # without a compress stage the insight stage measures fp32 alone
    alone = build(raw, load_params_file(REPO / "params.yaml"), REPO)["stages"]["insight"]
    assert "models/int8" not in alone["deps"] and "models/fp32" in alone["deps"]


def test_report_stage_depends_on_what_the_project_writes():
    from sluice.config import parse_params
    from sluice.pipeline import _optional

    raw = {"ingest": {"sources": [{"name": "a", "kind": "image_folder", "path": "imgs"}]}}
    deps = build(raw, parse_params(raw), code_root=None)["stages"]["report"]["deps"]
    # no oof or compress stage here: their metrics are no dependency; an optional input (the insight
    # stage's folder) only when a stage writes it
    assert "reports/metrics/label_issues.json" not in deps and "reports/metrics/compress.json" not in deps
    assert "reports/metrics/train.json" in deps and "reports/insight" not in deps
    produced = {"reports/insight", "reports/plots/robustness.csv"}
    assert _optional(["reports/insight"], produced) == ["reports/insight"]
    assert _optional(["reports/insight/saliency.json"], produced) == ["reports/insight"]
    assert _optional(["reports"], {"reports/insight/robustness.json"}) == ["reports/insight/robustness.json"]
    assert _optional(["reports/insight"], {"reports/insights"}) == []


def _cifar(root: Path, names: list[bytes], files=("data_batch_1", "test_batch"), meta="batches.meta", key=b"label_names"):
    import pickle

    import numpy as np

    root.mkdir()
    for name in files:
        (root / name).write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}))
    (root / meta).write_bytes(pickle.dumps({key: names}))
    return root


def test_votes_as_class_indices_are_named_by_the_cifar_meta(run_cli, tmp_path):
    """CIFAR-10N's file: a .pt dict of arrays, labels 0-9 in CIFAR's class order, rows = training images."""
    import numpy as np

    torch = pytest.importorskip("torch")
    _cifar(tmp_path / "cifar-10-batches-py", [b"airplane", b"automobile", b"bird"])
    _cifar(tmp_path / "cifar-100-python", [b"apple", b"aquarium_fish"], files=("train", "test"), meta="meta",
           key=b"fine_label_names")
    labels = np.arange(9) % 3
    torch.save({"clean_label": labels, "random_label1": labels, "random_label2": labels}, tmp_path / "human.pt")
    res = _init(run_cli, tmp_path, "--cifar", str(tmp_path / "cifar-10-batches-py"), "--cifar",
                str(tmp_path / "cifar-100-python"), "--votes", str(tmp_path / "human.pt"))
    assert res.returncode == 0, res.stderr
    assert "labels are class indices (0..2), named by source cifar-cifar-10-batches-py" in res.stdout
    assert "no item column" in res.stderr  # 9 rows: not a CIFAR split's size, so the user is told to key them
    params = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())
    export = params["labels"]["exports"][0]
    assert (export["kind"], export["label_columns"], export["class_names"]) == (
        "wide", ["random_label1", "random_label2"], ["airplane", "automobile", "bird"])
    assert [s.get("variant") for s in params["ingest"]["sources"]] == [None, "cifar100"]  # the folder told it


def test_a_wide_csv_is_told_from_a_long_one(run_cli, tmp_path):
    _folder(tmp_path / "photos")
    (tmp_path / "wide.csv").write_text("image,rater_1,rater_2\ncat/0.jpg,0,1\ndog/0.jpg,1,1\n")
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "photos"), "--votes", str(tmp_path / "wide.csv"))
    assert res.returncode == 0, res.stderr
    export = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["labels"]["exports"][0]
    assert (export["kind"], export["item_column"], export["label_columns"]) == ("wide", "image", ["rater_1", "rater_2"])
    assert export["class_names"] == ["cat", "dog"]  # the class folders, sorted as torchvision's ImageFolder numbers them
    res = _init(run_cli, tmp_path, "--votes", str(tmp_path / "wide.csv"), "--force")
    assert res.returncode == 0 and "labels are class indices (0..1); set class_names" in res.stderr


def test_class_indices_are_named_by_the_folders_of_the_images_the_votes_name(run_cli, tmp_path):
    """LabelMe's crowd set: answers.txt (a row per image, a column per annotator, -1: no answer) beside
    filenames_train.txt, its classes numbered highway 0, insidecity 1, forest 2: not the folders' sorted order."""
    order = ("highway", "insidecity", "forest")
    root = tmp_path / "LabelMe"
    names, rows = [], []
    for index, cls in enumerate(order):
        (root / "train" / cls).mkdir(parents=True)
        for k in range(2):
            Image.new("RGB", (20, 20), (80 * index, 40 * k, 10)).save(root / "train" / cls / f"{cls}_{k}.jpg")
            names.append(f"{cls}_{k}.jpg")
            rows.append(f"{index} -1 {index}" if k else f"{index} {(index + 1) % 3} -1")  # one vote in four wrong
    (root / "filenames_train.txt").write_text("\n".join(names) + "\n")
    (root / "answers.txt").write_text("\n".join(rows) + "\n")
    res = _init(run_cli, tmp_path, "--images", str(root), "--votes", str(root / "answers.txt"))
    assert res.returncode == 0, res.stderr
    export = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["labels"]["exports"][0]
    assert export["items_file"] == (root / "filenames_train.txt").as_posix() and export["class_names"] == list(order)
    assert "named by the class folders of the images 12 of its votes name: 0=highway, 1=insidecity, 2=forest; not " \
           "source image-labelme's sorted order (class_names in params.yaml)" in res.stdout
    assert (root / "filenames_train.txt").as_posix() in _all_deps(_project(tmp_path)[1])


def test_a_flat_folder_labelled_by_a_csv_beside_it(run_cli, tmp_path):
    """Kaggle's layout (train/ + train.csv): the labels file is found, and a change to it reruns ingest."""
    (tmp_path / "train").mkdir()
    for i in range(2):
        Image.new("RGB", (20, 20), (90 * i, 10, 10)).save(tmp_path / "train" / f"{i}.jpg")
    (tmp_path / "train.csv").write_text("id,breed\n0,husky\n1,pug\n")
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "train"))
    assert res.returncode == 0, res.stderr
    assert "label_from=file" in res.stdout and "label_column=breed" in res.stdout
    source = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["ingest"]["sources"][0]
    assert (source["label_from"], source["file_column"], source["label_column"]) == ("file", "id", "breed")
    deps = yaml.safe_load((tmp_path / "proj" / "dvc.yaml").read_text())["stages"]["ingest_public"]["deps"]
    assert deps == ["data/source_listing.json", source["labels_file"]]  # the folder by its digest


def test_a_flat_split_folders_labels_file_is_found_and_is_a_dependency(run_cli, tmp_path):
    """torchvision's GTSRB: GT-final_test.csv above GTSRB/Final_Test/Images/ labels the test split; it lies
    outside the image folder, so the ingest stage depends on it."""
    root = tmp_path / "gtsrb" / "GTSRB"
    for c in range(2):
        (root / "Training" / f"{c:05d}").mkdir(parents=True)
        Image.new("RGB", (20, 20), (90 * c, 10, 10)).save(root / "Training" / f"{c:05d}" / "0.ppm")
    (root / "Final_Test" / "Images").mkdir(parents=True)
    Image.new("RGB", (20, 20), (10, 90, 10)).save(root / "Final_Test" / "Images" / "00000.ppm")
    (tmp_path / "gtsrb" / "GT-final_test.csv").write_text("Filename;ClassId\n00000.ppm;1\n")
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "gtsrb"))
    assert res.returncode == 0, res.stderr
    assert "split_labels={'Final_Test/Images': " in res.stdout and "2 classes (00000, 00001)" in res.stdout
    params, dvc = _project(tmp_path)
    labels = (tmp_path / "gtsrb" / "GT-final_test.csv").as_posix()
    assert params["ingest"]["sources"][0]["split_labels"] == {"Final_Test/Images": labels}
    assert labels in dvc["stages"]["ingest_public"]["deps"]


def test_a_data_sets_own_split_lists_are_found_and_are_dependencies(run_cli, tmp_path):
    """Food-101's layout: images/<class>/ beside meta/train.txt and meta/test.txt naming `class/id`."""
    root = tmp_path / "food-101"
    _folder(root / "images", classes=("apple_pie", "beignets"), n=4)
    (root / "meta").mkdir()
    (root / "meta" / "train.txt").write_text("apple_pie/0\napple_pie/1\nbeignets/0\nbeignets/1\n")
    (root / "meta" / "test.txt").write_text("apple_pie/2\napple_pie/3\nbeignets/2\nbeignets/3\n")
    res = _init(run_cli, tmp_path, "--images", str(root))
    assert res.returncode == 0, res.stderr
    lists = [(root / "meta" / f"{s}.txt").as_posix() for s in ("test", "train")]
    assert f"split_lists={lists}" in res.stdout
    params, dvc = _project(tmp_path)
    assert params["ingest"]["sources"][0]["split_lists"] == lists
    assert dvc["stages"]["ingest_public"]["deps"] == ["data/source_listing.json", *lists]


def test_caffe_style_lists_label_a_flat_folder_and_indices_without_names_are_said(run_cli, tmp_path):
    (tmp_path / "set" / "images").mkdir(parents=True)
    for i in range(8):
        Image.new("RGB", (30 + i, 30), (30 * i, 0, 0)).save(tmp_path / "set" / "images" / f"im{i}.jpg")
    (tmp_path / "set" / "train.txt").write_text("".join(f"images/im{i}.jpg {i % 2}\n" for i in range(6)))
    (tmp_path / "set" / "val.txt").write_text("images/im6.jpg 0\nimages/im7.jpg 1\n")
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "set"))
    assert res.returncode == 0, res.stderr
    assert "2 classes (0, 1); they are class indices: set class_names on the source" in res.stdout
    params, dvc = _project(tmp_path)
    [src] = params["ingest"]["sources"]
    assert src["label_from"] == "lists" and [Path(p).name for p in src["split_lists"]] == ["train.txt", "val.txt"]
    assert (tmp_path / "set" / "train.txt").as_posix() in _all_deps(dvc)


def test_an_archive_or_a_single_file_given_as_images_is_one_line(run_cli, tmp_path):
    """A Kaggle download as it comes (a .zip) or one image: exit 2 with what to give instead, no traceback."""
    (tmp_path / "data.rar").write_bytes(b"Rar!\x1a\x07\x01\x00" + b"\0" * 18)  # zip and tar are extracted (test_init_archive)
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "data.rar"))
    assert res.returncode == 2 and "data.rar: an archive: extract it first" in res.stderr and "Traceback" not in res.stderr
    Image.new("RGB", (8, 8)).save(tmp_path / "one.jpg")
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "one.jpg"))
    assert res.returncode == 2 and "one.jpg: not a folder (--images takes a folder of images" in res.stderr


def test_a_hostile_deeply_nested_json_export_is_one_line(run_cli, tmp_path):
    """Python's JSON parser recurses: a file of 200,000 nested brackets was a RecursionError traceback."""
    (tmp_path / "votes.json").write_text("[" * 200_000 + "]" * 200_000)
    res = _init(run_cli, tmp_path, "--votes", str(tmp_path / "votes.json"))
    assert res.returncode == 2 and "Traceback" not in res.stderr and "votes.json" in res.stderr


def test_a_subject_column_is_written_and_said(run_cli, tmp_path):
    """A patient id beside the labels: init writes subject_column and says what it does and how to turn it off."""
    (tmp_path / "xrays").mkdir()
    for i in range(4):
        Image.new("RGB", (20, 20), (60 * i, 10, 10)).save(tmp_path / "xrays" / f"{i}.png")
    (tmp_path / "Data_Entry.csv").write_text("Image Index,Finding Labels,Patient ID\n0.png,No Finding,1\n"
                                             "1.png,Effusion,1\n2.png,No Finding,2\n3.png,Effusion,3\n")
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "xrays"))
    assert res.returncode == 0, res.stderr
    source = _project(tmp_path)[0]["ingest"]["sources"][0]
    assert (source["label_column"], source["subject_column"]) == ("Finding Labels", "Patient ID")
    assert "column 'Patient ID' names what each image shows" in res.stdout
    assert "set subject_column: null to split images one by one" in res.stdout
    assert "export SLUICE_PSEUDONYM_KEY=...  # a secret: the patients images show are stored as keyed pseudonyms" \
        in res.stdout


def test_a_folder_of_unlabelled_images_says_labels_come_before_training(run_cli, tmp_path):
    """A flat folder with nothing that labels it (a PACS export, a scrape): init writes label_from: none and says what
    the first `dvc repro` would otherwise stop on (labels.classes), with the ways to label the images."""
    (tmp_path / "scans").mkdir()
    for i in range(3):
        Image.new("RGB", (20, 20), (70 * i, 10, 10)).save(tmp_path / "scans" / f"scan{i}.png")
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "scans"))
    assert res.returncode == 0, res.stderr
    assert _project(tmp_path)[0]["ingest"]["sources"][0]["label_from"] == "none"
    assert "no source labels its images (label_from: none): add crowd votes" in res.stdout
    assert "SLUICE_PSEUDONYM_KEY" not in res.stdout  # PNGs name no one
    # a PACS export: its files' headers name patients, so the key hint is printed as for a patient column
    (tmp_path / "pacs" / "DICOM" / "PA0").mkdir(parents=True)
    (tmp_path / "pacs" / "DICOM" / "PA0" / "IM0").write_bytes(make_dicom(np.zeros((8, 8), np.uint16), PatientID="P1"))
    res = _init(run_cli, tmp_path, "--force", "--images", str(tmp_path / "pacs"))
    assert res.returncode == 0, res.stderr
    assert "export SLUICE_PSEUDONYM_KEY=...  # a secret: the patients images show are stored as keyed pseudonyms" \
        in res.stdout


def test_true_labels_beside_the_votes_become_the_ground_truth(run_cli, tmp_path):
    """A research collection ships its true labels beside its votes: init scores the crowd against them."""
    (tmp_path / "answer.csv").write_text("question,worker,answer\nq1,w1,1\nq1,w2,0\nq2,w1,0\n")
    (tmp_path / "truth.csv").write_text("question,truth\nq1,1\nq2,0\n")
    (tmp_path / "bm.response.txt").write_text("w1\tq1\t1\nw2\tq1\t1\nw1\tq2\t0\nw2\tq2\t1\nw1\tq3\t0\n")
    (tmp_path / "bm.gold.txt").write_text("q1\t1\nq2\t0\nq3\t0\n")
    res = _init(run_cli, tmp_path, "--votes", str(tmp_path / "answer.csv"))
    assert res.returncode == 0, res.stderr
    assert _project(tmp_path)[0]["labels"]["ground_truth"] == (tmp_path / "truth.csv").as_posix()
    assert "true labels of 2 items beside the votes" in res.stdout
    # SQUARE's pair: bm.gold.txt is bm.response.txt's (truth.csv, beside answer.csv, is not)
    res = _init(run_cli, tmp_path, "--force", "--votes", str(tmp_path / "bm.response.txt"))
    assert res.returncode == 0, res.stderr
    params, dvc = _project(tmp_path)
    assert params["labels"]["ground_truth"] == (tmp_path / "bm.gold.txt").as_posix()
    assert params["labels"]["exports"][0]["header"] is False
    assert (tmp_path / "bm.gold.txt").as_posix() in dvc["stages"]["labels"]["deps"]
    # both vote files: two candidates, none taken, and --truth picks one
    res = _init(run_cli, tmp_path, "--force", "--votes", str(tmp_path / "answer.csv"),
                "--votes", str(tmp_path / "bm.response.txt"))
    assert res.returncode == 0 and "none taken: pass --truth FILE" in res.stderr
    assert _project(tmp_path)[0]["labels"]["ground_truth"] is None
    res = _init(run_cli, tmp_path, "--force", "--votes", str(tmp_path / "answer.csv"), "--truth", str(tmp_path / "truth.csv"))
    assert res.returncode == 0 and _project(tmp_path)[0]["labels"]["ground_truth"] == (tmp_path / "truth.csv").as_posix()


def test_a_truth_file_that_is_no_label_table_is_not_taken(run_cli, tmp_path):
    (tmp_path / "votes.csv").write_text("item,worker,label\nq1,w1,cat\n")
    (tmp_path / "gt.json").write_text("[1, 2]")  # e.g. some other tool's file
    res = _init(run_cli, tmp_path, "--votes", str(tmp_path / "votes.csv"))
    assert res.returncode == 0 and "gt.json beside the votes is not taken" in res.stderr
    assert _project(tmp_path)[0]["labels"]["ground_truth"] is None
    res = _init(run_cli, tmp_path, "--force", "--votes", str(tmp_path / "votes.csv"), "--truth", str(tmp_path / "gt.json"))
    assert res.returncode == 2 and "must be a JSON object" in res.stderr
    res = _init(run_cli, tmp_path, "--force", "--truth", str(tmp_path / "votes.csv"), "--images", str(_folder(tmp_path / "p")))
    assert res.returncode == 2 and "--truth scores crowd votes: give the votes with --votes FILE" in res.stderr


def test_a_multi_label_file_is_said_to_be_read_one_versus_the_rest(run_cli, tmp_path):
    """Planet's train_v2.csv of image_name,tags (`haze primary`): init says what it made of the several labels."""
    root = tmp_path / "planet"
    (root / "train-jpg").mkdir(parents=True)
    tags = ["haze primary", "clear primary water", "clear primary", "cloudy", "clear primary road"]
    rows = []
    for i in range(40):
        Image.new("RGB", (32, 32), (i * 5, 30, 90)).save(root / "train-jpg" / f"train_{i}.jpg")
        rows.append(f"train_{i},{tags[i % len(tags)]}")
    (root / "train_v2.csv").write_text("image_name,tags\n" + "\n".join(rows) + "\n")
    res = _init(run_cli, tmp_path, "--images", str(root))
    assert res.returncode == 0, res.stderr
    assert "column 'tags' gives several labels an image (multi-label)" in res.stdout
    assert "read as one versus the rest, 'clear' / 'not_clear'" in res.stdout  # 24 of 40 rows: nearest half


@pytest.mark.parametrize("name, data, needle", [
    ("latin1.csv", "image,annotator,answer\ncafé.jpg,w1,cat\n".encode("latin-1"),
     "not UTF-8 (byte 0xe9 at offset 26, line 2); save the file as UTF-8"),
    ("utf16.csv", "image,annotator,answer\na.jpg,w1,cat\n".encode("utf-16"), "UTF-16 text (byte order mark FF FE)"),
    ("utf16.txt", "image\tannotator\tanswer\na.jpg\tw1\tcat\n".encode("utf-16-le"), "UTF-16 text (a NUL byte beside"),
    ("batch.csv", "HITId,WorkerId,Input.image_url,Answer.label\nH,W,a.jpg,cat\n".encode("utf-16-be"), "UTF-16 text"),
], ids=["latin1", "utf16-bom", "utf16le-tsv", "utf16be-mturk"])
def test_a_votes_file_not_in_utf8_is_one_line_at_init(run_cli, tmp_path, name, data, needle):
    """Every init path that reads a votes file's header (kind, columns, truth columns) checks its encoding first."""
    (tmp_path / name).write_bytes(data)
    res = _init(run_cli, tmp_path, "--votes", str(tmp_path / name))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert needle in res.stderr and "save the file as UTF-8" in res.stderr and "\x00" not in res.stdout + res.stderr


@pytest.mark.parametrize("size", ["0", "3", "-5", "2049", "big"])
def test_a_size_out_of_range_is_one_line_and_writes_nothing(run_cli, tmp_path, size):
    """`--size 100000` was a pydantic traceback (exit 1) leaving an empty project folder; `--size 0` was ignored."""
    _folder(tmp_path / "photos")
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "photos"), "--size", size)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "argument --size:" in res.stderr.splitlines()[-1] and not (tmp_path / "proj").exists()


def test_wordnet_id_folders_are_named_from_the_mapping_file(run_cli, tmp_path):
    """Imagenette-style train/<wnid>/ folders with LOC_synset_mapping.txt beside them: labels.classes are the names
    (in the ids' order) and labels.synonyms maps each id to its name, so the model and predict say `tench`."""
    _folder(tmp_path / "photos" / "train", classes=["n01440764", "n02102040"])
    (tmp_path / "photos" / "LOC_synset_mapping.txt").write_text(
        "n01440764 tench, Tinca tinca\nn02102040 English springer, springer\nn02979186 cassette player\n")
    res = _init(run_cli, tmp_path, "--images", str(tmp_path / "photos"))
    assert res.returncode == 0, res.stderr
    assert "the classes are WordNet ids, named from" in res.stdout
    labels = _project(tmp_path)[0]["labels"]
    assert labels["classes"] == ["tench", "English springer"]
    assert labels["synonyms"] == {"n01440764": "tench", "n02102040": "English springer"}


def test_lake_stages_manifests_are_persisted_so_the_run_cache_never_stands_in_for_a_run():
    """The lake is not a DVC output: a vote export copied back to an earlier version had DVC "restore" the
    ingest's manifest from its run cache and skip the run, the lake keeping the later votes. A persisted output
    turns the run cache off for the stage (dvc.stage.cache._can_hash); the manifest stays DVC-cached."""
    from dvc.stage.cache import _can_hash  # noqa: F401 (the rule this relies on)

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    stages = build(raw, load_params_file(REPO / "params.yaml"), REPO)["stages"]
    for name in ("ingest_public", "ingest_crowd", "labels", "clean", "dedup", "dataset"):
        assert {f"data/manifests/{name}.json": {"persist": True}} in stages[name]["outs"], name
    assert "data/dataset" in stages["export"]["outs"]  # the snapshot itself is restored as before
