"""CelebA's layout: yes / no attributes a face (list_attr_celeba) labelled by one of them, and its partition file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.sources import attribute_table, subjects
from ingest.sources.image_folder import ImageFolderSource, detect, read_image_folder
from ingest.sources.labels_file import find_columns
from sluice.errors import InputError

ATTRIBUTES = ("5_o_Clock_Shadow", "Smiling", "Male")


def _celeba(root: Path, png, csv: bool = False, n: int = 20) -> Path:
    """torchvision's celeba/: img_align_celeba/*.jpg beside list_attr_celeba.txt and list_eval_partition.txt (Kaggle's
    copy: the two as CSVs with a header, the images one folder deeper)."""
    images = root / "img_align_celeba" / ("img_align_celeba" if csv else "")
    images.mkdir(parents=True)
    rows, parts = [], []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        (images / name).write_bytes(png(i))
        values = ["1" if i % 10 == 0 else "-1", "1" if i % 2 else "-1", "1" if i % 4 == 0 else "-1"]
        rows.append((name, values))
        parts.append((name, "0" if i < 14 else "1" if i < 17 else "2"))
    if csv:
        (root / "list_attr_celeba.csv").write_text("image_id," + ",".join(ATTRIBUTES) + "\n"
                                                   + "".join(f"{f},{','.join(v)}\n" for f, v in rows))
        (root / "list_eval_partition.csv").write_text("image_id,partition\n" + "".join(f"{f},{p}\n" for f, p in parts))
        (root / "list_bbox_celeba.csv").write_text("image_id,x_1,y_1,width,height\n" + "".join(f"{f},95,71,226,313\n" for f, _ in rows))
        (root / "list_landmarks_align_celeba.csv").write_text("image_id,lefteye_x,lefteye_y\n"
                                                              + "".join(f"{f},69,109\n" for f, _ in rows))
    else:
        (root / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(ATTRIBUTES) + " \n"
                                                   + "".join(f"{f} " + " ".join(f"{v:>2}" for v in vs) + "\n" for f, vs in rows))
        (root / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in parts))
    return root


@pytest.mark.parametrize("csv", [False, True], ids=["torchvision-txt", "kaggle-csv"])
def test_celeba_is_labelled_by_its_most_balanced_attribute_and_split_by_its_partition(tmp_path, png, csv):
    root = _celeba(tmp_path / "celeba", png, csv)
    found = detect(str(root))
    table = root / ("list_attr_celeba.csv" if csv else "list_attr_celeba.txt")
    assert found["labels_file"] == table.as_posix() and found["label_column"] == "Smiling"  # half yes: the most balanced
    assert found["split_lists"] == [(root / ("list_eval_partition.csv" if csv else "list_eval_partition.txt")).as_posix()]
    records = list(read_image_folder(ImageFolderSource(name="celeba", kind="image_folder", **{"path": str(root), **found}), 10**6))
    landed = {Path(r.uri).name: (r.label, r.split_hint) for r in records if r.reject is None}
    assert len(landed) == 20 and landed["000002.jpg"] == ("Smiling", "train") and landed["000001.jpg"][0] == "not_Smiling"
    assert landed["000015.jpg"][1] == "val" and landed["000018.jpg"][1] == "test"
    chosen = ImageFolderSource(name="celeba", kind="image_folder", **{"path": str(root), **found, "label_column": "Male"})
    assert {r.label for r in read_image_folder(chosen, 10**6) if r.reject is None} == {"Male", "not_Male"}


def test_the_text_form_is_read_as_a_table_and_a_bad_row_or_name_is_one_line(tmp_path, png):
    root = _celeba(tmp_path / "celeba", png)
    table = root / "list_attr_celeba.txt"
    assert attribute_table.reads(table) and not attribute_table.reads(root / "list_eval_partition.txt")
    assert find_columns(table) == {"file_column": "image_id", "label_column": "Smiling"}
    with pytest.raises(InputError, match="no attribute 'Smile' .attributes: 5_o_Clock_Shadow, Smiling, Male"):
        attribute_table.read(table, ["image_id", "Smile"])
    table.write_text(table.read_text() + "000099.jpg 1 -1\n")
    with pytest.raises(InputError, match=r"list_attr_celeba.txt:23: 3 fields where the attribute names line gives 3 names"):
        attribute_table.read(table, [])


def test_a_zero_one_label_column_keeps_its_values(tmp_path):
    """RSNA's Target (0 / 1) is a label of its own, not an attribute: only 1 / -1 columns are named."""
    (tmp_path / "labels.csv").write_text("file,Target\na.png,0\nb.png,1\n")
    import polars as pl

    rows = pl.read_csv(tmp_path / "labels.csv", infer_schema=False)
    assert attribute_table.as_labels(rows, "Target")["Target"].to_list() == ["0", "1"]


FINDINGS = ("No Finding", "Cardiomegaly", "Edema", "Pleural Effusion")


def _chexpert(root: Path, png) -> Path:
    """Kaggle's CheXpert-v1.0-small/: train/ and valid/ of patient<N>/study<K>/view1_frontal.jpg (every file named
    alike) beside train.csv and valid.csv, whose Path column names them from above the folder and whose findings are
    1.0 / 0.0 / -1.0 (uncertain) / blank (not mentioned)."""
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(FINDINGS)
    values = [("1.0", "", "", ""), ("", "1.0", "-1.0", "0.0"), ("", "0.0", "1.0", "1.0"), ("", "-1.0", "0.0", "")]
    for split, patients in (("train", range(1, 9)), ("valid", range(64541, 64545))):
        lines = [header]
        for k, p in enumerate(patients):
            rel = f"{split}/patient{p:05d}/study1/view1_frontal.jpg"
            (root / rel).parent.mkdir(parents=True)
            (root / rel).write_bytes(png(p % 997))
            lines.append(f"CheXpert-v1.0-small/{rel},Female,{60 + k},Frontal,AP," + ",".join(values[k % 4]))
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


def test_chexpert_is_labelled_by_one_finding_from_both_split_tables_its_uncertain_ones_unlabelled(tmp_path, png):
    """A blank is negative, -1.0 uncertain (quarantined as uncertain_label: the image lands unlabelled), or read as
    positive / negative with uncertain_label (U-Ones / U-Zeros); valid.csv labels valid/."""
    root = _chexpert(tmp_path / "CheXpert-v1.0-small", png)
    found = detect(str(root))
    assert found["labels_file"] == [(root / "train.csv").as_posix(), (root / "valid.csv").as_posix()]
    assert found["file_column"] == "Path" and found["label_column"] in FINDINGS
    source = {"path": str(root), **found, "label_column": "Edema", "subject_pattern": subjects.PATTERN}
    records = list(read_image_folder(ImageFolderSource(name="cx", kind="image_folder", **source), 10**6))
    landed = {r.uri.split("CheXpert-v1.0-small/")[1]: (r.label, r.split_hint) for r in records if r.reject is None}
    assert len(landed) == 12  # every image lands, the uncertain ones unlabelled
    assert landed["train/patient00003/study1/view1_frontal.jpg"] == ("Edema", "train")
    assert landed["train/patient00001/study1/view1_frontal.jpg"] == ("not_Edema", "train")  # blank: not mentioned
    assert landed["train/patient00004/study1/view1_frontal.jpg"] == ("not_Edema", "train")  # 0.0
    assert landed["valid/patient64543/study1/view1_frontal.jpg"] == ("Edema", "val")  # labelled by valid.csv
    assert landed["train/patient00002/study1/view1_frontal.jpg"] == (None, "train")  # -1.0: uncertain
    assert {r.subject for r in records if r.reject is None and "patient00003" in r.uri} == {"patient00003"}
    rejects = [r for r in records if r.reject]
    assert {r.reject for r in rejects} == {"uncertain_label"} and len(rejects) == 3  # train 2, 6; valid 64542
    assert rejects[0].uri.endswith("train.csv:3") and "uncertain_label: positive" in rejects[0].details
    ones = ImageFolderSource(name="cx", kind="image_folder", **source, uncertain_label="positive")
    assert {Path(r.uri).parent.parent.name: r.label for r in read_image_folder(ones, 10**6)
            if r.reject is None}["patient00002"] == "Edema"
    no_finding = ImageFolderSource(name="cx", kind="image_folder", **{**source, "label_column": "No Finding"})
    labels = [r.label for r in read_image_folder(no_finding, 10**6) if r.reject is None]
    assert sorted(set(labels)) == ["No Finding", "not_No Finding"] and labels.count("No Finding") == 3


def test_celeba_and_one_hot_tables_are_not_findings(tmp_path):
    import polars as pl

    celeba = pl.DataFrame({"a": ["1", "-1"], "b": ["-1", "1"]})
    one_hot = pl.DataFrame({"a": ["1.0", "0.0"], "b": ["0.0", "1.0"]})
    findings = pl.DataFrame({"a": ["1.0", "0.0", None], "b": ["-1.0", "1.0", ""]})
    assert not attribute_table.findings(celeba, ["a", "b"]) and not attribute_table.findings(one_hot, ["a", "b"])
    assert attribute_table.findings(findings, ["a", "b"])
    assert attribute_table.as_labels(findings, "a", True)["a"].to_list() == ["a", "not_a", "not_a"]
    assert attribute_table.as_labels(findings, "b", True)["b"].to_list() == [attribute_table.UNCERTAIN, "b", "not_b"]
