"""CelebA's layout: yes / no attributes a face (list_attr_celeba) labelled by one of them, and its partition file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.sources import attribute_table
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
