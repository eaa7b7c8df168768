"""A new user's journey, end to end (slow): photos -> `sluice init` -> `dvc repro` -> `sluice predict`.

Real photographs (scikit-learn's china.jpg and flower.jpg), cropped at varied sizes and aspects and
saved as JPEG and PNG, two classes; a temp project with no demo file; `.venv/bin/dvc repro` run with a
PATH that has no venv on it (the stages must find their interpreter themselves). Variants: labels
from crowd votes, and images from a crawl of a loopback website.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DVC = Path(sys.executable).parent / "dvc"
PER_CLASS = 20


def photo_crops(per_class: int = PER_CLASS, seed: int = 0) -> list[tuple[str, str, bytes]]:
    """(class, file name, bytes): crops of the two sample photos at varied sizes, JPEG and PNG."""
    from sklearn.datasets import load_sample_image

    rng = np.random.default_rng(seed)
    out = []
    for label in ("china", "flower"):
        photo = load_sample_image(f"{label}.jpg")
        h, w = photo.shape[:2]
        for i in range(per_class):
            ch, cw = int(rng.integers(96, 260)), int(rng.integers(96, 300))
            y, x = int(rng.integers(0, h - ch)), int(rng.integers(0, w - cw))
            img = Image.fromarray(photo[y:y + ch, x:x + cw])
            fmt = "JPEG" if i % 2 else "PNG"
            buf = io.BytesIO()
            img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
            out.append((label, f"{label}_{i:02d}.{'jpg' if fmt == 'JPEG' else 'png'}", buf.getvalue()))
    return out


def write_folder(root: Path, crops) -> Path:
    for label, name, data in crops:
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / name).write_bytes(data)
    return root


def _env() -> dict:
    """No venv on PATH (as with `.venv/bin/dvc repro` from a plain shell); the worktree's code importable."""
    return {**{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "SLUICE_PARAMS")},
            "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
            "SLUICE_PSEUDONYM_KEY": "journey-test-key"}  # votes are pseudonymised at ingest (sluice/privacy.py)


def _sluice(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sluice.cli", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=600)


def init_small(tmp_path: Path, *args: str) -> Path:
    """`sluice init` at 96 px, then the smallest training that works (1 process, few epochs)."""
    res = _sluice("init", "proj", "--size", "96", *args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    root = tmp_path / "proj"
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"].update(processes=1, epochs=3, batch_size=16, eval_batch_size=64, lr=0.05, warmup_epochs=0.0)
    params["quality"]["min_class_share"] = 0.0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def assert_rerun_relists_only(root: Path) -> None:
    """A second `dvc repro` runs nothing but the (always run) listing of the image folders."""
    again = subprocess.run([str(DVC), "repro"], cwd=root, env=_env(), capture_output=True, text=True, timeout=600)
    listed = ["list_sources"] if "list_sources" in yaml.safe_load((root / "dvc.yaml").read_text())["stages"] else []
    assert again.returncode == 0 and re.findall(r"Running stage '(\w+)'", again.stdout) == listed, again.stdout


def repro_and_predict(root: Path, image: Path) -> dict:
    res = subprocess.run([str(DVC), "repro"], cwd=root, env=_env(), capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert not [p for p in root.rglob("*") if "demo" in p.name], "a demo file in the user's project"
    snapshot = json.loads((root / "data" / "dataset" / "manifest.json").read_text())
    assert sorted(snapshot["classes"]) == ["china", "flower"]
    assert (root / "models" / "fp32" / "model.pt").is_file()
    assert json.loads((root / "reports" / "quality" / "summary.json").read_text())
    manifest = json.loads((root / "data" / "manifests" / "dataset.json").read_text())
    assert manifest["lake"]["root"] == str(root / "lake")
    assert_rerun_relists_only(root)
    pred = _sluice("predict", "--model", "models/fp32", "--format", "json", str(image), cwd=root)
    assert pred.returncode == 0, pred.stderr
    return json.loads(pred.stdout)


def test_photo_folder_to_prediction(tmp_path):
    photos = write_folder(tmp_path / "photos", photo_crops())
    root = init_small(tmp_path, "--images", str(photos))
    # added after init, a name from an old system's disk (Latin-1): DVC never hashes the folder, ingest lands it
    extra = photo_crops(per_class=1, seed=1)[0][2]
    Path(os.fsdecode(os.fsencode(photos / "china") + b"/caf\xe9.jpg")).write_bytes(extra)
    out = repro_and_predict(root, photos / "china" / "china_00.png")
    assert "china" in json.dumps(out) or "flower" in json.dumps(out)
    landed = _sluice("sql", "select source_uri from raw_images where source_uri like '%caf%'", "--format", "csv",
                     cwd=root)
    rows = [line.strip('"') for line in landed.stdout.strip().splitlines()[1:]]
    assert rows == [f"{photos}/china/caf\\xe9.jpg"], landed.stdout + landed.stderr
    for path in photos.rglob("*"):  # new times, same contents (a copy, a restore): the listing's digest holds
        os.utime(path)
    assert_rerun_relists_only(root)


def test_a_data_sets_own_test_split_is_kept(tmp_path):
    """Food-101's layout: images/<class>/ beside meta/train.txt and meta/test.txt; the listed test images are the
    dataset's test split (bar one whose near-copy is in train, which the dataset stage moves there)."""
    crops = photo_crops()
    photos = write_folder(tmp_path / "food" / "images", crops)
    test = {f"{label}/{Path(name).stem}" for label, name, _ in crops if int(Path(name).stem[-2:]) % 4 == 0}
    (tmp_path / "food" / "meta").mkdir()
    (tmp_path / "food" / "meta" / "test.txt").write_text("\n".join(sorted(test)) + "\n")
    (tmp_path / "food" / "meta" / "train.txt").write_text(
        "\n".join(sorted({f"{label}/{Path(name).stem}" for label, name, _ in crops} - test)) + "\n")
    root = init_small(tmp_path, "--images", str(tmp_path / "food"))
    assert yaml.safe_load((root / "params.yaml").read_text())["ingest"]["sources"][0]["split_lists"]
    repro_and_predict(root, photos / "china" / "china_01.jpg")
    rows = _sluice("sql", "select r.source_uri, d.split from dataset d join raw_images r using (image_id)",
                   "--format", "csv", cwd=root).stdout.strip().splitlines()[1:]
    split = {Path(uri).parent.name + "/" + Path(uri).stem: s.strip('"') for uri, s in (r.rsplit(",", 1) for r in rows)}
    in_test = {k for k, s in split.items() if s == "test"}
    assert in_test <= test, in_test - test  # no image the train list names is tested on
    listed = [k for k in split if k in test]  # canonical rows of listed test images: test, bar a leak moved to train
    assert len(in_test) >= 0.7 * len(listed) > 0, split


def test_labels_from_crowd_votes(tmp_path):
    crops = photo_crops()
    photos = write_folder(tmp_path / "photos", crops)
    with (tmp_path / "votes.csv").open("w") as f:
        f.write("item,worker,label\n")
        for label, name, _ in crops:
            for worker in ("w1", "w2", "w3"):
                f.write(f"{(photos / label / name).as_posix()},{worker},{label}\n")
    root = init_small(tmp_path, "--images", str(photos), "--votes", str(tmp_path / "votes.csv"))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["ingest"]["sources"][0]["label_from"] = "none"  # the folder's names are not labels: votes are
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    repro_and_predict(root, photos / "flower" / "flower_01.jpg")
    given = _sluice("sql", "select count(*) as n from raw_images where source_label is not null", "--format", "csv",
                    cwd=root)
    assert given.stdout.strip().splitlines()[-1] == "0", given.stdout
    crowd = _sluice("sql", "select count(*) as n from labels where status = 'resolved' and label_source <> 'given'",
                    "--format", "csv", cwd=root)
    assert int(crowd.stdout.strip().splitlines()[-1]) == len(crops), crowd.stdout + crowd.stderr
    assert "ingest_crowd" in yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


def test_crawl_of_a_loopback_site(tmp_path):
    from demo.site import SiteItem, write_catalogue
    from ingest.crawl.server import SiteServer

    crops = photo_crops()
    items = [SiteItem(label, f"/images/{label}/{name}", data, f"a {label} photo") for label, name, data in crops]
    write_catalogue(tmp_path / "site", items)
    with SiteServer(tmp_path / "site") as site:
        root = init_small(tmp_path, "--crawl", site.origin + "/")
        dvc = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
        assert "crawl" in dvc and "ingest_public" not in dvc
        out = tmp_path / "one.jpg"
        out.write_bytes(crops[1][2])
        repro_and_predict(root, out)
