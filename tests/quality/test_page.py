"""The dataset page, rendered by a real headless Chromium (scripts/ensure-chromium.sh installs it) whose
every network request goes to a trap (tests/conftest.py: offline_chromium)."""

from __future__ import annotations

import re

import pyarrow as pa

from sluice.runs import utcnow


def _quarantine_an_image(world) -> str:
    image_id = world.lake.read("images", columns=["image_id"]).column(0)[5].as_py()
    world.lake.append("quarantine", pa.Table.from_pylist([{
        "source_table": "raw_images", "row_key": image_id, "stage": "clean", "check": "near_constant",
        "reason": "near_constant", "details": "std 0.4 < clean.min_std 2.0", "run_id": "clean-fx",
        "quarantined_at": utcnow()}]))
    return image_id


def test_dataset_page_renders_in_headless_chromium(world, offline_chromium):
    from quality.page import write_page

    _quarantine_an_image(world)
    world.run("gold", only=["dataset"])  # a gate report for the status table
    page = write_page(world.params, world.lake, ["cat", "dog", "fox"])
    html = page.read_text()
    assert not re.search(r"(?:src|href)=['\"]?(?:https?:)?//", html)  # nothing fetched from the network

    dom, requests = offline_chromium(page)
    assert requests == []  # every request Chromium made went to the trap: none did
    decoded = int(re.search(r'data-images-decoded="(\d+)"', dom).group(1))
    total = int(re.search(r'data-images-total="(\d+)"', dom).group(1))
    # 3 classes x 8 samples + one duplicate pair + the quarantined image: all decoded by the browser
    assert decoded == total == 3 * 8 + 2 + 1
    bars = re.findall(r'<rect class="bar" data-class="(\w+)" data-split="(\w+)" data-count="(\d+)"', dom)
    assert {(c, s): int(n) for c, s, n in bars} == {(c, s): n for c in ("cat", "dog", "fox")
                                                     for s, n in (("train", 5), ("val", 1), ("test", 2))}
    assert len(re.findall(r'<div class="row grid" data-class=', dom)) == 3
    assert len(re.findall(r'<span class="group" data-group=', dom)) == 1
    assert dom.count('class="px canon"') == 1
    assert re.search(r'<tr class="quarantined">.*?near_constant.*?std 0.4', dom, re.S)
    assert len(re.findall(r"<tr class=\"annotator\">", dom)) == 3
    assert "spammer" in dom and 'id="annotator-chart"' in dom
    assert re.search(r"<td>gold</td><td><span class=\"ok\">passed", dom)


def test_page_without_tables_says_so(tmp_path, make_params):
    from quality.page import write_page
    from sluice.lake import Lake

    params = make_params({"quality": {"reports_dir": str(tmp_path / "r")}})
    html = write_page(params, Lake(str(tmp_path / "empty")), None).read_text()
    assert "No dataset or labels table yet" in html and "No gate has run yet" in html
    assert '<section id="privacy">' in html and "<td>erasures performed</td><td>0</td>" in html


def _source_test_copy(rows):
    """The fixture's near-duplicate member as if its source had filed it under test."""
    member = next(r for r in rows if "/train/" in r["source_uri"] and r["source_uri"].endswith("cat/1.png"))
    member["split_hint"] = "test"
    return rows


def test_leakage_section_lists_cross_split_groups_side_by_side(world):
    from quality.page import write_page

    html = write_page(world.params, world.lake, ["cat", "dog", "fox"]).read_text()
    assert "No near-duplicate group spans" in html
    world.edit("raw_images", _source_test_copy)
    html = write_page(world.params, world.lake, ["cat", "dog", "fox"]).read_text()
    rows = re.findall(r'<tr class="leak" data-leak="[0-9a-f]+">(.*?)</tr>', html, re.S)
    assert len(rows) == 1 and rows[0].count("<img") == 2
    assert "source test; near" in rows[0] and "source train" in rows[0] and "dataset: train" in rows[0]


def test_samples_of_many_classes_stay_within_the_pages_budget(world, monkeypatch):
    """ImageNet's 1,000 classes x 8 samples would embed 8,000 images in one HTML file: a budget caps them."""
    from quality import page

    monkeypatch.setattr(page, "SAMPLE_BUDGET", 2)  # the fixture's 3 classes stand for many
    html = page.write_page(world.params, world.lake, ["cat", "dog", "fox"]).read_text()
    assert re.findall(r'<div class="row grid" data-class="(\w+)"', html) == ["cat", "dog"]
    assert "1 image a class, the first 2 of 3 classes (at most 2 images on this page" in html


def test_leakage_section_counts_the_subjects_kept_in_one_split(world):
    from quality.page import write_page

    def said() -> list[tuple[str, str]]:
        html = write_page(world.params, world.lake, ["cat", "dog", "fox"]).read_text()
        return re.findall(r"(\d+) subjects its sources name .*?; (\d+) of them are in more than one split", html)

    assert said() == []  # no subject named: nothing said
    rows = world.lake.read("dataset").to_pylist()
    first = [r["image_id"] for r in rows if r["split"] == rows[0]["split"]]
    other = next(r["image_id"] for r in rows if r["split"] != rows[0]["split"])

    def name(subject, ids):
        world.edit("raw_images", lambda raw: [{**r, "subject": subject} if r["image_id"] in ids else r for r in raw])
    name("p1", first[:2])  # one patient, one split
    assert [n for _, n in said()] == ["0"]
    name("p2", [first[2], other])  # one patient in two splits: the gold gate would stop this
    assert int(said()[0][1]) >= 1
