import io
import json
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ingest import public
from sluice.errors import InputError


def png(seed: int, size=(8, 8)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def folder_params(make_params, path, **extra):
    return make_params({"ingest": {"batch_rows": 3, "sources": [
        {"name": "f", "kind": "image_folder", "path": str(path), "license": "CC0", **extra}]}})


def test_image_folder_with_split_level_and_rejections(tmp_path, make_params, lake):
    root = tmp_path / "imgs"
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for k in range(2):
                (root / split / cls / f"{k}.png").write_bytes(png(hash((split, cls, k)) % 1000))
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    (root / "train" / "dog" / "empty.png").write_bytes(b"")
    truncated = png(1)[:30]
    (root / "train" / "dog" / "truncated.png").write_bytes(truncated)

    summary = public.run(folder_params(make_params, root))
    stats = summary["sources"]["f"]
    assert stats["seen"] == 11 and stats["inserted"] == 9 and stats["quarantined"] == 2
    assert stats["quarantine_reasons"] == {"not_an_image_extension": 1, "empty_file": 1}
    rows = lake.read("raw_images").to_pylist()
    assert {r["split_hint"] for r in rows} == {"train", "test"}
    assert {r["source_label"] for r in rows} == {"cat", "dog"}
    assert all(r["license"] == "CC0" and r["run_id"] == summary["run_id"] for r in rows)
    # the truncated image lands as bronze bytes; the clean stage rejects it
    assert any(r["content"] == truncated for r in rows)
    q = lake.read("quarantine").to_pylist()
    assert sorted(r["reason"] for r in q) == ["empty_file", "not_an_image_extension"]
    assert all(r["stage"] == "ingest" and r["source_table"] == "source:f" for r in q)

    again = public.run(folder_params(make_params, root))["sources"]["f"]
    assert again["inserted"] == 0 and again["already_present"] == 9
    assert lake.count("raw_images") == 9 and lake.count("quarantine") == 2


def test_unreadable_entries_are_quarantined(tmp_path, make_params, lake):
    (tmp_path / "i" / "a").mkdir(parents=True)
    (tmp_path / "i" / "a" / "ok.png").write_bytes(png(3))
    (tmp_path / "i" / "a" / "gone.png").symlink_to(tmp_path / "deleted.png")
    stats = public.run(folder_params(make_params, tmp_path / "i"))["sources"]["f"]
    assert stats["inserted"] == 1 and stats["quarantine_reasons"] == {"unreadable": 1}
    assert lake.read("quarantine").column("row_key").to_pylist()[0].endswith("gone.png")


def test_oversized_file_is_quarantined(tmp_path, make_params, lake):
    (tmp_path / "i" / "a").mkdir(parents=True)
    (tmp_path / "i" / "a" / "big.png").write_bytes(png(4, (64, 64)))
    params = make_params({"ingest": {"max_file_bytes": 100, "sources": [
        {"name": "f", "kind": "image_folder", "path": str(tmp_path / "i")}]}})
    assert public.run(params)["sources"]["f"]["quarantine_reasons"] == {"too_large": 1}


@pytest.mark.parametrize("setup,message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "no class folders found"),
    (lambda p: (p / "cls").mkdir(parents=True), "contains no files"),
    (lambda p: p.write_text("x"), "must be a folder"),
])
def test_bad_image_folder_paths(tmp_path, make_params, setup, message):
    root = tmp_path / "imgs"
    setup(root)
    with pytest.raises(InputError, match=message):
        public.run(folder_params(make_params, root))


def _cifar10_pickles(root, n=6):
    root.mkdir()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (n, 3072), dtype=np.uint8)
    for name, sl in (("data_batch_1", slice(0, n - 2)), ("test_batch", slice(n - 2, n))):
        (root / name).write_bytes(pickle.dumps({b"data": data[sl], b"labels": [i % 3 for i in range(n)][sl]}, protocol=4))
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"plane", b"car", b"bird"]}))
    return data


def test_cifar_python_layout(tmp_path, make_params, lake):
    data = _cifar10_pickles(tmp_path / "c")
    params = make_params({"ingest": {"sources": [{"name": "c10", "kind": "cifar", "path": str(tmp_path / "c")}]}})
    assert public.run(params)["sources"]["c10"]["inserted"] == 6
    rows = sorted(lake.read("raw_images").to_pylist(), key=lambda r: r["source_uri"])
    assert [r["split_hint"] for r in rows].count("test") == 2
    first = next(r for r in rows if r["source_uri"].endswith("data_batch_1#0"))
    assert first["source_label"] == "plane"
    pixels = np.asarray(Image.open(io.BytesIO(first["content"])))
    assert (pixels == data[0].reshape(3, 32, 32).transpose(1, 2, 0)).all()


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


def test_parquet_hf_layout_and_missing_column(tmp_path, make_params, lake):
    images = [{"bytes": png(i), "path": f"{i}.png"} for i in range(5)]
    table = pa.table({"img": pa.array(images, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      "label": pa.array([0, 1, 0, 1, 0], pa.int64())})
    meta = {"info": {"features": {"label": {"_type": "ClassLabel", "names": ["ant", "bee"]}}}}
    pq.write_table(table.replace_schema_metadata({"huggingface": json.dumps(meta)}), tmp_path / "d.parquet")
    src = {"name": "p", "kind": "parquet", "path": str(tmp_path / "d.parquet"), "image_column": "img"}
    assert public.run(make_params({"ingest": {"sources": [src]}}))["sources"]["p"]["inserted"] == 5
    rows = lake.read("raw_images").to_pylist()
    assert sorted(r["source_label"] for r in rows) == ["ant", "ant", "ant", "bee", "bee"]
    assert all(json.loads(r["extra"])["path"].endswith(".png") for r in rows)
    with pytest.raises(InputError, match="Parquet has no column 'picture'"):
        public.run(make_params({"ingest": {"sources": [{**src, "image_column": "picture"}]}}))


def test_cli_ingest_user_errors_are_one_line_exit_2(run_cli, tmp_path):
    params = {"lake": {"root": str(tmp_path / "lake")},
              "ingest": {"sources": [{"name": "x", "kind": "image_folder", "path": str(tmp_path / "missing")}]}}
    result = run_cli("ingest", params=params)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"sluice: error: {tmp_path / 'missing'}: path of ingest source 'x' does not exist"]
    result = run_cli("ingest", "--source", "nope", params=params)
    assert result.returncode == 2 and "no ingest source named 'nope'" in result.stderr
