from __future__ import annotations

import polars as pl

from sluice.split_units import units


def _groups(pairs: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(pairs, schema={"image_id": pl.String, "dup_group": pl.String}, orient="row")


def _subjects(pairs: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(pairs, schema={"image_id": pl.String, "subject": pl.String}, orient="row")


def test_groups_sharing_a_subject_directly_or_through_a_chain_are_one_unit():
    groups = _groups([("a1", "A"), ("a2", "A"), ("b1", "B"), ("c1", "C"), ("d1", "D"), ("e1", "E")])
    # A and B show lesion 1, B and C lesion 2 (a chain); D shows lesion 3 alone; E names no subject
    subjects = _subjects([("a2", "src/l1"), ("b1", "src/l1"), ("b1", "src/l2"), ("c1", "src/l2"), ("d1", "src/l3")])
    out = dict((g, (u, n)) for g, u, n in units(groups, subjects).iter_rows())
    assert out == {"A": ("A", 3), "B": ("A", 3), "C": ("A", 3), "D": ("D", 1), "E": ("E", 1)}


def test_without_subjects_every_group_is_its_own_unit():
    groups = _groups([("a1", "A"), ("b1", "B")])
    out = units(groups, _subjects([]))
    assert out.sort("dup_group").rows() == [("A", "A", 1), ("B", "B", 1)]


def test_subjects_of_different_sources_never_join():
    groups = _groups([("x", "X"), ("y", "Y")])
    out = units(groups, _subjects([("x", "one/patient 1"), ("y", "two/patient 1")]))
    assert sorted(out["unit"]) == ["X", "Y"]
