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
import subprocess
import sys
from pathlib import Path

import yaml

from sluice import class_order, init_archive, not_downloaded
from sluice.errors import ConfigError, InputError
from sluice.init_crawl import crawl_section
from sluice.init_packed import names_dvc_can_track, packed

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
                        "image, annotator, answer, ...), or a wide table with one column per answer (CSV, Parquet, "
                        ".npy/.npz/.pt arrays such as CIFAR-10N's)")
    p.add_argument("--size", type=int, metavar="N", help="side of the normalized images in pixels (default 32)")
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

def _rel(path: str | Path, root: Path) -> str:
    """``path`` as written in params: relative to the project when inside it, else absolute."""
    full = Path(path).expanduser().absolute()
    return (full.relative_to(root.absolute()) if full.is_relative_to(root.absolute()) else full).as_posix()


def _inside(value, root: Path):
    """``value`` (a detected setting: a path, a list or mapping of them, anything else) with every absolute path
    inside the project written relative to it."""
    if isinstance(value, dict):
        return {k: _inside(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_inside(v, root) for v in value]
    if isinstance(value, str) and Path(value).is_absolute() and Path(value).is_relative_to(root.absolute()):
        return _rel(value, root)
    return value


def _existing(path: str, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{path}: {what} not found")
    not_downloaded.check(p, path)  # a clone without its LFS content: say so before reading pointers as data
    return p


def _name(kind: str, path: str, taken: set[str]) -> str:
    base = f"{kind}-{Path(path).expanduser().absolute().name}".lower().replace(" ", "-")
    name, k = base, 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    taken.add(name)
    return name


WIDE_SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".parquet", ".pq")  # answers as arrays / columns: the wide kind


def vote_export(path: str, root: Path, taken: set[str], classes: tuple[str, list[str]] | None = None,
                sources: tuple[dict, ...] = ()) -> dict:
    """A ``labels.exports`` entry, its kind told by the file (Label Studio JSON, MTurk CSV, a long CSV
    with one vote a row, else a wide table or array with one column per answer) and the settings its
    connector detects in it; labels given as class indices get ``class_names`` from what the images the
    votes name say (``class_order.from_votes``, over ``sources``' class folders), else from ``classes``
    (where they come from, the names in index order)."""
    import polars as pl

    from sluice.connectors import get

    p = _existing(path, "vote file")
    if (suffix := p.suffix.lower()) in (".xlsx", ".xls", ".xlsm", ".ods", ".numbers"):
        raise InputError(f"{path}: a spreadsheet workbook is not read; save the sheet as CSV (UTF-8) and give that")
    entry = {"name": _name("votes", path, taken), "path": _rel(p, root)}
    if p.is_dir() or suffix == ".manifest":
        kinds = ["ground_truth"]  # a SageMaker Ground Truth job's folder or output manifest
    elif suffix in (".json", ".jsonl", ".ndjson"):  # a tool's own export, else a vote a record
        kinds = ["label_studio", "labelbox", "csv"] if suffix == ".json" else ["labelbox", "ground_truth", "csv"]
    elif suffix in (".parquet", ".pq"):
        kinds = ["csv", "wide"]  # one vote a row, else wide
    elif suffix in WIDE_SUFFIXES:
        kinds = ["wide"]
    else:
        with p.open(newline="", encoding="utf-8-sig", errors="replace") as f:
            header = f.readline()
        kinds = ["mturk"] if "Input." in header and "Answer." in header else ["csv", "wide"]  # wide: a column per answer
    errors = []
    for kind in kinds:
        try:
            entry = {**entry, "kind": kind, **_detected("votes", kind, p, path)}
            break
        except InputError as err:
            errors.append(err)
    else:  # what a kind that knew the file says, else the last (the most general) kind's word
        raise next((e for e in errors if ": not a " not in str(e)), errors[-1])
    if entry["kind"] == "wide" and not {"item_column", "item_key", "items_file"} & set(entry):
        print(f"[init] {path}: no item column: its rows are items by position (0, 1, ...); set item_key on its "
              "labels.exports entry to the raw_images field they index (e.g. column:train_index for CIFAR's "
              "training set in torchvision's order)", file=sys.stderr)
    connector = get("votes", entry["kind"])
    try:
        votes = connector.reader(connector.config.model_validate({**entry, "path": str(p)})).votes
    except InputError:  # the ingest_crowd stage reports what is wrong with the file, with its line
        return entry
    labels = votes["label"]
    indices = labels.drop_nulls().str.strip_chars().str.contains(r"^\d+$")
    if indices.len() and indices.mean() >= 0.99:
        top = int(labels.drop_nulls().str.strip_chars().cast(pl.Int64, strict=False).max() or 0)
        read = None if classes and classes[0] == "--classes" else \
            class_order.from_votes(votes["item_ref"], labels, class_order.file_labels(sources, root))
        if read and not (classes and read[0] == classes[1][:len(read[0])]):
            entry["class_names"] = read[0]
            print(f"[init] {path}: labels are class indices (0..{top}), named by the class folders of the images "
                  f"{read[1]} of its votes name: " + ", ".join(f"{k}={c}" for k, c in enumerate(read[0][:4]))
                  + (", ..." if len(read[0]) > 4 else "") + (f"; not {classes[0]}'s sorted order" if classes else "")
                  + " (class_names in params.yaml)")
        elif classes is None or top >= len(classes[1]):
            print(f"[init] {path}: labels are class indices (0..{top}); set class_names on its labels.exports entry "
                  "to the class names in index order (or pass --classes)", file=sys.stderr)
        else:
            entry["class_names"] = list(classes[1])
            print(f"[init] {path}: labels are class indices (0..{top}), named by {classes[0]}: "
                  f"0={classes[1][0]}, 1={classes[1][1] if len(classes[1]) > 1 else ''}..."
                  + (f", as the images {read[1]} of its votes name say" if read else "") + " (class_names in params.yaml)")
    return entry


def _detected(family: str, kind: str, p: Path, shown: str) -> dict:
    """What the connector finds the entry needs in the data at ``p`` (printed when anything)."""
    from sluice.connectors import get

    found = detect(str(p)) if (detect := get(family, kind).detect) else {}
    if found:
        print(f"[init] {shown}: " + ", ".join(f"{k}={v}" for k, v in found.items()) + " (found in the data; in params.yaml)")
    key = next((k for k in ("subject_column", "subject_pattern") if found.get(k)), None)
    if key:
        what = f"column '{found[key]}' names" if key == "subject_column" else \
            "the images' paths (person1_..., patient00001/, a track's frames) name"
        print(f"[init] {what} what each image shows (a patient, a lesion, a sequence): the dataset keeps each "
              f"one's images in one split (set {key}: null to split images one by one)")
    return found


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
    sources = []
    for given, values in (("image_folder", args.images), ("cifar", args.cifar), ("parquet", args.parquet),
                          ("idx", args.idx)):
        for value in values:
            p = _existing(value, {"image_folder": "image folder", "cifar": "CIFAR folder", "parquet": "Parquet file",
                                  "idx": "IDX folder"}[given])
            kind = (packed(p, value) or given) if given == "image_folder" else given
            named = value
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
            found = _inside(_detected("source", kind, p, value), root)  # an extracted source moves with the project
            sources.append({"name": _name(kind.split("_")[0], named, taken), "kind": kind, "path": _rel(p, root), **found})
            found = class_order.source_classes(sources[-1], root)
            if found:  # what the data says, so a misread layout shows before any stage runs
                print(f"[init] {value}: {len(found)} class{'' if len(found) == 1 else 'es'} ({', '.join(found[:8])}{', ...' if len(found) > 8 else ''})"
                      + ("; a classifier needs two or more: `sluice train` stops until another source, labels or "
                         "votes bring them" if len(found) == 1 else "")
                      + ("; they are class indices: set class_names on the source to name them (in index order)"
                         if sources[-1].get("label_from") == "lists" and all(c.isdigit() for c in found) else ""))
    crawl = crawl_section({k: v for k, v in _defaults("crawl").items() if k != "demo_site_dir"}, args.crawl,
                          args.urls, root, _rel)
    classes = class_order.known(args.classes, sources, root) if args.votes else None
    exports = [vote_export(v, root, taken, classes, tuple(sources)) for v in args.votes]
    if not (sources or crawl or exports):
        raise InputError("nothing to ingest: give at least one of --images, --cifar, --parquet, --idx, --crawl, --urls, "
                         "--votes "
                         "(or --demo)")

    python = args.python or _rel(sys.executable, root)  # the venv's own path, not its resolved base
    raw: dict = {"seed": 0, "paths": {"python": python, "manifests": paths.MANIFESTS, "dataset": paths.DATASET}}
    for section in DEFAULT_SECTIONS:
        raw[section] = _defaults(section)
        if section == "compute" and sources:
            raw["ingest"] = {**_defaults("ingest"), "sources": sources}
        if section == "compute" and crawl:
            raw["crawl"] = crawl
    raw["labels"]["exports"] = exports
    folders = [s for s in sources if s["kind"] == "image_folder"]
    if args.classes:
        raw["labels"]["classes"] = list(args.classes)
    elif folders and len(folders) == len(sources) and not exports and not crawl:
        names, merged = class_order.folded(c for s in folders for c in class_order.source_classes(s, root) or [])
        raw["labels"]["classes"] = names or None
        for group in merged:  # said here, where the labels stage would refuse the list
            print(f"[init] class folders {' and '.join(group)} differ only in case: one class '{group[0]}' (labels fold case)")
    if args.size:
        raw["clean"]["size"] = args.size
    if args.compress:
        raw["compress"] = _defaults("compress")
    if args.insight:
        raw["insight"] = _defaults("insight")
    Params.model_validate(raw)  # what we write must load
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
    root.mkdir(parents=True, exist_ok=True)
    if args.demo:
        params_text = DEMO_PARAMS.read_text()
    else:
        params_text = ("# Sluice project written by `sluice init`: your sources, defaults for the rest (README.md).\n"
                       + yaml.safe_dump(project_params(root, args), sort_keys=False, width=120))
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
        "the patients images show are stored as keyed pseudonyms\n" if _names_subjects(params_text) else "")
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


def _all_unlabelled(params_text: str) -> bool:
    sources = ((yaml.safe_load(params_text) or {}).get("ingest") or {}).get("sources") or []
    return bool(sources) and all(isinstance(s, dict) and s.get("label_from") == "none" for s in sources)


def _names_subjects(params_text: str) -> bool:
    """Whether a source entry names the person each image shows (a patient column or a path pattern)."""
    sources = ((yaml.safe_load(params_text) or {}).get("ingest") or {}).get("sources") or []
    return any(isinstance(s, dict) and (s.get("subject_column") or s.get("subject_pattern")) for s in sources)


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
