import io
import json
from pathlib import Path

import pytest
from PIL import Image

from demo.generate import build_demo
from ingest import public
from sluice.config import DemoParams, load_params_file


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    truth = build_demo(DemoParams(), out_dir=str(out))
    return out, truth


def test_demo_inventory_is_written_and_real(demo, monkeypatch):
    out, truth = demo
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)  # Pillow's own limit: sluice.imaging raises it for a run
    assert json.loads((out / "ground_truth.json").read_text())["counts"] == truth["counts"]
    assert len(truth["exact_duplicates"]) >= 15 and len(truth["near_duplicates"]) == 30
    assert {d["kind"] for d in truth["near_duplicates"]} == {"jpeg_reencode", "resize", "brightness"}
    assert len(truth["truncated"]) == 3 and truth["non_image"] and truth["decompression_bomb"] and truth["label_conflicts"]
    for pair in truth["exact_duplicates"]:
        if "#" not in pair[1]:
            assert Path(pair[0]).read_bytes() == Path(pair[1]).read_bytes()
    bomb = Path(truth["decompression_bomb"][0])
    assert bomb.stat().st_size < 200_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(bomb)


def test_demo_plants_label_noise_in_train_rows(demo):
    _, truth = demo
    noise = truth["label_noise"]
    train = truth["counts"]["folder"] * 4 // 5 + truth["counts"]["cifar"] * 4 // 5 + truth["counts"]["parquet"] * 4 // 5
    assert abs(len(noise) - 0.03 * train) <= 3  # a few percent of the train labels
    assert all(f["given"] != f["true"] == truth["true_labels"][f["uri"]] for f in noise)
    assert all("data_batch_1#" in f["uri"] or "digits.parquet#" in f["uri"] for f in noise)
    assert not {f["given"] for f in noise} & {truth["rare_class"]["label"]}


def test_demo_gps_jpegs_carry_gps(demo):
    _, truth = demo
    with Image.open(truth["gps_jpegs"][0]) as im:
        assert im.getexif().get_ifd(0x8825)  # GPSInfo


def test_demo_is_deterministic(demo, tmp_path):
    out, truth = demo
    again = build_demo(DemoParams(), out_dir=str(tmp_path / "again"))
    assert again["counts"] == truth["counts"]
    a = (out / "folder" / "train" / "0").iterdir()
    for path in sorted(a)[:5]:
        assert (tmp_path / "again" / "folder" / "train" / "0" / path.name).read_bytes() == path.read_bytes()


def test_repo_params_ingest_the_demo_idempotently(demo, make_params, lake):
    out, truth = demo
    repo = load_params_file("params.yaml")
    sources = [s.model_dump() | {"path": s.path.replace("data/demo", str(out))} for s in repo.ingest.sources]
    params = make_params({"ingest": {"sources": sources}})
    first = public.run(params)
    assert sum(s["inserted"] for s in first["sources"].values()) > 1500
    assert first["rows"]["raw_images"] == sum(s["seen"] - s["quarantined"] for s in first["sources"].values())
    second = public.run(params)
    assert sum(s["inserted"] for s in second["sources"].values()) == 0
    labels = {r["source_uri"]: r["source_label"] for r in lake.read("raw_images", columns=["source_uri", "source_label"]).to_pylist()}
    wrong = [u for u, l in labels.items() if u in truth["true_labels"] and truth["true_labels"][u] != l]
    # only the planted conflicts and the planted label noise disagree with the truth
    assert len(wrong) == len(truth["label_conflicts"]) + len(truth["label_noise"])
    assert {u: labels[u] for u in wrong if "#" in u} == {f["uri"]: f["given"] for f in truth["label_noise"]}
    row = lake.read("raw_images", columns=["content"], filter=None).column("content")[0].as_py()
    Image.open(io.BytesIO(row))  # landed bytes are the files' bytes
