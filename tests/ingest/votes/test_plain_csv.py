"""A long vote file without a header (research collections' ``worker item label`` lines): its columns told apart
by their values, read by position, or refused with what to set."""

from __future__ import annotations

import random

import pytest

from ingest.votes.plain_csv import CsvVotesExport, detect, read
from sluice.errors import InputError


def _lines(order: tuple[str, str, str], workers: int = 6, items: int = 20, sep: str = "\t",
           item_name: str = "q{}") -> str:
    rng = random.Random(0)
    rows = []
    for w in range(workers):
        for i in range(items):
            fields = {"worker": f"A{w}XZ", "item": item_name.format(i), "label": rng.choice(["cat", "dog", "cat"])}
            rows.append(sep.join(fields[role] for role in order))
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize("order", [("worker", "item", "label"), ("item", "worker", "label"),
                                   ("label", "item", "worker")])
def test_the_columns_are_told_by_their_values(tmp_path, order):
    path = tmp_path / "bm.response.txt"
    path.write_text(_lines(order))
    found = detect(str(path))
    column = {role: f"column_{order.index(role) + 1}" for role in order}
    assert found == {"header": False, "item_column": column["item"], "worker_column": column["worker"],
                     "label_column": column["label"]}
    votes = read(CsvVotesExport.model_validate({"name": "v", "kind": "csv", "path": str(path), **found})).votes
    assert votes.height == 120 and set(votes["label"]) == {"cat", "dog"}
    assert votes["item_ref"].n_unique() == 20 and votes["worker_id"].n_unique() == 6


def test_image_names_are_the_items_even_where_workers_outnumber_them(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text(_lines(("worker", "item", "label"), workers=30, items=5, sep=",", item_name="img/{}.jpg"))
    assert detect(str(path))["item_column"] == "column_2"


def test_a_header_of_unknown_names_or_an_even_design_is_refused_with_what_to_set(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("who,what,verdict\n" + _lines(("worker", "item", "label"), sep=","))
    with pytest.raises(InputError, match="cannot tell which column .* header: false with column_1"):
        detect(str(path))  # 'verdict' never recurs: a header line, its names unknown
    path.write_text(_lines(("worker", "item", "label"), workers=5, items=5, sep=","))
    with pytest.raises(InputError, match="cannot tell which column"):
        detect(str(path))  # as many workers as items, none an image name: no way to tell them apart


def test_an_empty_file_is_said_to_be_empty(tmp_path):
    path = tmp_path / "bm.response.txt"
    path.write_text("")
    with pytest.raises(InputError, match=r"vote file is empty \(0 bytes\)"):
        detect(str(path))


def test_a_missing_position_is_one_line(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("w1 q1\n")
    export = CsvVotesExport.model_validate({"name": "v", "kind": "csv", "path": str(path), "header": False,
                                            "item_column": "column_2", "worker_column": "column_1",
                                            "label_column": "column_3"})
    with pytest.raises(InputError, match=r"no column_3 in vote file 'v' \(header: false; it has 2 column"):
        read(export)
