"""TFRecord files of tf.train.Example records (TensorFlow Datasets, Kaggle's TPU sets), written here by the format's
spec (no TensorFlow): framing, protobuf decoding, roles of features, rejects and detection."""

from __future__ import annotations

import gzip
import struct

import pytest

from ingest import public
from ingest.sources.tfrecord import detect, example, masked_crc
from sluice.errors import InputError


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _feature(values: list) -> bytes:
    if all(isinstance(v, bytes) for v in values):
        return _field(1, b"".join(_field(1, v) for v in values))
    if all(isinstance(v, int) for v in values):
        return _field(3, _field(1, b"".join(_varint(v) for v in values)))  # packed, as TensorFlow writes them
    return _field(2, _field(1, struct.pack(f"<{len(values)}f", *values)))


def serialize(features: dict[str, list]) -> bytes:
    return _field(1, b"".join(_field(1, _field(1, k.encode()) + _field(2, _feature(v))) for k, v in features.items()))


def write(path, examples: list[bytes], compress: bool = False) -> None:
    framed = b"".join(struct.pack("<Q", len(d)) + struct.pack("<I", masked_crc(struct.pack("<Q", len(d)))) + d
                      + struct.pack("<I", masked_crc(d)) for d in examples)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(framed) if compress else framed)


def test_the_checksum_and_the_protobuf_decode_as_tensorflow_writes_them():
    crc = 0xE3069283  # CRC-32C of "123456789", masked as TFRecord does
    assert masked_crc(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert example(serialize({"image": [b"\x89PNG..."], "label": [3, -1], "score": [0.5]})) == {
        "image": [b"\x89PNG..."], "label": [3, -1], "score": [0.5]}


def test_tfds_files_land_with_their_split_labels_and_ids(tmp_path, make_params, lake, png):
    """TFDS's cifar10 layout: <name>-<split>.tfrecord-0000N-of-0000M beside label.labels.txt."""
    root = tmp_path / "cifar10" / "3.0.2"
    for split, n in (("train", 3), ("test", 2)):
        write(root / f"cifar10-{split}.tfrecord-00000-of-00001",
              [serialize({"id": [f"{split}_{i}".encode()], "image": [png(i + 10 * n)], "label": [i % 2]}) for i in range(n)])
    (root / "label.labels.txt").write_text("airplane\nautomobile\n")
    found = detect(str(root))
    assert found == {"class_names": ["airplane", "automobile"]}
    params = make_params({"ingest": {"sources": [{"name": "t", "kind": "tfrecord", "path": str(root), **found}]}})
    public.run(params)
    rows = {r["item_id"]: (r["source_label"], r["split_hint"]) for r in lake.read("raw_images").to_pylist()}
    assert rows == {"train_0": ("airplane", "train"), "train_1": ("automobile", "train"), "train_2": ("airplane", "train"),
                    "test_0": ("airplane", "test"), "test_1": ("automobile", "test")}


def test_kaggle_tpu_records_raw_pixels_gzip_and_rejects(tmp_path, make_params, lake, png):
    """Petals to the Metal: train/*.tfrec of image, class, id; a test folder without labels; raw pixels; a record
    without an image, a class index past the names, several labels, a file cut short."""
    import numpy as np

    root = tmp_path / "petals"
    raw = np.arange(2 * 3 * 3, dtype=np.uint8).tobytes()
    write(root / "train" / "00-224x224-4.tfrec", [
        serialize({"image": [png(1)], "class": [1], "id": [b"a"]}),
        serialize({"image_raw": [raw], "height": [2], "width": [3], "depth": [3], "class": [0], "id": [b"b"]}),
        serialize({"class": [0], "id": [b"c"]}),  # no image
        serialize({"image": [png(2)], "class": [7], "id": [b"d"]}),  # past the names
        serialize({"image": [png(3)], "class": [0, 1], "id": [b"e"]})], compress=True)  # several labels
    write(root / "test" / "00-224x224-2.tfrec", [serialize({"image": [png(4)], "id": [b"t"]}),
                                                 serialize({"image": [png(5)], "id": [b"u"]})])
    cut = root / "test" / "00-224x224-2.tfrec"
    cut.write_bytes(cut.read_bytes()[:-10])  # a partial download: the second record is cut
    params = make_params({"ingest": {"sources": [{"name": "p", "kind": "tfrecord", "path": str(root),
                                                  "class_names": ["daisy", "rose"]}]}})
    stats = public.run(params)["sources"]["p"]
    assert stats["quarantine_reasons"] == {"missing_image_bytes": 1, "bad_label": 1, "truncated": 1}
    rows = {r["item_id"]: (r["source_label"], r["split_hint"]) for r in lake.read("raw_images").to_pylist()}
    assert rows == {"a": ("rose", "train"), "b": ("daisy", "train"), "e": (None, "train"), "t": (None, "test")}
    where = {r["reason"]: r["row_key"] for r in lake.read("quarantine").to_pylist()}
    assert where["truncated"].endswith("00-224x224-2.tfrec#1") and where["bad_label"].endswith("#3")


def test_detection_says_what_is_not_a_tfrecord_of_images(tmp_path, png):
    with pytest.raises(InputError, match="no TFRecord files"):
        detect(str(tmp_path))
    write(tmp_path / "x.tfrecord", [serialize({"text": [b"hello"], "label": [1]})])
    with pytest.raises(InputError, match="no feature of image bytes"):
        detect(str(tmp_path))
    (tmp_path / "x.tfrecord").write_bytes(b"not a tfrecord at all")
    with pytest.raises(InputError, match="no TFRecord of tf.train.Example"):
        detect(str(tmp_path))


def test_sluice_init_on_a_tfrecord_folder_writes_the_source(run_cli, tmp_path, png):
    import yaml

    root = tmp_path / "cifar10" / "3.0.2"
    write(root / "cifar10-train.tfrecord-00000-of-00001", [serialize({"image": [png(0)], "label": [1]})])
    (root / "label.labels.txt").write_text("cat\ndog\n")
    res = run_cli("init", str(tmp_path / "proj"), "--images", str(root), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    [source] = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())["ingest"]["sources"]
    assert (source["kind"], source["class_names"]) == ("tfrecord", ["cat", "dog"])
    assert "read by the tfrecord connector" in res.stdout


def test_a_gzip_file_cut_short_keeps_its_earlier_records(tmp_path, make_params, lake, png):
    path = tmp_path / "t" / "x-train.tfrecord.gz"
    write(path, [serialize({"image": [png(i, size=(32, 32))], "label": [0]}) for i in range(6)], compress=True)
    path.write_bytes(path.read_bytes()[:int(path.stat().st_size * 0.7)])
    params = make_params({"ingest": {"sources": [{"name": "g", "kind": "tfrecord", "path": str(tmp_path / "t")}]}})
    stats = public.run(params)["sources"]["g"]
    assert stats["quarantine_reasons"] == {"truncated": 1} and 1 <= stats["inserted"] < 6


def test_a_damaged_byte_is_caught_by_the_records_checksum(tmp_path, make_params, lake, png):
    """A flipped bit in a label decodes as another class: only the data's CRC-32C sees it. The record is quarantined
    and the file read on."""
    path = tmp_path / "t" / "x-train.tfrecord"
    write(path, [serialize({"image": [png(i)], "label": [i % 2]}) for i in range(3)])
    data = bytearray(path.read_bytes())
    first = struct.unpack("<Q", data[:8])[0]
    second = 12 + first + 4  # the second record's header
    length = struct.unpack("<Q", data[second:second + 8])[0]
    label_at = second + 12 + length - 1  # the last byte of its data: the label's varint
    data[label_at] ^= 1  # label 1 -> 0: a valid Example still
    path.write_bytes(bytes(data))
    params = make_params({"ingest": {"sources": [{"name": "d", "kind": "tfrecord", "path": str(tmp_path / "t"),
                                                  "class_names": ["cat", "dog"]}]}})
    stats = public.run(params)["sources"]["d"]
    assert stats["quarantine_reasons"] == {"corrupt": 1} and stats["inserted"] == 2
    [row] = lake.read("quarantine").to_pylist()
    assert row["row_key"].endswith("x-train.tfrecord#1") and "fails its checksum" in row["details"]


def test_a_patient_feature_is_each_records_subject(tmp_path, png):
    """SIIM-ISIC Melanoma's TFRecords: image, image_name, patient_id, target: a patient's lesions split together."""
    from ingest.sources.tfrecord import TFRecordSource, read_tfrecord

    path = tmp_path / "train00-2071.tfrec"
    write(path, [serialize({"image": [png(i)], "image_name": [f"ISIC_{i}".encode()], "target": [i % 2],
                            "patient_id": [p]}) for i, p in enumerate([b"IP_1", b"IP_1", b"IP_2", b""])])
    found = detect(str(path))
    assert found == {"subject_feature": "patient_id"}
    records = list(read_tfrecord(TFRecordSource(name="m", kind="tfrecord", path=str(path), **found), 10**6))
    assert [(r.item_id, r.label, r.subject) for r in records] == [
        ("ISIC_0", "0", "IP_1"), ("ISIC_1", "1", "IP_1"), ("ISIC_2", "0", "IP_2"), ("ISIC_3", "1", None)]
