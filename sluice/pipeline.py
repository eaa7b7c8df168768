"""The pipeline as data: one stage table from which every project's ``dvc.yaml`` is generated.

A project's ``dvc.yaml`` holds exactly the stages its ``params.yaml`` needs: ``demo`` only when the
params have a ``demo`` section, ``ingest_public`` only with public sources (and ``list_sources``, the
digest of their image folders, only with a local image folder), ``crawl`` only with a
``crawl`` section, ``ingest_crowd`` only with vote exports, ``compress`` only with a ``compress``
section; the image stages (clean onwards) only when something lands images (a project of vote files
alone aggregates them). A dependency on the output of a stage that is not there is dropped, and so is a params key
the file does not set (DVC fails on a missing key). The repository's own ``dvc.yaml`` is this module's
rendering of the demo's ``params.yaml`` (``sluice init --demo``; a test keeps them equal).

Stage commands run ``${paths.python} -m MODULE``: the interpreter named in ``params.yaml``, so
``.venv/bin/dvc repro`` works without an activated venv (``python`` on PATH would be whatever the
shell has).
"""

from __future__ import annotations

import os

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from sluice import paths
from sluice.errors import ConfigError

HEADER = """\
# The Sluice pipeline (`dvc repro`; `dvc dag` draws it), generated from params.yaml by `sluice init`
# (the stage table is sluice/pipeline.py; `sluice pipeline` rewrites this file after params.yaml changes).
# Tables live in the Delta lake, not in DVC: every stage that writes to the lake has at least one
# DVC-cached output (its manifest, persisted: DVC's run cache never stands in for a run of a lake stage
# when its inputs return to an earlier state), so a clone without the DVC cache reruns it and rebuilds the lake,
# while a second `dvc repro` only relists your image folders (stage list_sources: DVC depends on their
# digest, not on the folders) and skips the rest. Small metrics and plots are `cache: false` and committed,
# so `dvc metrics diff` works across commits; the top-level `metrics:` names only the headline
# summary (what `dvc metrics show` prints), the detail files are outputs (`dvc metrics show FILE`).
# Stages run `${paths.python}` (params.yaml): the project's interpreter, whether or not a venv is activated.
"""

# Code dependencies are module names, resolved under the source tree (a/b.py or the package a/b/);
# a trailing "?" marks one that may be absent (a module other work adds or moves), anything else
# missing is an error naming it.
QUALITY_CODE = ("quality.checks", "quality.engine", "quality.gate", "quality.gxcontext", "quality.manifests",
                "quality.snapshots", "quality.suites", "quality.expectations?", "sluice.catalog")
# One params list for the four gates (section-level `quality`, not a pasted key block).
GATE_PARAMS = ("quality", "labels.classes", "ingest.max_file_bytes", "lake")
TRAIN_CODE = ("train.data", "train.model", "train.engine", "train.recipe?", "train.presets?", "train.weights?",
              "sluice.snapshot")
# The privacy keys the clean stage reads (face anonymisation; pseudonymize_workers does not rerun it).
FACE_PARAMS = tuple(f"privacy.{k}" for k in ("faces", "face_detector", "face_min_neighbors", "face_min_px",
                                               "face_detect_max_side", "face_margin"))
VOTES_CODE = ("ingest.votes", "sluice.items", "sluice.privacy", "sluice.delimited?")


@dataclass(frozen=True)
class Stage:
    """One DVC stage. Paths may use ``{manifests}``, ``{dataset}``, ``{reports}`` (quality reports). An
    input ending in ``?`` is optional: a dependency only where a chosen stage writes it (or the folder
    holding it, or a file in it), e.g. the insight stage's outputs for the report."""

    name: str
    module: str  # run as `${paths.python} -m <module>`
    code: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()  # outputs of other stages (dropped when that stage is absent)
    params: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    uncached: tuple[str, ...] = ()  # outs with cache: false
    metrics: tuple[str, ...] = ()  # detail metric files: outs with cache: false (the headline is SUMMARY)
    when: Callable[[dict], bool] = lambda raw: True
    extra_deps: Callable[[dict], list[str]] = lambda raw: []  # the user's files (sources, votes)
    always_changed: bool = False  # runs on every `dvc repro` (a stage that looks at files DVC does not track)


_MISSING = object()


def _get(raw: dict, dotted: str, default=None):
    node = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _has(raw: dict, dotted: str) -> bool:
    return _get(raw, dotted, _MISSING) is not _MISSING


def _local(path: str | None) -> bool:
    return bool(path) and "://" not in path


def _images(raw: dict) -> bool:
    """Whether anything lands images (sources, a crawl, the demo): a project of vote files alone aggregates its
    votes (``ingest_crowd``, ``labels``, ``summary``) and has no image stage to fail on a lake without images."""
    return bool(_get(raw, "ingest.sources")) or "crawl" in raw or "demo" in raw


def _folder_source(source: dict) -> bool:
    """A local image folder: DVC depends on its digest (stage ``list_sources``), not on the folder."""
    return source.get("kind") == "image_folder" and _local(source.get("path"))


def _source_paths(raw: dict) -> list[str]:
    """Each local source's path (but an image folder's: its digest is an input), and an image folder's
    labels file, split lists and split labels where they lie outside the folder."""
    out = []
    for s in _get(raw, "ingest.sources", []) or []:
        if _local(s.get("path")):
            if not _folder_source(s):
                out.append(s["path"])
            folder = os.path.normpath(s["path"])
            named = s.get("labels_file")
            for extra in [*(named if isinstance(named, list) else [named]), *(s.get("split_lists") or []),
                          *(s.get("split_labels") or {}).values()]:
                if extra and not os.path.normpath(extra).startswith(folder + os.sep):
                    out.append(extra)
    return out


def _site_dir(raw: dict) -> list[str]:
    """The demo site's folder where a start URL names it, and the file of image URLs a crawl lands."""
    urls = _get(raw, "crawl.start_urls", ["{demo_site}/"]) or []
    listed = _get(raw, "crawl.url_list.path", None)
    return ([_get(raw, "crawl.demo_site_dir", "data/demo/site")] if any("{demo_site}" in u for u in urls) else []) + \
        ([listed] if listed and _local(listed) else [])


def _vote_files(raw: dict) -> list[str]:
    exports = _get(raw, "labels.exports", []) or []
    return [f for e in exports for f in (e.get("path"), e.get("items_file")) if f and _local(f)]


def _label_files(raw: dict) -> list[str]:
    from sluice.params_labels import label_file_path

    files = (label_file_path(_get(raw, f"labels.{key}")) for key in ("gold_file", "ground_truth"))
    return [p for p in files if isinstance(p, str) and _local(p)]


def _labels_params(raw: dict) -> tuple[str, ...]:
    return tuple(f"labels.{k}" for k in (_get(raw, "labels", {}) or {}) if k != "exports")


# The ``insight`` section's keys that belong to the insight stage (saliency, robustness); the rest are oof's.
INSIGHT_STAGE_KEYS = ("out_dir", "saliency_", "robustness")


def _insight_params(raw: dict, stage: str) -> tuple[str, ...]:
    keys = [k for k in (_get(raw, "insight", {}) or {})]
    mine = [k for k in keys if k.startswith(INSIGHT_STAGE_KEYS)]
    return tuple(f"insight.{k}" for k in (mine if stage == "insight" else [k for k in keys if k not in mine]))


def _train_params(raw: dict) -> tuple[str, ...]:
    return tuple(f"train.{k}" for k in (_get(raw, "train", {}) or {}) if k != "kfold")


STAGES: tuple[Stage, ...] = (
    Stage("demo", "demo.generate", code=("demo",), params=("demo",),
          outs=("{demo}",), when=lambda raw: "demo" in raw),
    Stage("list_sources", "ingest.source_listing", code=("ingest.source_listing", "ingest.sources.folders"),
          inputs=("{demo}?",), params=("ingest.sources",), outs=(paths.SOURCE_LISTING,), always_changed=True,
          when=lambda raw: any(_folder_source(s) for s in _get(raw, "ingest.sources", []) or [])),
    Stage("ingest_public", "ingest.public", code=("ingest.public", "ingest.safe_pickle", "ingest.sources?",
                                                  "ingest.landing?", "sluice.connectors", "sluice.catalog",
                                                  "sluice.lake", "sluice.privacy", "sluice.dicom?"),
          inputs=(f"{paths.SOURCE_LISTING}?",), params=("ingest", "lake", "privacy.pseudonymize_subjects"),
          outs=("{manifests}/ingest_public.json",),
          when=lambda raw: bool(_get(raw, "ingest.sources")), extra_deps=_source_paths),
    Stage("crawl", "ingest.crawl", code=("ingest.crawl", "sluice.selectors?", "sluice.catalog", "sluice.lake"),
          params=("crawl", "lake"), outs=("{manifests}/crawl.json",), when=lambda raw: "crawl" in raw,
          extra_deps=_site_dir),
    Stage("ingest_crowd", "ingest.votes", code=VOTES_CODE, inputs=("{manifests}/ingest_public.json",),
          params=("labels.exports", "privacy", "lake"), outs=("{manifests}/ingest_crowd.json",),
          when=lambda raw: bool(_get(raw, "labels.exports")), extra_deps=_vote_files),
    Stage("labels", "transform.labels", code=("transform.labels", *VOTES_CODE),
          inputs=("{manifests}/ingest_crowd.json", "{manifests}/dedup.json"), params=("@labels", "lake"),
          outs=("{manifests}/labels.json",), metrics=(str(paths.LABELS_METRICS),), extra_deps=_label_files),
    Stage("clean", "transform.clean", code=("transform.clean", "transform.faces", "sluice.compute", "sluice.imaging?"),
          inputs=("{manifests}/ingest_public.json", "{manifests}/crawl.json", "{reports}/bronze.json"),
          params=("clean", "compute", "lake", *FACE_PARAMS), outs=("{manifests}/clean.json",), when=_images),
    Stage("dedup", "transform.dedup", code=("transform.dedup", "transform.dedup_match", "transform.dedup_search",
                                            "transform.dedup_check", "transform.dedup_codes", "transform.dedup_plain",
                                            "transform.dedup_state", "transform.hamming", "transform.hamming_scan",
                                            "transform.aligned_ncc", "transform.overlay_band", "transform.detail_share"),
          inputs=("{manifests}/clean.json",),
          params=("dedup", "compute", "lake"), outs=("{manifests}/dedup.json",), when=_images),
    Stage("dataset", "transform.dataset", code=("transform.dataset", "transform.splits"),
          inputs=("{manifests}/dedup.json", "{manifests}/labels.json", "{reports}/silver.json"),
          params=("dataset", "lake"), outs=("{manifests}/dataset.json",), when=_images),
    Stage("quality_bronze", "quality.gate bronze", code=QUALITY_CODE,
          inputs=("{manifests}/ingest_public.json", "{manifests}/crawl.json", "{manifests}/ingest_crowd.json"),
          params=GATE_PARAMS, outs=("{reports}/bronze.json",), when=_images),
    Stage("quality_silver", "quality.gate silver", code=QUALITY_CODE,
          inputs=("{reports}/bronze.json", "{manifests}/clean.json", "{manifests}/dedup.json",
                  "{manifests}/labels.json"),
          params=GATE_PARAMS, outs=("{reports}/silver.json",), when=_images),
    Stage("quality_gold", "quality.gate gold", code=QUALITY_CODE,
          inputs=("{reports}/silver.json", "{manifests}/dataset.json"), params=GATE_PARAMS,
          outs=("{reports}/gold.json",), when=_images),
    Stage("quality_report", "quality.report", code=("quality.report", "quality.page", "quality.gate",
                                                    "quality.gxcontext"),
          inputs=("{reports}/bronze.json", "{reports}/silver.json", "{reports}/gold.json", "{reports}/snapshot.json"),
          params=("quality.classes", "quality.reports_dir", "quality.page_samples_per_class",
                  "quality.page_max_dup_groups", "quality.page_max_quarantined", "labels.classes", "lake"),
          outs=("{reports}/dataset.html", "{reports}/docs"), metrics=("{reports}/summary.json",), when=_images),
    Stage("export", "transform.export", code=("transform.export", "transform.export_pass", "sluice.snapshot",
                                              "sluice.membership"),
          inputs=("{manifests}/dataset.json", "{reports}/gold.json"), params=("export", "lake"),
          outs=("{dataset}",), uncached=("{manifests}/export.json",), when=_images),
    Stage("quality_snapshot", "quality.gate snapshot", code=(*QUALITY_CODE, "sluice.snapshot"),
          inputs=("{reports}/gold.json", "{dataset}", "{manifests}/export.json"), params=GATE_PARAMS,
          outs=("{reports}/snapshot.json",), when=_images),
    Stage("train", "sluice.cli train", code=("train.__init__", "train.commands", "train.ddp", "train.evaluate",
                                             "train.checkpoints?", "train.reports?", *TRAIN_CODE),
          inputs=("{dataset}", "{reports}/snapshot.json"), params=("@train",), outs=("{model}",),
          uncached=(str(paths.TRAIN_CURVE),), metrics=(str(paths.TRAIN_METRICS),), when=_images),
    Stage("evaluate", "train.evaluate", code=("train.evaluate", "train.reports?", *TRAIN_CODE), inputs=("{model}", "{dataset}"),
          params=("train",), uncached=(str(paths.CONFUSION),), metrics=(str(paths.EVAL_METRICS),), when=_images),
    Stage("oof", "train.oof", code=("train.oof", "train.label_issues", "train.group_metrics", "train.evaluate",
                                    "train.reports?", *TRAIN_CODE),
          inputs=("{dataset}", "{reports}/snapshot.json", "{model}?"), params=("@oof", "@train"),
          uncached=("{manifests}/oof.json",), metrics=("{insight_metrics}", "{insight_groups}"),
          when=lambda raw: "insight" in raw and _images(raw)),
    Stage("compress", "train.tradeoff", code=("train.tradeoff", "train.prune", "train.quantize", *TRAIN_CODE),
          inputs=("{model}", "{dataset}"), params=("compress", "@train"),
          outs=tuple(f"{{compressed}}/{v}" for v in ("pruned", "sparse", "int8", "pruned_int8")),
          uncached=("{compress_plot}",), metrics=("{compress_metrics}",), when=lambda raw: "compress" in raw and _images(raw)),
    Stage("insight", "train.insight", code=("train.insight", "train.gradcam", "train.robustness", "train.corruptions",
                                            "train.attacks", "train.quantize", "train.reports?", *TRAIN_CODE),
          inputs=("{model}", "{dataset}", *(f"{{compressed}}/{v}" for v in ("pruned", "sparse", "int8", "pruned_int8")),
                  "{compress_metrics}"),
          params=("@insight", "compress.out_dir", "compress.metrics"), outs=("{insight_dir}",),
          uncached=("{robustness_plot}",), metrics=("{robustness_metrics}",), when=lambda raw: "insight" in raw and _images(raw)),
    Stage("report", "train.run_report", code=("train.run_report", "train.report_sections", "train.report_insight",
                                              "sluice.svg"),
          inputs=(str(paths.TRAIN_METRICS), str(paths.TRAIN_CURVE), str(paths.EVAL_METRICS), str(paths.CONFUSION),
                  "{insight_metrics}", "{insight_groups}", "{compress_metrics}", "{reports}/dataset.html", "{dataset}",
                  "{report_insight}?"),
          params=("report", "insight.metrics", "insight.groups_metrics", "compress.metrics", "train.runs_dir"),
          outs=("{report_out}",), when=_images),
    Stage("summary", "sluice.summary", code=("sluice.summary", "sluice.paths"),
          inputs=("{manifests}/ingest_public.json", "{manifests}/clean.json", "{manifests}/dedup.json",
                  "{manifests}/dataset.json", "{manifests}/export.json", "{reports}/summary.json",
                  str(paths.LABELS_METRICS), str(paths.TRAIN_METRICS), str(paths.EVAL_METRICS), "{insight_metrics}",
                  "{compress_metrics}"),
          uncached=(str(paths.SUMMARY_METRICS),)),
)
SUMMARY = str(paths.SUMMARY_METRICS)  # the one file dvc.yaml's top-level `metrics:` names

PLOTS = {
    "train": [{str(paths.TRAIN_CURVE): {"x": "epoch", "y": ["loss", "accuracy", "val_accuracy"],
                                                 "title": "Training curve"}}],
    "evaluate": [{str(paths.CONFUSION): {"template": "confusion", "x": "predicted", "y": "actual",
                                                  "title": "Test confusion matrix"}}],
    "compress": [{"{compress_plot}": {"template": "scatter", "x": "eager_b64_ms", "y": "accuracy",
                                      "title": "Compression trade-off (test accuracy vs eager CPU latency per "
                                               "batch of 64, ms)"}},
                 {"compressed_size": {"template": "bar_horizontal", "x": "size_bytes",
                                      "y": {"{compress_plot}": "variant"}, "title": "Model size per variant (bytes)"}}],
    "insight": [{"corruption_robustness": {"template": "bar_horizontal", "x": "corruption_accuracy",
                                           "y": {"{robustness_plot}": "variant"},
                                           "title": "Mean accuracy under corruptions (5 severities) per variant"}},
                {"adversarial_robustness": {"template": "bar_horizontal", "x": "pgd_accuracy",
                                            "y": {"{robustness_plot}": "variant"},
                                            "title": "PGD accuracy per variant (int8: transfer from fp32)"}}],
}


def _places(params) -> dict[str, str]:
    return {"manifests": params.paths.manifests, "dataset": params.paths.dataset, "demo": params.demo.out_dir,
            "reports": params.quality.reports_dir, "model": params.train.out_dir,
            "compressed": params.compress.out_dir, "compress_plot": params.compress.plot,
            "compress_metrics": params.compress.metrics,
            "insight_metrics": params.insight.metrics, "insight_groups": params.insight.groups_metrics,
            "insight_dir": params.insight.out_dir, "robustness_metrics": params.insight.robustness_metrics,
            "robustness_plot": params.insight.robustness_plot,
            "report_out": params.report.out, "report_insight": params.report.insight_dir}


def _fill(value, places: dict[str, str]):
    if isinstance(value, str):
        return value.format(**places)
    if isinstance(value, dict):
        return {_fill(k, places): _fill(v, places) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, places) for v in value]
    return value


def _params(stage: Stage, raw: dict) -> list[str]:
    keys: list[str] = []
    for key in stage.params:
        if key == "@labels":
            keys += _labels_params(raw)
        elif key == "@train":
            keys += _train_params(raw)
        elif key in ("@oof", "@insight"):
            keys += _insight_params(raw, key[1:])
        elif _has(raw, key):
            keys.append(key)
    return keys


def stages_for(raw: dict) -> list[Stage]:
    """The stages a project with these (raw, as written) params needs, in pipeline order."""
    return [s for s in STAGES if s.when(raw)]


def code_paths(modules: tuple[str, ...], root: Path) -> list[str]:
    """Module names -> paths under ``root`` (``a/b.py`` or the package folder ``a/b``)."""
    found = []
    for entry in modules:
        name = entry.removesuffix("?")
        rel = name.replace(".", "/")
        if (root / f"{rel}.py").is_file():
            found.append(f"{rel}.py")
        elif (root / rel).is_dir():
            found.append(rel)
        elif not entry.endswith("?"):
            raise ConfigError(f"sluice/pipeline.py: module '{name}' of the stage table is not in {root}")
    return found


def _optional(wanted: list[str], produced: set[str]) -> list[str]:
    """The chosen stages' outputs that are, hold or lie in the optional inputs ``wanted``."""
    return sorted(o for o in produced for w in wanted if o == w or w.startswith(o + "/") or o.startswith(w + "/"))


def build(raw: dict, params, code_root: Path | None = None) -> dict:
    """The ``dvc.yaml`` document (a dict) for a project's raw params and their validated ``Params``.

    ``code_root``: the Sluice source tree whose files the stages depend on (the demo, in the repository);
    None for a user's project, which runs the installed package and has no such files.
    """
    places = _places(params)
    chosen = stages_for(raw)
    produced = {_fill(o, places) for s in chosen for o in s.outs + s.uncached + s.metrics}
    known = {_fill(o, places) for s in STAGES for o in s.outs + s.uncached + s.metrics}
    stages = {}
    for s in chosen:
        inputs = [p for p in (_fill(i, places) for i in s.inputs if not i.endswith("?"))
                  if p in produced or p not in known]
        inputs += _optional([_fill(i.removesuffix("?"), places) for i in s.inputs if i.endswith("?")], produced)
        body: dict = {"cmd": f"${{paths.python}} -m {s.module}"}
        code = code_paths(s.code, code_root) if code_root is not None else []
        deps = list(dict.fromkeys([*code, *inputs, *s.extra_deps(raw)]))
        if deps:
            body["deps"] = deps
        params_keys = _params(s, raw)
        if params_keys:
            body["params"] = params_keys
        # a stage's manifest stands for what it wrote to the lake, which DVC does not hold: `persist` keeps DVC's
        # run cache from "restoring" a manifest when the inputs return to an earlier state (a vote export copied
        # back) while the lake stays as the last run left it; the stage runs again instead
        outs = [{_fill(o, places): {"persist": True}} if o.startswith("{manifests}/") else _fill(o, places)
                for o in s.outs] + [{_fill(o, places): {"cache": False}} for o in (*s.uncached, *s.metrics)]
        if outs:
            body["outs"] = outs
        if s.always_changed:
            body["always_changed"] = True
        stages[s.name] = body
    plots = [p for s in chosen for p in _fill(PLOTS.get(s.name, []), places)]
    headline = [SUMMARY] if SUMMARY in produced else []
    return {**({"plots": plots} if plots else {}), **({"metrics": headline} if headline else {}), "stages": stages}


def render(raw: dict, params, code_root: Path | None = None) -> str:
    """``dvc.yaml`` text: a fixed header, then :func:`build` as block YAML in table order."""
    return HEADER + yaml.safe_dump(build(raw, params, code_root), sort_keys=False, width=120, default_flow_style=False)


def is_source_tree(root: Path | str) -> bool:
    """Whether ``root`` is the Sluice source tree (its stages then depend on their code files)."""
    return (Path(root) / "sluice" / "pipeline.py").is_file()


def upstream_manifests(stage: str) -> list[str]:
    """File names of the manifests ``stage`` reads (directly), e.g. ``['dataset.json']`` for export."""
    for s in STAGES:
        if s.name == stage:
            return [i.removeprefix("{manifests}/") for i in s.inputs if i.startswith("{manifests}/")]
    return []
