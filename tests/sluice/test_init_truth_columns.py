"""``sluice init --votes``: true labels and control answers kept inside the vote file become labels.ground_truth and
labels.gold_file, read from their columns as the votes are keyed."""

from __future__ import annotations

from pathlib import Path

import yaml
from PIL import Image


def _images(root: Path, classes=("airplane", "cat")) -> Path:
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (32, 32), (80 * c, 30 * i, 90)).save(root / name / f"{i}.png")
    return root


def _labels(tmp_path) -> dict:
    return yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["labels"]


def _init(run_cli, tmp_path, *args):
    return run_cli("init", str(tmp_path / "proj"), "--force", *args, cwd=tmp_path)


def test_cifar10h_trials_give_their_true_category_as_the_ground_truth(run_cli, tmp_path):
    images = _images(tmp_path / "imgs")
    votes = tmp_path / "cifar10h-raw.csv"
    votes.write_text("annotator_id,chosen_label,true_label,true_category,image_filename,is_attn_check\n"
                     "0,1,1,cat,cat/0.png,0\n1,0,1,cat,cat/0.png,0\n0,0,0,airplane,airplane/1.png,0\n")
    res = _init(run_cli, tmp_path, "--images", str(images), "--votes", str(votes))
    assert res.returncode == 0, res.stderr
    assert "column true_category holds the true labels of 2 items: labels.ground_truth" in res.stdout
    labels = _labels(tmp_path)
    assert labels["ground_truth"] == {"path": votes.as_posix(), "item_column": "image_filename",
                                      "label_column": "true_category"}
    assert labels["gold_file"] is None
    # only the class indices: named as the votes' indices are (the export's class_names, from the class folders)
    votes.write_text("annotator_id,chosen_label,true_label,image_filename\n0,1,1,cat/0.png\n1,0,1,cat/0.png\n"
                     "0,0,0,airplane/1.png\n")
    res = _init(run_cli, tmp_path, "--images", str(images), "--votes", str(votes))
    assert res.returncode == 0, res.stderr
    labels = _labels(tmp_path)
    assert labels["exports"][0]["class_names"] == ["airplane", "cat"]
    assert labels["ground_truth"]["label_column"] == "true_label"
    assert labels["ground_truth"]["class_names"] == ["airplane", "cat"]
    assert "(class indices, named by the export's class_names)" in res.stdout


def test_control_answers_become_the_gold_file(run_cli, tmp_path):
    """Toloka's GOLDEN:result and Figure Eight's <question>_gold hold a control task's known answer."""
    toloka = tmp_path / "assignments.tsv"
    toloka.write_text("INPUT:image\tOUTPUT:result\tGOLDEN:result\tASSIGNMENT:worker_id\tASSIGNMENT:status\n"
                      "a.png\tcat\tcat\tw1\tAPPROVED\nb.png\tdog\t\tw1\tAPPROVED\na.png\tdog\tcat\tw2\tAPPROVED\n")
    res = _init(run_cli, tmp_path, "--votes", str(toloka))
    assert res.returncode == 0, res.stderr
    labels = _labels(tmp_path)
    assert {k: v for k, v in labels["gold_file"].items() if k != "delimiter"} == {
        "path": toloka.as_posix(), "item_column": "INPUT:image", "label_column": "GOLDEN:result"}
    assert labels["ground_truth"] is None
    assert "column GOLDEN:result holds the known answers of 1 items: labels.gold_file" in res.stdout
    report = tmp_path / "f8.csv"
    report.write_text("_unit_id,_golden,_worker_id,is_it_a_cat,is_it_a_cat_gold\n"
                      "a.png,true,7,yes,yes\nb.png,false,7,no,\na.png,true,8,no,yes\n")
    res = _init(run_cli, tmp_path, "--votes", str(report))
    assert res.returncode == 0, res.stderr
    assert _labels(tmp_path)["gold_file"]["label_column"] == "is_it_a_cat_gold"


def test_a_truth_file_comes_first_and_a_column_of_two_truths_is_not_taken(run_cli, tmp_path):
    votes = tmp_path / "votes.csv"
    votes.write_text("item,worker,answer,truth\nq1,w1,cat,cat\nq1,w2,dog,dog\n")
    res = _init(run_cli, tmp_path, "--votes", str(votes))
    assert res.returncode == 0, res.stderr
    assert "column truth is not taken as true labels" in res.stderr and "item 'q1' has two labels" in res.stderr
    assert _labels(tmp_path)["ground_truth"] is None
    (tmp_path / "gold.csv").write_text("item,label\nq1,cat\n")
    res = _init(run_cli, tmp_path, "--votes", str(votes), "--truth", str(tmp_path / "gold.csv"))
    assert res.returncode == 0 and _labels(tmp_path)["ground_truth"] == (tmp_path / "gold.csv").as_posix()
    assert "column truth" not in res.stdout + res.stderr


def test_gold_accepting_several_answers_is_not_taken(run_cli, tmp_path):
    report = tmp_path / "f8.csv"
    report.write_text('_unit_id,_worker_id,is_it_a_cat,is_it_a_cat_gold\na.png,7,yes,"yes\nmaybe"\nb.png,7,no,\n')
    res = _init(run_cli, tmp_path, "--votes", str(report))
    assert res.returncode == 0, res.stderr
    assert "item 'a.png' accepts several answers" in res.stderr and _labels(tmp_path)["gold_file"] is None


def test_votes_on_labelled_images_are_scored_against_the_images_labels(run_cli, tmp_path):
    images = _images(tmp_path / "imgs")
    votes = tmp_path / "votes.csv"
    votes.write_text("image,annotator,answer\ncat/0.png,a,cat\nairplane/1.png,a,airplane\n")
    res = _init(run_cli, tmp_path, "--images", str(images), "--votes", str(votes))
    assert res.returncode == 0, res.stderr
    assert _labels(tmp_path)["ground_truth"] == "sources"
    assert "the crowd is scored against the labels the images come with" in res.stdout
    res = _init(run_cli, tmp_path, "--votes", str(votes))  # votes alone: nothing to score against
    assert res.returncode == 0 and _labels(tmp_path)["ground_truth"] is None
