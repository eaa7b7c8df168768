"""The IDX connector (MNIST, Fashion-MNIST, EMNIST files) on real IDX files written here."""

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ingest import public
from sluice.errors import InputError


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) as an IDX file: 00 00 08 ndim, big-endian dims, the bytes."""
    return bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes() + array.astype(np.uint8).tobytes()


def write_pair(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray | None, gz: bool = True,
               sep: str = "-") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for what, idx, array in (("images", "idx3", images), ("labels", "idx1", labels)):
        if array is None:
            continue
        name = f"{prefix}-{what}{sep}{idx}-ubyte"
        data = idx_bytes(array)
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)


def digits(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def params(make_params, path, **extra):
    return make_params({"ingest": {"batch_rows": 4, "sources": [{"name": "m", "kind": "idx", "path": str(path), **extra}]}})


def test_torchvision_layout_lands_every_image_once(tmp_path, make_params, lake):
    """MNIST/raw/ as torchvision leaves it: each file both compressed and not (read once)."""
    raw = tmp_path / "MNIST" / "raw"
    train, test = digits(7, 0), digits(3, 1)
    for gz in (True, False):
        write_pair(raw, "train", train, np.array([5, 0, 4, 1, 9, 2, 1]), gz)
        write_pair(raw, "t10k", test, np.array([7, 2, 1]), gz)
    stats = public.run(params(make_params, tmp_path / "MNIST"))["sources"]["m"]
    assert stats["inserted"] == 10 and stats["quarantined"] == 0
    rows = sorted(lake.read("raw_images").to_pylist(), key=lambda r: r["item_id"])
    by_id = {r["item_id"]: r for r in rows}
    first = by_id["train-images-idx3-ubyte:0"]
    assert (first["source_label"], first["split_hint"], json.loads(first["extra"])) == ("5", "train", {"train_index": 0})
    assert json.loads(by_id["t10k-images-idx3-ubyte:2"]["extra"]) == {"test_index": 2}
    assert {r["split_hint"] for r in rows} == {"train", "test"}
    pixels = np.asarray(Image.open(io.BytesIO(first["content"])))
    assert pixels.shape == (28, 28) and np.array_equal(pixels, train[0])  # greyscale, the exact bytes


def test_class_names_and_bad_rows_are_quarantined(tmp_path, make_params, lake):
    """Kaggle's file names (train-images.idx3-ubyte); a label past class_names, fewer labels than images,
    and a truncated images file: the good rows land, each bad one is a quarantine row."""
    write_pair(tmp_path, "train", digits(4, 2), np.array([0, 1, 12]), gz=False, sep=".")
    names = ["T-shirt/top", "Trouser"] + [f"c{k}" for k in range(8)]
    test = idx_bytes(digits(5, 3))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(test[:16 + 28 * 28 * 3 + 100])  # 3 whole images of 5
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([1, 1, 0, 0, 0, 9], np.uint8)))
    stats = public.run(params(make_params, tmp_path, class_names=names))["sources"]["m"]
    assert stats["inserted"] == 5
    assert stats["quarantine_reasons"] == {"bad_label": 1, "missing_label": 1, "missing_image": 3}
    labels = {r["item_id"]: r["source_label"] for r in lake.read("raw_images").to_pylist()}
    assert labels["train-images.idx3-ubyte:1"] == "Trouser" and labels["t10k-images-idx3-ubyte:2"] == "T-shirt/top"
    details = {r["row_key"].rsplit("#", 1)[1]: r["details"] for r in lake.read("quarantine").to_pylist()
               if "t10k" in r["row_key"]}
    assert "truncated" in details["3"] and "label 5 has no image" in details["5"]


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n" + bytes(40), "not an IDX file"),
    (bytes([0, 0, 0x0D, 3]) + bytes(12), "data type 0x0d, expected 0x08"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 2, 1, 2]), "IDX file of 1 dimensions, expected 3"),
])
def test_a_file_that_is_not_idx_images_is_one_line(tmp_path, make_params, content, message):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(content)
    with pytest.raises(InputError, match=message):
        public.run(params(make_params, tmp_path))


def test_a_folder_without_idx_files_says_what_it_expected(tmp_path, make_params):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no IDX images files found"):
        public.run(params(make_params, tmp_path))


def test_detect_knows_fashion_mnist_by_its_folder(tmp_path):
    from ingest.sources.idx import FASHION, detect

    write_pair(tmp_path / "FashionMNIST" / "raw", "train", digits(2, 4), np.array([0, 9]))
    assert detect(str(tmp_path / "FashionMNIST")) == {"class_names": FASHION}
    write_pair(tmp_path / "mnist", "train", digits(2, 4), np.array([0, 9]))
    assert detect(str(tmp_path / "mnist")) == {}
    with pytest.raises(InputError):
        detect(str(tmp_path / "FashionMNIST" / "raw" / "nothing"))


def test_init_images_on_an_idx_folder_writes_an_idx_source(tmp_path, run_cli):
    import yaml

    write_pair(tmp_path / "data" / "FashionMNIST" / "raw", "train", digits(3, 5), np.array([0, 1, 9]))
    result = run_cli("init", str(tmp_path / "proj"), "--images", str(tmp_path / "data" / "FashionMNIST"))
    assert result.returncode == 0, result.stderr
    assert "IDX files (MNIST's layout)" in result.stdout and "10 classes (T-shirt/top, Trouser" in result.stdout
    source = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["ingest"]["sources"][0]
    assert source["kind"] == "idx" and source["class_names"][9] == "Ankle boot"


def test_a_gzip_stream_cut_short_quarantines_the_images_it_lost(tmp_path, make_params, lake):
    data = gzip.compress(idx_bytes(digits(6, 7)))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(data[: len(data) * 2 // 3])  # a download cut short
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.arange(6, dtype=np.uint8))))
    stats = public.run(params(make_params, tmp_path))["sources"]["m"]
    lost = stats["quarantine_reasons"]["missing_image"]
    assert stats["inserted"] + lost == 6 and lost >= 1
    assert all("cannot be read past image" in r["details"] or "truncated" in r["details"]
               for r in lake.read("quarantine").to_pylist())


def test_a_hostile_header_is_refused_before_any_large_read(tmp_path, make_params):
    """A header claiming 2^31 images of 65535 x 65535 pixels: one line, no attempt to read terabytes."""
    header = bytes([0, 0, 8, 3]) + np.array([2**31 - 1, 65535, 65535], ">u4").tobytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header + bytes(100))
    with pytest.raises(InputError, match="65535 x 65535 pixels; not an IDX image file"):
        public.run(params(make_params, tmp_path))


def test_a_header_claiming_more_images_than_the_file_holds_reads_what_is_there(tmp_path, make_params, lake):
    images = digits(3, 8)
    header = bytes([0, 0, 8, 3]) + np.array([10**9, 28, 28], ">u4").tobytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header + images.tobytes())
    stats = public.run(params(make_params, tmp_path))["sources"]["m"]
    assert stats["inserted"] == 3 and stats["quarantine_reasons"] == {"missing_image": 1}  # one row for the rest
    (row,) = lake.read("quarantine").to_pylist()
    assert row["row_key"].endswith("#3-999999999") and "999999997" in row["details"]
