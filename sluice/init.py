"""``sluice init DIR``: scaffold a project from what the user has, and ``sluice pipeline``.

``init`` writes ``params.yaml`` with only the user's sources (image folders, CIFAR, Parquet, a crawl,
vote exports) and the defaults of every section the pipeline reads, a ``dvc.yaml`` with exactly the
stages that config needs (:mod:`sluice.pipeline`), ``.gitignore`` and ``.dvcignore``; it runs
``git init`` and ``dvc init`` where needed and prints the next commands. ``--demo`` writes the
built-in demo project instead (the repository's own ``params.yaml``, so its ``dvc.yaml`` is the
repository's). ``sluice pipeline`` rewrites (or ``--check``s) ``dvc.yaml`` after ``params.yaml`` changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from sluice import class_order, dicom, init_archive, synsets
from sluice.errors import ConfigError, InputError
from sluice.init_crawl import crawl_section
from sluice.init_entries import detected, entry_name, existing, inside, rel
from sluice.init_packed import names_dvc_can_track, packed
from sluice.init_truth_columns import label_columns
from sluice.init_votes import truth_file, vote_export

# Sections written with their defaults (in this order) for every project; `ingest`, `crawl` and
# `compress` only when asked for. Keys that `paths` fills are left out (one place for each path).
DEFAULT_SECTIONS = ("lake", "compute", "labels", "clean", "dedup", "dataset", "quality", "export", "train")
FROM_PATHS = {"train": ("snapshot",), "export": ("out_dir",), "compress": ("snapshot",),
              "quality": ("snapshot_dir", "manifests_dir")}
GITIGNORE = """\
/.venv/
__pycache__/
/lake/
/runs/
/reports/quality/*
!/reports/quality/summary.json
/dvc_plots/
/sources/
"""
DVCIGNORE = "# Paths DVC ignores when hashing dependencies (https://dvc.org/doc/user-guide/dvcignore)\n__pycache__/\n"
DEMO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def register(sub) -> None:
    p = sub.add_parser("init", help="scaffold a project (params.yaml, dvc.yaml, git + DVC) from your data",
                       description="Write a project in DIR for the data you have: give any mix of sources "
                                   "(each option repeatable). The pipeline holds only the stages they need.")
    p.add_argument("dir", metavar="DIR", help="project folder (created if missing)")
    p.add_argument("--images", action="append", default=[], metavar="PATH",
                   help="image folder: PATH/<class>/*.jpg, optionally under train/ and test/, or a flat folder "
                        "labelled by a CSV / JSON / CVAT XML beside it; or packed images, each picking its connector: "
                        "IDX files, SVHN's *_32x32.mat, STL-10's *_X.bin, a CSV of pixel values, a .npz/.npy of "
                        "arrays, a Hugging Face save_to_disk folder, TFRecord files, WebDataset .tar shards, .h5 files")
    p.add_argument("--cifar", action="append", default=[], metavar="PATH", help="CIFAR-10/100 folder (python or binary)")
    p.add_argument("--idx", action="append", default=[], metavar="PATH",
                   help="MNIST-style IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST: train-images-idx3-ubyte.gz ...; "
                        "also found by --images)")
    p.add_argument("--parquet", action="append", default=[], metavar="PATH",
                   help="Parquet file or folder with image bytes (Hugging Face style, its .arrow files too; the image "
                        "and label columns are found in the file: image/img/..., label/fine_label/...)")
    p.add_argument("--crawl", action="append", default=[], metavar="URL", help="crawl this website (start URL)")
    p.add_argument("--urls", action="append", default=[], metavar="FILE",
                   help="land the images a file lists: a CSV / TSV / Parquet file with a column of image URLs "
                        "and one of labels (found by their values and names: url, label, class, ...; none: the "
                        "images land unlabelled, as LAION's captions), or one URL a line")
    p.add_argument("--votes", action="append", default=[], metavar="FILE",
                   help="crowd votes: MTurk results CSV, Label Studio JSON, a Labelbox NDJSON export, a SageMaker Ground "
                        "Truth job folder or output manifest, a CSV or JSON Lines with one vote a row (item, worker and label "
                        "columns found by name: "
                        "image, annotator, answer, ...; or lines without a header, SQUARE's worker item label), a JSON / "
                        "YAML mapping {worker: {item: label}}, or a wide table with one column per answer (CSV, Parquet, "
                        ".npy/.npz/.pt arrays such as CIFAR-10N's)")
    p.add_argument("--truth", metavar="FILE",
                   help="the votes' true labels (item,label CSV, two columns without a header, or a JSON object): the "
                        "labels stage scores the crowd and each worker against them (default: a truth.csv, gold.txt, "
                        "gt.csv ... beside the votes, else a true_category / truth column inside them, else the "
                        "labels the images come with)")
    p.add_argument("--size", type=_side, metavar="N", help="side of the normalized images in pixels, 8 to 2048 "
                                                         "(default 32)")
    p.add_argument("--classes", nargs="+", metavar="NAME",
                   help="class names (default: the image folders' class folders, else inferred at run time)")
    p.add_argument("--compress", action="store_true", help="add the compress stage (pruning, int8, trade-off)")
    p.add_argument("--insight", action="store_true",
                   help="add the oof and insight stages: wrong labels in train, val and test (confident learning on "
                        "out-of-fold predictions), per-class and per-source metrics, saliency, robustness")
    p.add_argument("--python", metavar="PATH",
                   help="interpreter the DVC stages run (default: this one, relative when inside DIR)")
    p.add_argument("--demo", action="store_true", help="write the built-in demo project instead")
    p.add_argument("--force", action="store_true", help="overwrite an existing params.yaml / dvc.yaml")
    p.set_defaults(func=_init)

    q = sub.add_parser("pipeline", help="write dvc.yaml from params.yaml (the stages the config needs)",
                       description="Regenerate dvc.yaml from params.yaml, e.g. after adding a source.")
    q.add_argument("--check", action="store_true", help="only check dvc.yaml is up to date (exit 1 if not)")
    q.set_defaults(func=_pipeline)


# --- params ---------------------------------------------------------------------------------------

def _defaults(section: str) -> dict:
    from sluice.config import Params

    model = Params.model_fields[section].annotation
    body = model.recipe_defaults() if hasattr(model, "recipe_defaults") else model().model_dump(mode="json")
    for key in FROM_PATHS.get(section, ()):
        body.pop(key, None)
    return body


def project_params(root: Path, args) -> dict:
    """The ``params.yaml`` document of a new project (only its sources, defaults for the rest)."""
    from sluice import paths
    from sluice.config import Params

    taken: set[str] = set()
    sources, labelled = [], False  # labelled: a source gives its images classes
    for given, values in (("image_folder", args.images), ("cifar", args.cifar), ("parquet", args.parquet),
                          ("idx", args.idx)):
        for value in values:
            p = existing(value, {"image_folder": "image folder", "cifar": "CIFAR folder", "parquet": "Parquet file",
                                  "idx": "IDX folder"}[given])
            kind = (packed(p, value) or given) if given == "image_folder" else given
            named = value
            if kind == "image_folder" and (problem := init_archive.unreadable(p)):
                raise InputError(problem)
            if kind == "image_folder" and init_archive.is_archive(p):  # a zip or tar of the folder: extracted once
                p = init_archive.extract(p, root, value)
                named = init_archive.stem(p)
            elif kind == "image_folder" and init_archive.archives_only(p):  # a Kaggle download: train.zip, test1.zip
                p = init_archive.extract_folder(p, root, value)
            if p.is_dir() and root.resolve().is_relative_to(p.resolve()):
                raise InputError(f"{value}: the project folder {root} would lie inside this source folder, where its "
                                 "own files (lake, reports, plots) would be read as images; make the project elsewhere")
            if kind != "image_folder":
                names_dvc_can_track(p, value)
            found = inside(detected("source", kind, p, value), root)  # an extracted source moves with the project
            sources.append({"name": entry_name(kind.split("_")[0], named, taken), "kind": kind, "path": rel(p, root), **found})
            found = class_order.source_classes(sources[-1], root)
            labelled = labelled or bool(found)
            if found:  # what the data says, so a misread layout shows before any stage runs
                print(f"[init] {value}: {len(found)} class{'' if len(found) == 1 else 'es'} ({', '.join(found[:8])}{', ...' if len(found) > 8 else ''})"
                      + ("; a classifier needs two or more: `sluice train` stops until another source, labels or "
                         "votes bring them" if len(found) == 1 else "")
                      + ("; they are class indices: set class_names on the source to name them (in index order)"
                         if sources[-1].get("label_from") == "lists" and all(c.isdigit() for c in found) else ""))
    crawl = crawl_section({k: v for k, v in _defaults("crawl").items() if k != "demo_site_dir"}, args.crawl,
                          args.urls, root, rel)
    classes = class_order.known(args.classes, sources, root) if args.votes else None
    exports = [vote_export(v, root, taken, classes, tuple(sources)) for v in args.votes]
    if not (sources or crawl or exports):
        raise InputError("nothing to ingest: give at least one of --images, --cifar, --parquet, --idx, --crawl, --urls, "
                         "--votes "
                         "(or --demo)")

    python = args.python or rel(sys.executable, root)  # the venv's own path, not its resolved base
    raw: dict = {"seed": 0, "paths": {"python": python, "manifests": paths.MANIFESTS, "dataset": paths.DATASET}}
    for section in DEFAULT_SECTIONS:
        raw[section] = _defaults(section)
        if section == "compute" and sources:
            raw["ingest"] = {**_defaults("ingest"), "sources": sources}
        if section == "compute" and crawl:
            raw["crawl"] = crawl
    raw["labels"]["exports"] = exports
    if args.truth and not exports:
        raise InputError("--truth scores crowd votes: give the votes with --votes FILE")
    raw["labels"]["ground_truth"] = truth_file(args.votes, args.truth, root) if exports else None
    truth, gold = label_columns(exports, root, truth_wanted=not raw["labels"]["ground_truth"])
    raw["labels"]["ground_truth"] = raw["labels"]["ground_truth"] or truth  # a file given or beside the votes first
    if exports and labelled and not raw["labels"]["ground_truth"]:  # CIFAR-10H's votes on CIFAR's labelled test set
        raw["labels"]["ground_truth"] = "sources"
        print("[init] the crowd is scored against the labels the images come with (labels.ground_truth: sources; "
              "never used to label: labels.policy decides)")
    raw["labels"]["gold_file"] = gold
    folders = [s for s in sources if s["kind"] == "image_folder"]
    if args.classes:
        raw["labels"]["classes"] = list(args.classes)
    elif folders and len(folders) == len(sources) and not exports and not crawl:
        names, merged = class_order.folded(c for s in folders for c in class_order.source_classes(s, root) or [])
        raw["labels"]["classes"] = names or None
        if len(folders) == 1 and (named := synsets.names(names, root / folders[0]["path"])):
            raw["labels"]["synonyms"], raw["labels"]["classes"] = named[0], [named[0][c] for c in names]
            shown = ", ".join(f"{c} -> {n}" for c, n in list(named[0].items())[:3])
            print(f"[init] the classes are WordNet ids, named from {named[1]} ({shown}, ...; in labels.synonyms and "
                  "labels.classes: edit them there)")
        for group in merged:  # said here, where the labels stage would refuse the list
            print(f"[init] class folders {' and '.join(group)} differ only in case: one class '{group[0]}' (labels fold case)")
    if args.size is not None:
        raw["clean"]["size"] = args.size
    if args.compress:
        raw["compress"] = _defaults("compress")
    if args.insight:
        raw["insight"] = _defaults("insight")
    from pydantic import ValidationError

    try:
        Params.model_validate(raw)  # what we write must load
    except ValidationError as err:  # an option out of range: one line naming the key, nothing written
        from sluice.config import format_error

        raise InputError(format_error("sluice init", err)) from None
    return raw


# --- the command ----------------------------------------------------------------------------------

def _write(path: Path, text: str, force: bool) -> None:
    if path.exists() and not force and path.read_text() != text:
        raise InputError(f"{path}: exists; use --force to overwrite")
    path.write_text(text)


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise InputError(f"{' '.join(cmd)} failed in {cwd}: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")


def init_repos(root: Path) -> list[str]:
    """``git init`` unless inside a work tree, ``dvc init`` (``--subdir`` below a git root) unless done."""
    done = []
    inside = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True)
    if inside.returncode != 0:
        _run(["git", "init", "-q"], root)
        done.append("git init")
    top = Path(inside.stdout.strip()) if inside.returncode == 0 else root
    if not (root / ".dvc").is_dir():
        subdir = ["--subdir"] if top.resolve() != root.resolve() else []
        _run([sys.executable, "-m", "dvc", "init", "-q", *subdir], root)
        done.append("dvc init" + (" --subdir" if subdir else ""))
    return done


def pipeline_text(params_file: Path) -> str:
    from sluice.config import load_params_file
    from sluice.pipeline import is_source_tree, render

    root = params_file.parent
    return render(yaml.safe_load(params_file.read_text()) or {}, load_params_file(params_file),
                  code_root=root if is_source_tree(root) else None)


def _init(args) -> int:
    root = Path(args.dir).expanduser()
    if args.demo:
        if args.images or args.cifar or args.parquet or args.crawl or args.urls or args.votes:
            raise InputError("--demo writes the built-in demo project; give no other source with it")
        if not DEMO_PARAMS.is_file():
            raise ConfigError(f"{DEMO_PARAMS}: the demo project's params.yaml ships with the source checkout")
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: a file, not a folder: give the new project's folder (sluice init my-project --images ...)")
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    if args.demo:
        params_text = DEMO_PARAMS.read_text()
    else:
        try:
            written = project_params(root, args)
        except BaseException:  # a source init refuses: no half-made project folder left behind
            if created:
                shutil.rmtree(root, ignore_errors=True)
            raise
        params_text = ("# Sluice project written by `sluice init`: your sources, defaults for the rest (README.md).\n"
                       + yaml.safe_dump(written, sort_keys=False, width=120))
    _write(root / "params.yaml", params_text, args.force)
    _write(root / "dvc.yaml", pipeline_text(root / "params.yaml"), args.force)
    for name, text in ((".gitignore", GITIGNORE), (".dvcignore", DVCIGNORE)):
        if not (root / name).exists():
            (root / name).write_text(text)
    done = init_repos(root)
    from sluice.pipeline import stages_for

    stages = [s.name for s in stages_for(yaml.safe_load(params_text))]
    print(f"[init] wrote {root}/params.yaml and dvc.yaml ({len(stages)} stages: {', '.join(stages)})"
          + (f"; ran {', '.join(done)}" if done else ""))
    key_hint = "  export SLUICE_PSEUDONYM_KEY=...  # a secret: " + (
        "crowd worker ids are stored only as keyed pseudonyms\n" if "ingest_crowd" in stages else
        "the patients images show are stored as keyed pseudonyms\n" if _names_subjects(params_text, root) else "")
    key_hint = key_hint if key_hint.endswith("\n") else ""
    if "ingest_crowd" not in stages and _all_unlabelled(params_text):
        print("[init] no source labels its images (label_from: none): add crowd votes (sluice init --force ... --votes "
              "FILE) or a labels file (labels_file) before `dvc repro` can train")
    after = ("  sluice quality summary         # the data-quality gates' verdicts\n"
             "  sluice predict --model models/fp32 some.jpg") if "train" in stages else (
             "  sluice labels workers          # the annotators, best first (no image source: votes only)\n"
             "  sluice sql \"select * from labels\"")
    print("next:\n"
          f"  cd {root}\n" + key_hint +
          "  dvc repro                      # stages run paths.python from params.yaml (no venv activation needed)\n"
          + after)
    return 0


def _side(text: str) -> int:
    """``--size``: a whole number of pixels within clean.size's bounds, checked before anything is written."""
    import argparse

    try:
        side = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got '{text}'") from None
    if not 8 <= side <= 2048:
        raise argparse.ArgumentTypeError(f"{side} is outside 8..2048 (clean.size)")
    return side


def _all_unlabelled(params_text: str) -> bool:
    sources = ((yaml.safe_load(params_text) or {}).get("ingest") or {}).get("sources") or []
    return bool(sources) and all(isinstance(s, dict) and s.get("label_from") == "none" for s in sources)


def _names_subjects(params_text: str, root: Path) -> bool:
    """Whether a source names the person each image shows (a patient column, a path pattern, DICOM headers)."""
    sources = ((yaml.safe_load(params_text) or {}).get("ingest") or {}).get("sources") or []
    from sluice.connectors import SUBJECT_KEYS

    return any(isinstance(s, dict) and (any(s.get(k) for k in SUBJECT_KEYS) or (
        s.get("kind") == "image_folder" and (root / s.get("path", "")).is_dir() and dicom.holds_dicom(root / s["path"])))
        for s in sources)


def _pipeline(args) -> int:
    params_file = Path(os.environ.get("SLUICE_PARAMS", "params.yaml"))
    text = pipeline_text(params_file)
    target = params_file.parent / "dvc.yaml"
    if args.check:
        if not target.is_file() or target.read_text() != text:
            print(f"{target}: out of date with {params_file}; run `sluice pipeline`", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    print(f"[pipeline] wrote {target}")
    return 0
