import io
import json
import pickle

import numpy as np
import polars as pl
import pytest
from PIL import Image

from ingest import public
from sluice.errors import InputError


def _cifar10_pickles(root, n=6):
    root.mkdir()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (n, 3072), dtype=np.uint8)
    for name, sl in (("data_batch_1", slice(0, n - 2)), ("test_batch", slice(n - 2, n))):
        (root / name).write_bytes(pickle.dumps({b"data": data[sl], b"labels": [i % 3 for i in range(n)][sl]}, protocol=4))
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"plane", b"car", b"bird"]}))
    return data


def _one_batch(root, data, labels, names=(b"plane", b"car", b"bird")):
    root.mkdir()
    (root / "data_batch_1").write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=4))
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))


def cifar_params(make_params, root, **extra):
    return make_params({"ingest": {"sources": [{"name": "c", "kind": "cifar", "path": str(root), **extra}]}})


def test_cifar_python_layout(tmp_path, make_params, lake):
    data = _cifar10_pickles(tmp_path / "c")
    params = make_params({"ingest": {"sources": [{"name": "c10", "kind": "cifar", "path": str(tmp_path / "c")}]}})
    assert public.run(params)["sources"]["c10"]["inserted"] == 6
    rows = sorted(lake.read("raw_images").to_pylist(), key=lambda r: r["source_uri"])
    assert [r["split_hint"] for r in rows].count("test") == 2
    first = next(r for r in rows if r["source_uri"].endswith("data_batch_1#0"))
    assert first["source_label"] == "plane"
    assert first["item_id"] == "data_batch_1:0"
    pixels = np.asarray(Image.open(io.BytesIO(first["content"])))
    assert (pixels == data[0].reshape(3, 32, 32).transpose(1, 2, 0)).all()


def test_original_file_names_and_split_indexes_resolve_votes(tmp_path, make_params, lake):
    """CIFAR-10H keys its votes by the original file name (image_filename) or the test index
    (cifar10_test_test_idx); published label-error lists by the index. Both resolve."""
    from sluice.items import ItemIndex, normalize

    root = tmp_path / "c"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("data_batch_1", 3), ("data_batch_2", 3), ("test_batch", 3)):
        names = [f"{name}_{i}_s_{i:06d}.png".encode() for i in range(n)]
        (root / name).write_bytes(pickle.dumps({b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                                                b"labels": [0, 1, 2], b"filenames": names}, protocol=4))
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"plane", b"car", b"bird"]}))
    public.run(cifar_params(make_params, root))
    rows = {r["source_uri"].rsplit("/", 1)[1]: r for r in lake.read("raw_images").to_pylist()}
    assert json.loads(rows["data_batch_2#1"]["extra"]) == {"path": "data_batch_2_1_s_000001.png", "train_index": 4}
    assert json.loads(rows["test_batch#2"]["extra"]) == {"path": "test_batch_2_s_000002.png", "test_index": 2}
    index = ItemIndex.from_lake(lake)
    by_name = index.resolve(normalize(pl.Series(["test_batch_2_s_000002.png", "data_batch_1_0_s_000000.png"])))
    assert by_name.to_list() == [rows["test_batch#2"]["image_id"], rows["data_batch_1#0"]["image_id"]]
    by_index = index.resolve(normalize(pl.Series(["2", "0", "7"])), "column:test_index")
    assert by_index.to_list() == [rows["test_batch#2"]["image_id"], rows["test_batch#0"]["image_id"], None]
    assert index.resolve(pl.Series(["4"]), "column:train_index").to_list() == [rows["data_batch_2#1"]["image_id"]]


def test_cifar_binary_layout_cifar100(tmp_path, make_params, lake):
    root = tmp_path / "c100"
    root.mkdir()
    rng = np.random.default_rng(1)
    recs = np.concatenate([np.array([[3, 42]] * 4, np.uint8), rng.integers(0, 255, (4, 3072), dtype=np.uint8)], axis=1)
    recs.tofile(root / "train.bin")
    (root / "fine_label_names.txt").write_text("\n".join(f"fine{i}" for i in range(100)))
    params = make_params({"ingest": {"sources": [
        {"name": "c", "kind": "cifar", "layout": "binary", "variant": "cifar100", "path": str(root)}]}})
    public.run(params)
    assert {r["source_label"] for r in lake.read("raw_images").to_pylist()} == {"fine42"}
    (root / "train.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="not a multiple of the 3074-byte cifar100 record"):
        public.run(params)


def test_cifar_malicious_pickle_refused(tmp_path, make_params):
    root = tmp_path / "c"
    root.mkdir()
    (root / "data_batch_1").write_bytes(b"cos\nsystem\n(S'echo hacked'\ntR.")
    params = make_params({"ingest": {"sources": [{"name": "c", "kind": "cifar", "path": str(root)}]}})
    with pytest.raises(InputError, match="refused to unpickle: global 'os.system'"):
        public.run(params)


def test_more_images_than_labels_quarantines_the_rest(tmp_path, make_params, lake):
    """10 images and 3 labels used to land 3 rows and drop 7 without a trace."""
    data = np.random.default_rng(2).integers(0, 255, (10, 3072), dtype=np.uint8)
    _one_batch(tmp_path / "c", data, [0, 1, 2])
    stats = public.run(cifar_params(make_params, tmp_path / "c"))["sources"]["c"]
    assert stats["seen"] == 10 and stats["inserted"] == 3 and stats["quarantine_reasons"] == {"missing_label": 7}
    assert lake.count("quarantine") == 7


def test_more_labels_than_images_quarantines_the_rest(tmp_path, make_params, lake):
    data = np.random.default_rng(3).integers(0, 255, (2, 3072), dtype=np.uint8)
    _one_batch(tmp_path / "c", data, [0, 1, 2, 0])
    stats = public.run(cifar_params(make_params, tmp_path / "c"))["sources"]["c"]
    assert stats["inserted"] == 2 and stats["quarantine_reasons"] == {"missing_image": 2}


def test_bad_rows_are_quarantined_with_reasons(tmp_path, make_params, lake):
    """Pixel values outside 0-255, string labels and out-of-range labels: quarantined rows, not tracebacks."""
    data = np.random.default_rng(4).integers(0, 255, (4, 3072)).astype(np.int64)
    data[1, 7] = 300
    _one_batch(tmp_path / "c", data, [0, 1, "car", 9])
    stats = public.run(cifar_params(make_params, tmp_path / "c"))["sources"]["c"]
    assert stats["inserted"] == 1
    assert stats["quarantine_reasons"] == {"pixel_out_of_range": 1, "bad_label": 2}
    details = {r["row_key"].rsplit("#", 1)[1]: r["details"] for r in lake.read("quarantine").to_pylist()}
    assert "300" in details["1"] and "'car'" in details["2"] and "9 is outside 0..2" in details["3"]


@pytest.mark.parametrize("meta,message", [
    ({b"label_names": 5}, r"batches.meta: 'label_names' must be a list of class names, got int 5"),
    ([1, 2], r"batches.meta: not a CIFAR meta file"),
])
def test_malformed_label_names_are_one_line_errors(tmp_path, make_params, meta, message):
    _one_batch(tmp_path / "c", np.zeros((1, 3072), np.uint8), [0])
    (tmp_path / "c" / "batches.meta").write_bytes(pickle.dumps(meta))
    with pytest.raises(InputError, match=message):
        public.run(cifar_params(make_params, tmp_path / "c"))


@pytest.mark.parametrize("batch,message", [
    ({b"data": [["a"] * 3072], b"labels": [0]}, r"data_batch_1: 'data' has dtype <U1, expected integers 0-255"),
    ({b"data": [[0] * 3072, [0] * 5], b"labels": [0, 0]}, r"data_batch_1: 'data' is not an array of pixel rows"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": 3}, r"data_batch_1: 'labels' must be a list"),
])
def test_malformed_batches_are_one_line_errors(tmp_path, make_params, batch, message):
    root = tmp_path / "c"
    root.mkdir()
    (root / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(InputError, match=message):
        public.run(cifar_params(make_params, root))


def test_cli_reports_a_malformed_meta_in_one_line(tmp_path, run_cli):
    _one_batch(tmp_path / "c", np.zeros((1, 3072), np.uint8), [0], names=5)
    result = run_cli("ingest", params={"lake": {"root": str(tmp_path / "lake")},
                                       "ingest": {"sources": [{"name": "c", "kind": "cifar", "path": str(tmp_path / "c")}]}})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "'label_names'" in result.stderr
