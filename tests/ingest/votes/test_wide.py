"""Wide vote files: one row per item, one column per answer (CSV, Parquet, .npy / .npz / .pt arrays)."""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from ingest.votes.base import named_labels
from ingest.votes.land import land_export
from ingest.votes.wide import WideVotesExport, detect, read
from sluice.errors import InputError
from sluice.items import ItemIndex

CLASSES = ["airplane", "automobile", "bird"]


def cifar_n(n: int = 6) -> dict[str, np.ndarray]:
    """CIFAR-10N's layout: a reference, two derived answers and three annotators' answers per image."""
    clean = np.arange(n) % 3
    return {"clean_label": clean, "aggre_label": clean, "worse_label": (clean + 1) % 3,
            "random_label1": clean, "random_label2": (clean + (np.arange(n) == 0)) % 3, "random_label3": clean}


def export(path, **settings) -> WideVotesExport:
    return WideVotesExport(name="n", kind="wide", path=str(path), **settings)


@pytest.mark.parametrize("tensors", [False, True])
def test_a_torch_saved_dict_of_label_arrays_is_read_as_its_annotators_votes(tmp_path, tensors):
    torch = pytest.importorskip("torch")
    data = cifar_n()
    path = tmp_path / "CIFAR-10_human.pt"
    torch.save({k: torch.from_numpy(v) for k, v in data.items()} if tensors else data, path)
    found = detect(str(path))
    assert found == {"label_columns": ["random_label1", "random_label2", "random_label3"]}  # never clean/aggre/worse
    parsed = read(export(path, **found))
    assert parsed.votes.height == 18 and not parsed.rejects
    first = parsed.votes.filter(pl.col("item_ref") == "0").sort("worker_id")
    assert first["label"].to_list() == ["0", "1", "0"] and first["worker_id"].to_list() == [
        "random_label1", "random_label2", "random_label3"]


def test_a_torch_file_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"cos\nsystem\n(S'echo hacked'\ntR.")
    with pytest.raises(InputError, match="refused to unpickle.*os.system"):
        read(export(path, label_columns=["a"]))


def test_npy_npz_and_missing_answers(tmp_path):
    votes = np.array([[0, 1], [2, -1], [1, 1]])  # -1: that annotator did not answer
    np.save(tmp_path / "v.npy", votes)
    found = detect(str(tmp_path / "v.npy"))
    assert found == {"label_columns": ["0", "1"]}
    parsed = read(export(tmp_path / "v.npy", **found))
    assert sorted(zip(parsed.votes["item_ref"], parsed.votes["label"])) == [
        ("0", "0"), ("0", "1"), ("1", "2"), ("2", "1"), ("2", "1")]
    assert parsed.no_answer == 1  # reported by the stage, not a silent drop
    np.save(tmp_path / "pm.npy", np.array([[-1, 1], [1, 1]]))  # a -1/+1 task: -1 is a class there
    assert read(export(tmp_path / "pm.npy", label_columns=["0", "1"], no_answer=[])).votes.height == 4
    np.savez(tmp_path / "v.npz", rater_a=np.array([0.0, np.nan, 2.0]), rater_b=np.array([1.0, 1.0, 2.0]))
    found = detect(str(tmp_path / "v.npz"))
    assert found == {"label_columns": ["rater_a", "rater_b"]}
    assert sorted(read(export(tmp_path / "v.npz", **found)).votes["label"].to_list()) == ["0", "1", "1", "2", "2"]


def test_wide_csv_with_an_item_column_and_paired_worker_columns(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("image,worker_1,label_1,worker_2,label_2\na.png,w1,cat,w2,dog\nb.png,,dog,w2,-1\n,w3,cat,,NaN\n")
    found = detect(str(path))
    assert found == {"label_columns": ["label_1", "label_2"], "worker_columns": ["worker_1", "worker_2"],
                     "item_column": "image"}
    parsed = read(export(path, **found))
    assert sorted(zip(parsed.votes["item_ref"], parsed.votes["worker_id"], parsed.votes["label"])) == [
        ("a.png", "w1", "cat"), ("a.png", "w2", "dog")]  # b.png's worker_2 gave no answer: not a vote, no reject
    assert [(r.where, r.details) for r in parsed.rejects] == [
        (f"{path}:3", "label_1 answered with an empty worker"), (f"{path}:4", "label_1 answered with an empty item")]


def test_user_errors_name_the_file_and_the_fix(tmp_path):
    np.savez(tmp_path / "uneven.npz", a=np.zeros(3), b=np.zeros(4))
    with pytest.raises(InputError, match="differ in length"):
        read(export(tmp_path / "uneven.npz", label_columns=["a", "b"]))
    (tmp_path / "v.csv").write_text("image,r1,r2\na.png,cat,dog\n")
    with pytest.raises(InputError, match=r"missing column\(s\) 'r3'"):
        read(export(tmp_path / "v.csv", item_column="image", label_columns=["r1", "r3"]))
    with pytest.raises(InputError, match="one worker column per label column"):
        read(export(tmp_path / "v.csv", label_columns=["r1", "r2"], worker_columns=["r1"]))
    np.savez(tmp_path / "c100.npz", clean_label=np.zeros(3), noisy_label=np.zeros(3), noisy_coarse_label=np.zeros(3))
    assert detect(str(tmp_path / "c100.npz")) == {"label_columns": ["noisy_label"]}  # CIFAR-100N: fine labels only
    np.savez(tmp_path / "ref.npz", clean_label=np.zeros(3), true_label=np.zeros(3))
    with pytest.raises(InputError, match="set label_columns"):
        detect(str(tmp_path / "ref.npz"))
    (tmp_path / "bad.pt").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable .pt file"):
        read(export(tmp_path / "bad.pt", label_columns=["a"]))


def test_positions_of_a_cifar_sized_file_index_the_split_as_torchvision_numbers_it(tmp_path):
    np.save(tmp_path / "train.npy", np.zeros((50_000, 3), dtype=np.int64))
    np.save(tmp_path / "test.npy", np.zeros(10_000, dtype=np.int64))
    assert detect(str(tmp_path / "train.npy"))["item_key"] == "column:train_index"
    assert detect(str(tmp_path / "test.npy"))["item_key"] == "column:test_index"


def test_class_indices_land_as_class_names():
    labels = pl.Series(["0", " 2 ", "cat", "7", None, "1.5"])
    assert named_labels(labels, CLASSES).to_list() == ["airplane", "bird", "cat", "7", None, "1.5"]
    assert named_labels(labels, None).to_list() == labels.to_list()


def test_positional_votes_land_on_the_images_their_index_names(lake, tmp_path):
    """The path CIFAR-10N's file takes: row i is the i-th training image, labels are class indices."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [{"image_id": hashlib.sha256(f"img{i}".encode()).hexdigest(), "content": b"x", "source": "cifar",
             "source_uri": f"data_batch_1#{i}", "source_label": None, "fetched_at": now, "run_id": "r",
             "extra": f'{{"train_index": {i}}}'} for i in range(6)]
    lake.merge_insert("raw_images", pa.Table.from_pylist(rows))
    np.savez(tmp_path / "n.npz", **cifar_n())
    e = export(tmp_path / "n.npz", label_columns=["random_label1", "random_label2", "random_label3"],
               item_key="column:train_index", class_names=CLASSES)
    stats = land_export(lake, e, ItemIndex.from_lake(lake), "run-1")
    assert (stats.rows, stats.new, stats.pending_items, stats.quarantined) == (18, 18, 0, 0)
    votes = pl.from_arrow(lake.read("crowd_votes"))
    first = votes.filter(pl.col("item_ref") == "0")
    assert sorted(first["label"].to_list()) == ["airplane", "airplane", "automobile"]
    assert set(first["image_id"]) == {rows[0]["image_id"]} and set(votes["source_format"]) == {"wide"}
    assert land_export(lake, e, ItemIndex.from_lake(lake), "run-2").new == 0  # idempotent


def test_a_pickle_global_outside_the_allow_list_never_runs(tmp_path):
    """Belt and braces: the .pt reader never falls back to an unrestricted unpickler for other globals."""
    path = tmp_path / "builtins.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"a": print}, protocol=2))
    with pytest.raises(InputError, match="print. is not allowed"):
        read(export(path, label_columns=["a"]))


def test_counts_per_class_are_that_many_votes_and_probabilities_are_refused(tmp_path):
    """CIFAR-10H ships its votes as counts per class (cifar10h-counts.npy) and as probabilities."""
    counts = np.array([[3, 0, 1], [0, 2, 0], [0, 0, 0]])
    np.save(tmp_path / "cifar10h-counts.npy", counts)
    found = detect(str(tmp_path / "cifar10h-counts.npy"))
    assert found == {"label_columns": ["0", "1", "2"], "layout": "counts"}
    parsed = read(export(tmp_path / "cifar10h-counts.npy", **found, class_names=CLASSES))
    assert sorted(zip(parsed.votes["item_ref"], parsed.votes["label"])) == [
        ("0", "0"), ("0", "0"), ("0", "0"), ("0", "2"), ("1", "1"), ("1", "1")]
    assert parsed.votes["assignment"].n_unique() == 6
    first = parsed.votes.filter(pl.col("item_ref") == "0")  # distinct workers: the labels stage keeps one vote a worker
    assert sorted(first["worker_id"]) == ["anonymous-0", "anonymous-1", "anonymous-2", "anonymous-3"]
    assert read(export(tmp_path / "cifar10h-counts.npy", **found)).votes.equals(read(export(
        tmp_path / "cifar10h-counts.npy", **found)).votes)  # the same workers every time: a re-ingest adds nothing
    (tmp_path / "counts.csv").write_text("image,cat,dog\na.png,2,1\nb.png,x,0\n")
    parsed = read(export(tmp_path / "counts.csv", item_column="image", label_columns=["cat", "dog"], layout="counts"))
    assert sorted(parsed.votes["label"].to_list()) == ["cat", "cat", "dog"]
    assert [(r.where, r.reason) for r in parsed.rejects] == [(f"{tmp_path / 'counts.csv'}:3", "bad_count")]
    np.save(tmp_path / "cifar10h-probs.npy", counts / np.maximum(counts.sum(1, keepdims=True), 1))
    with pytest.raises(InputError, match="class probabilities are not votes"):
        read(export(tmp_path / "cifar10h-probs.npy", **detect(str(tmp_path / "cifar10h-probs.npy"))))
    np.save(tmp_path / "onehot.npy", np.eye(3))  # whole numbers, yet probabilities: every row sums to 1
    with pytest.raises(InputError, match="each row sums to 1"):
        read(export(tmp_path / "onehot.npy", label_columns=["0", "1", "2"]))


def test_a_zip_that_would_unpack_past_the_limit_is_refused_unread(tmp_path, monkeypatch):
    import ingest.votes.wide as wide

    np.savez_compressed(tmp_path / "big.npz", a=np.zeros(100_000, dtype=np.int64))  # 800 kB unpacked, ~1 kB on disk
    monkeypatch.setattr(wide, "MAX_UNPACKED", 100_000)
    with pytest.raises(InputError, match="would unpack to .* GiB"):
        read(export(tmp_path / "big.npz", label_columns=["a"]))


def test_a_headerless_matrix_named_by_a_file_of_item_names(tmp_path):
    """LabelMe (Rodrigues & Pereira's crowd set): answers.txt, a row per image and a column per annotator,
    space-separated, -1 where that annotator gave none, and filenames_train.txt naming row i's image on line i."""
    (tmp_path / "answers.txt").write_text("-1 3 -1\n5 5 -1\n-1 -1 0\n")
    (tmp_path / "filenames_train.txt").write_text("highway_a1.jpg\ncoast_b2.jpg\nforest_c3.jpg\n")
    (tmp_path / "labels_train.txt").write_text("0\n5\n4\n")  # the same length, but no image names: not the items
    found = detect(str(tmp_path / "answers.txt"))
    assert found == {"label_columns": ["0", "1", "2"], "items_file": (tmp_path / "filenames_train.txt").as_posix()}
    parsed = read(export(tmp_path / "answers.txt", **found))
    assert sorted(zip(parsed.votes["item_ref"], parsed.votes["worker_id"], parsed.votes["label"])) == [
        ("coast_b2.jpg", "0", "5"), ("coast_b2.jpg", "1", "5"), ("forest_c3.jpg", "2", "0"), ("highway_a1.jpg", "1", "3")]
    assert parsed.no_answer == 5

    (tmp_path / "short.txt").write_text("a.jpg\n")
    with pytest.raises(InputError, match="1 lines for the 3 rows of answers.txt"):
        read(export(tmp_path / "answers.txt", label_columns=["0"], items_file=str(tmp_path / "short.txt")))
    (tmp_path / "ragged.txt").write_text("1 2\n3\n")
    with pytest.raises(InputError, match=r"ragged.txt:2: 1 answers where line 1 has 2"):
        read(export(tmp_path / "ragged.txt", label_columns=["0"]))
    (tmp_path / "pandas.csv").write_text("0,1,2\n4,-1,4\n")  # pandas' to_csv of a matrix: 0,1,2 is its header
    assert read(export(tmp_path / "pandas.csv", label_columns=["0", "2"])).votes["label"].to_list() == ["4", "4"]
