"""An image's subject read from its path (``subject_pattern``): the chest X-ray set's ``person1_...``, CheXpert's
``patient00001/``."""

from __future__ import annotations

import pytest

from ingest import public
from ingest.sources import subjects
from ingest.sources.image_folder import ImageFolderSource, detect
from sluice.imaging import image_extensions


def chest_xray(root, png):
    """Kaggle's chest X-ray pneumonia layout: split / class folders, a child's X-rays named person<N>_..."""
    files = {"train/PNEUMONIA": ["person1_bacteria_1", "person1_bacteria_2", "person1_virus_6", "person3_virus_16",
                                 "person3_bacteria_10"],
             "train/NORMAL": ["IM-0115-0001", "NORMAL2-IM-0401-0001"],
             "test/PNEUMONIA": ["person100_bacteria_475", "person100_bacteria_477"], "test/NORMAL": ["IM-0001-0001"]}
    for k, (folder, names) in enumerate(files.items()):
        (root / folder).mkdir(parents=True)
        for i, name in enumerate(names):
            (root / folder / f"{name}.jpeg").write_bytes(png(10 * k + i))
    return root


def test_subjects_named_in_file_names_are_found_and_land(tmp_path, make_params, lake, png):
    root = chest_xray(tmp_path / "chest_xray", png)
    found = detect(str(root))
    assert found == {"subject_pattern": subjects.PATTERN}
    public.run(make_params({"ingest": {"sources": [{"name": "cx", "kind": "image_folder", "path": str(root), **found}]}}))
    rows = {r["item_id"]: r["subject"] for r in lake.read("raw_images").to_pylist()}
    assert rows["train/PNEUMONIA/person1_virus_6.jpeg"] == rows["train/PNEUMONIA/person1_bacteria_1.jpeg"] == "person1"
    assert rows["test/PNEUMONIA/person100_bacteria_477.jpeg"] == "person100"
    assert rows["train/NORMAL/IM-0115-0001.jpeg"] is None  # not fitted: no subject, it splits alone


def test_subjects_land_as_keyed_pseudonyms_or_the_stage_refuses_before_landing(tmp_path, make_params, lake, png,
                                                                             monkeypatch, caplog):
    """With the key the subjects are s-<HMAC> and still group a child's X-rays; ``pseudonymize_subjects: true`` without
    the key stops the stage before any row lands; ``auto`` without it lands them as given and says so."""
    from sluice.errors import ConfigError
    from sluice.privacy import subject_pseudonym

    root = chest_xray(tmp_path / "chest_xray", png)
    source = {"name": "cx", "kind": "image_folder", "path": str(root), "subject_pattern": subjects.PATTERN}
    monkeypatch.delenv("SLUICE_PSEUDONYM_KEY", raising=False)
    with pytest.raises(ConfigError, match="SLUICE_PSEUDONYM_KEY is not set"):
        public.run(make_params({"ingest": {"sources": [source]}, "privacy": {"pseudonymize_subjects": True}}))
    assert not lake.exists("raw_images") or lake.count("raw_images") == 0
    monkeypatch.setenv("SLUICE_PSEUDONYM_KEY", "secret")
    public.run(make_params({"ingest": {"sources": [source]}}))
    rows = {r["item_id"]: r["subject"] for r in lake.read("raw_images").to_pylist()}
    assert rows["train/PNEUMONIA/person1_virus_6.jpeg"] == rows["train/PNEUMONIA/person1_bacteria_1.jpeg"] \
        == subject_pseudonym("person1", b"secret")
    assert "person1" not in {v for v in rows.values() if v} and rows["train/NORMAL/IM-0115-0001.jpeg"] is None
    monkeypatch.delenv("SLUICE_PSEUDONYM_KEY")
    with caplog.at_level("WARNING"):
        stats = public.run(make_params({"ingest": {"sources": [{**source, "name": "raw"}]},
                                        "privacy": {"pseudonymize_subjects": "auto"}}))["sources"]["raw"]
    assert stats["subjects_as_given"] == 7 and "stored as the source gives them" in caplog.text


def test_a_patient_folder_names_the_subject(tmp_path, png):
    """CheXpert: train/patient00001/study1/view1_frontal.jpg."""
    ext = image_extensions()
    for p in range(3):
        for s in range(2):
            (tmp_path / "train" / f"patient{p:05d}" / f"study{s + 1}").mkdir(parents=True)
            (tmp_path / "train" / f"patient{p:05d}" / f"study{s + 1}" / "view1_frontal.jpg").write_bytes(png(p * 2 + s))
    assert subjects.find(tmp_path, ext) == {"subject_pattern": subjects.PATTERN}
    rx = subjects.compiled(subjects.PATTERN)
    assert subjects.of(rx, "train/patient00002/study1/view1_frontal.jpg") == "patient00002"


@pytest.mark.parametrize("names", [
    ["person_0001", "person_0002", "person_0003", "person_0004"],  # Caltech's person class: a name per file, no subject
    ["cat.1", "cat.2", "dog.1", "dog.2"],  # no word for a person
    ["showcase1", "showcase1b", "suitcase2", "suitcase2b"],  # "case" inside a word is no case
])
def test_no_subject_where_the_names_do_not_name_one_twice(tmp_path, png, names):
    (tmp_path / "a").mkdir()
    for i, name in enumerate(names):
        (tmp_path / "a" / f"{name}.png").write_bytes(png(i))
    assert subjects.find(tmp_path, image_extensions()) == {}


def test_a_pattern_without_one_group_or_with_a_subject_column_is_refused():
    with pytest.raises(ValueError, match="exactly one group"):
        ImageFolderSource(name="s", kind="image_folder", path="x", subject_pattern=r"person\d+")
    with pytest.raises(ValueError, match="not a regular expression"):
        ImageFolderSource(name="s", kind="image_folder", path="x", subject_pattern=r"(person")
    with pytest.raises(ValueError, match="give one"):
        ImageFolderSource(name="s", kind="image_folder", path="x", label_from="file", labels_file="l.csv",
                          subject_column="patient", subject_pattern=r"(p\d+)")


@pytest.mark.parametrize("layout", ["original", "kaggle"])
def test_gtsrb_tracks_are_subjects(tmp_path, png, layout):
    """GTSRB's training images are tracks of one sign's frames: Final_Training/Images/00000/00000_00029.ppm as
    published, Train/0/00000_00000_00029.png on Kaggle; the test images (00000.ppm) have none."""
    folders = {"original": "Final_Training/Images/{c:05d}/{t:05d}_{f:05d}.ppm",
               "kaggle": "Train/{c}/{c:05d}_{t:05d}_{f:05d}.png"}[layout]
    for c in range(2):
        for t in range(3):
            for f in range(4):
                path = tmp_path / folders.format(c=c, t=t, f=f)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(png(c * 100 + t * 10 + f))
    (tmp_path / "Test").mkdir()
    (tmp_path / "Test" / "00000.png").write_bytes(png(999))
    assert subjects.find(tmp_path, image_extensions()) == {"subject_pattern": subjects.TRACK_PATTERN}
    rx = subjects.compiled(subjects.TRACK_PATTERN)
    first = folders.format(c=1, t=2, f=0)
    assert subjects.of(rx, first) == first.rsplit("_", 1)[0]  # the class folder and the track: tracks restart a class
    assert subjects.of(rx, "Test/00000.png") is None


@pytest.mark.parametrize("cell, subject", [("HAM_0000118", "HAM_0000118"), (" p 7 ", "p 7"), ("nan", None), ("NaN", None),
                                           ("", None), ("N/A", None), (None, None), ("null", None), (12, "12")])
def test_a_missing_subject_written_as_text_is_no_subject(cell, subject):
    """pandas writes a missing patient id as nan in some exports: every such image one patient would be one unit."""
    from ingest.sources.base import subject_of

    assert subject_of(cell) == subject
