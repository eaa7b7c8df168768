"""Votes as a mapping of mappings (the bluebirds' labels.yaml, or a JSON object keyed by image): every answer lands,
which side is the worker told by the keys, and what cannot be one answer is a reject with its keys."""

from __future__ import annotations

import json

import pytest
import yaml

from ingest.votes.nested import NestedVotesExport, detect, read
from sluice.errors import InputError


def _export(path, **extra):
    return NestedVotesExport.model_validate({"name": "n", "kind": "nested", "path": str(path), **extra})


def test_workers_outside_as_the_bluebirds_ship_them(tmp_path):
    path = tmp_path / "labels.yaml"
    path.write_text(yaml.safe_dump({w: {1000 + i: (i + w) % 2 for i in range(5)} for w in range(3)}))
    assert detect(str(path)) == {}  # 3 outer keys, 5 inner: the outer ones are the workers
    parsed = read(_export(path))
    assert parsed.votes.height == 15 and not parsed.rejects
    first = parsed.votes.row(0, named=True)
    assert (first["worker_id"], first["item_ref"], first["label"], first["status"]) == ("0", "1000", "0", "submitted")


def test_images_outside_are_items_whatever_the_counts(tmp_path):
    path = tmp_path / "votes.json"
    path.write_text(json.dumps({f"img/{i}.jpg": {f"w{w}": True for w in range(4)} for i in range(2)}))
    assert detect(str(path)) == {"outer": "item"}
    votes = read(_export(path, outer="item")).votes
    assert set(votes["item_ref"]) == {"img/0.jpg", "img/1.jpg"} and set(votes["label"]) == {"true"}
    assert votes["worker_id"].n_unique() == 4


def test_what_is_not_one_answer_is_a_reject_naming_its_keys(tmp_path):
    path = tmp_path / "labels.yaml"
    path.write_text(yaml.safe_dump({"w1": {"a": 1, "b": [1, 0], "c": None, "d": ["cat"]}, "w2": [1, 2]}))
    parsed = read(_export(path))
    assert parsed.votes.select("item_ref", "label").rows() == [("a", "1"), ("d", "cat")]
    assert sorted((r.where.rsplit(":", 1)[1], r.reason) for r in parsed.rejects) == [
        ("w1/b", "bad_record"), ("w1/c", "missing_field"), ("w2", "bad_record")]


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "not a mapping of mappings"), ("{a: [", "not valid YAML"),
    ("w1: {a: 1}\nw2: {b: 1}\n", "cannot tell whether its outer keys are workers or items"),
    ("w1: {a: [1, 2]}\n", r"no outer key maps to one answer; w1/a: not one answer"),
    ("!!python/object/apply:os.system ['true']", "not valid YAML"),  # the safe loader builds no objects
    ("a: &a [x, x, x]\nb: &b [*a, *a, *a]\nw1: {img.jpg: [*b]}\n", "uses YAML aliases"),  # a billion laughs, small
])
def test_a_file_it_cannot_read_is_one_line(tmp_path, text, message):
    path = tmp_path / "labels.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        detect(str(path))


def test_init_takes_the_bluebirds_votes_and_their_truth(run_cli, tmp_path):
    (tmp_path / "labels.yaml").write_text(yaml.safe_dump({w: {1000 + i: i % 2 for i in range(4)} for w in range(2)}))
    (tmp_path / "gt.yaml").write_text(yaml.safe_dump({1000 + i: i % 2 for i in range(4)}))
    env = {"SLUICE_PSEUDONYM_KEY": "test-key", "SLUICE_PARAMS": str(tmp_path / "proj" / "params.yaml")}
    res = run_cli("init", str(tmp_path / "proj"), "--votes", str(tmp_path / "labels.yaml"), cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    params = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["labels"]
    assert params["exports"][0]["kind"] == "nested" and "outer" not in params["exports"][0]
    assert params["ground_truth"] == (tmp_path / "gt.yaml").as_posix()
    assert run_cli("votes", "ingest", cwd=tmp_path / "proj", env=env).returncode == 0
    result = run_cli("labels", "aggregate", cwd=tmp_path / "proj", env=env)
    assert result.returncode == 0, result.stderr
    assert "accuracy vs ground truth on 4 voted items: majority 1.0" in result.stderr
