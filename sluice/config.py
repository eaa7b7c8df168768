"""Typed, validated pipeline parameters loaded once from ``params.yaml``.

Every section is a pydantic model that forbids unknown keys, so a typo is an error that names the key
instead of a silently ignored setting. Deployment settings (where the lake lives, how to reach object
storage, which Dask cluster to use) can be overridden from the environment so the same params file
runs on a laptop and in production:

- ``SLUICE_PARAMS``            path of the params file (default ``params.yaml``)
- ``SLUICE_LAKE_ROOT``         lake root, a local folder or any deltalake URI (``s3://bucket/lake``)
- ``SLUICE_STORAGE_OPTIONS``   JSON object of deltalake storage options (credentials stay out of files)
- ``SLUICE_DASK_SCHEDULER``    address of an existing Dask scheduler (``tcp://host:8786``)
"""

from __future__ import annotations

import functools
import json
import os
import types
from pathlib import Path
from typing import Annotated, Literal, Union, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from sluice.connectors import entry_type
from sluice import paths as _paths
from sluice.errors import ConfigError
from sluice.strict_yaml import DuplicateKey, load_yaml

DEFAULT_PARAMS = "params.yaml"


class Section(BaseModel):
    """Base of every params section: unknown keys are errors, values are frozen, and a YAML boolean is
    never taken for a number (pydantic would read ``batch_rows: true`` as 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data):
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key)
                if field is not None and _bool_for_number(field.annotation, value):
                    raise PydanticCustomError("bool_number", "expected a number, got a boolean", {"key": key})
        return data


def _numeric(annotation) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _numeric(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return bool not in args and any(_numeric(a) for a in args)
    return annotation in (int, float)


def _bool_for_number(annotation, value) -> bool:
    """Whether ``value`` holds a YAML boolean where ``annotation`` wants a number (or numbers)."""
    if isinstance(value, bool):
        return _numeric(annotation)
    origin = get_origin(annotation)
    if origin is Annotated:
        return _bool_for_number(get_args(annotation)[0], value)
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        args = get_args(annotation)
        homogeneous = origin is list or args[-1:] == (Ellipsis,)
        wanted = [args[0]] * len(value) if homogeneous and args else list(args)
        return any(isinstance(v, bool) and _numeric(a) for v, a in zip(value, wanted))
    return False


class LakeParams(Section):
    root: str = "lake"
    storage_options: dict[str, str] = Field(default_factory=dict)
    commit_retries: Annotated[int, Field(ge=0, le=100)] = 10


class ComputeParams(Section):
    """Where Dask work runs: a LocalCluster sized to the machine, or an existing scheduler."""

    scheduler_address: str | None = None
    n_workers: Annotated[int, Field(ge=1)] | None = None
    threads_per_worker: Annotated[int, Field(ge=1)] = 1
    memory_limit: str = "auto"


class DemoParams(Section):
    out_dir: str = "data/demo"
    seed: int = 0
    rare_class: Annotated[int, Field(ge=0, le=9)] = 7
    rare_keep: Annotated[int, Field(ge=1)] = 25


SourceEntry = entry_type("source")  # one ``ingest.sources`` entry, validated by its kind's connector


class IngestParams(Section):
    batch_rows: Annotated[int, Field(ge=1)] = 2000
    max_file_bytes: Annotated[int, Field(ge=1)] = 50_000_000
    sources: list[SourceEntry] = Field(default_factory=list)  # models in ingest/sources/, docs/connectors.md


class AugmentParams(Section):
    """Batched tensor augmentation of training images (train/data.py). The recipe (train.recipe) picks
    these; a key set in params.yaml overrides the recipe's choice (null: the recipe decides)."""

    crop_padding: Annotated[int, Field(ge=0, le=16)] | None = 2
    flip: bool | None = False
    rotate_degrees: Annotated[float, Field(ge=0, le=45)] | None = 8.0
    cutout: Annotated[int, Field(ge=0, le=32)] | None = 0
    resized_crop_scale: Annotated[float, Field(ge=0, le=1)] | None = 0.0  # random-resized-crop min area (0 = off)
    jitter: Annotated[float, Field(ge=0, lt=1)] | None = 0.0  # colour jitter: brightness/contrast/saturation +-this


class TrainParams(Section):
    """The DDP trainer (train/ddp.py, `sluice train`) and its evaluation (train/evaluate.py).

    ``recipe`` picks model, width, epochs, augmentation, schedule and batch size from the snapshot
    (train/presets.py); every key set explicitly (in params.yaml or the constructor) overrides it, and a key
    that is absent or null is the recipe's choice.
    """

    recipe: Literal["auto", "demo", "cifar_fast", "photo"] = "auto"
    snapshot: str = "data/dataset"
    out_dir: str = "models/fp32"
    runs_dir: str = "runs"
    checkpoint_dir: str = "runs/train"
    keep_checkpoints: Annotated[int, Field(ge=1)] = 2
    processes: Annotated[int, Field(ge=1)] = 2
    threads_per_process: Annotated[int, Field(ge=1)] = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    epochs: Annotated[int, Field(ge=1)] | None = 6
    batch_size: Annotated[int, Field(ge=1)] | None = 64
    eval_batch_size: Annotated[int, Field(ge=1)] = 512
    lr: Annotated[float, Field(gt=0)] | None = 0.3
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = True
    weight_decay: Annotated[float, Field(ge=0)] = 5e-4
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] | None = 0.1
    warmup_epochs: Annotated[float, Field(ge=0)] | None = 1.0
    schedule: Literal["cosine", "onecycle", "constant"] | None = "cosine"
    arch: str | None = "rescnn"
    width: Annotated[int, Field(ge=4)] | None = 8
    depth: Annotated[int, Field(ge=0, le=8)] | None = 1
    bn_scale: bool | None = True
    tta_flip: bool | None = False
    init_weights: str | None = None
    freeze_epochs: Annotated[int, Field(ge=0)] = 0
    balance: Literal["none", "class_weights", "sample_weights", "sampler"] = "sample_weights"
    augment: AugmentParams = AugmentParams()
    final_fit: bool = False
    test_curve: bool = False
    bf16: bool = True
    compile: bool = False
    gpu_resident: bool = True
    kfold: Annotated[int, Field(ge=0, le=20)] = 0


Side = Annotated[int, Field(ge=8, le=2048)]
Channel = Annotated[int, Field(ge=0, le=255)]


class CleanParams(Section):
    """Decode, verify and normalize raw images into silver `images` (transform/clean.py)."""

    size: Side | tuple[Side, Side] = 32  # N (square) or [H, W]
    resize: Literal["squash", "center_crop", "pad"] = "center_crop"  # keep aspect and cut the centre
    batch_images: Annotated[int, Field(ge=1)] = 256
    write_rows: Annotated[int, Field(ge=1)] = 5000
    max_pixels: Annotated[int, Field(ge=1)] = 50_000_000
    min_side: Annotated[int, Field(ge=1)] = 8
    animated: Literal["quarantine", "first_frame"] = "quarantine"
    min_std: Annotated[float, Field(ge=0)] = 2.0
    outlier_z: Annotated[float, Field(ge=0)] = 8.0
    max_aspect: Annotated[float, Field(ge=1)] = 8.0
    background: tuple[Channel, Channel, Channel] = (255, 255, 255)  # alpha and `pad` borders
    task_retries: Annotated[int, Field(ge=0)] = 2

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the normalized images."""
        return (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)


class DedupParams(Section):
    """Exact (pixel hash) and near duplicate groups (transform/dedup.py); defaults calibrated on the
    labelled benchmark in benchmarks/dedup.py (docs/transform.md)."""

    near_threshold: Annotated[int, Field(ge=0, le=16)] = 10  # max bits between window hashes (candidates)
    min_correlation: Annotated[float, Field(ge=-1, le=1)] = 0.8  # aligned equalised-grey correlation (verification)
    moved_margin: Annotated[float, Field(ge=0, le=1)] = 0.05  # shifted/cropped alignments need this much more


class DatasetParams(Section):
    """Split, balance and normalize into gold `dataset` (transform/dataset.py)."""

    seed: int = 0
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1
    keep_source_test: bool = True
    leak_policy: Literal["to_train", "drop"] = "to_train"
    group_conflict: Literal["majority", "canonical", "quarantine"] = "majority"
    label_issues: Literal["keep", "drop", "relabel"] = "keep"  # act on the OOF stage's label_issues (docs/insight.md)
    balance: Literal["none", "class_weights", "undersample", "oversample"] = "class_weights"
    balance_target: Annotated[int, Field(ge=1)] | None = None


def _vote_export(entry: object) -> object:
    """One ``labels.exports`` entry validated by the config model its ``kind`` registers (sluice.connectors)."""
    from pydantic_core import PydanticCustomError

    from sluice.connectors import connectors

    if isinstance(entry, BaseModel):
        return entry
    if not isinstance(entry, dict):
        raise PydanticCustomError("vote_export", "an export is a mapping with a kind")
    known = connectors("votes")
    kind = entry.get("kind")
    if kind not in known:
        raise PydanticCustomError("vote_export", "{msg}", {
            "msg": f"unknown kind {kind!r}; known kinds: {', '.join(known) or 'none registered'}"})
    model = known[kind].config
    try:
        return model.model_validate(entry)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            msg = f"unknown key '{loc}'; allowed keys: {', '.join(sorted(model.model_fields))}"
        else:
            error = (first.get("ctx") or {}).get("error")
            msg = f"{loc}: {error if error is not None else first['msg'].lower()} (got {first.get('input')!r})"
        raise PydanticCustomError("vote_export", "{msg}", {"msg": msg}) from None


VoteExportEntry = Annotated[object, AfterValidator(_vote_export)]


class EmParams(Section):
    max_iter: Annotated[int, Field(ge=1)] = 100
    tol: Annotated[float, Field(gt=0)] = 1e-6
    smoothing: Annotated[float, Field(ge=0)] = 0.01
    prior_accuracy: Annotated[float, Field(gt=0, lt=1)] = 0.7  # one_coin: Beta prior mean of a worker's accuracy
    prior_strength: Annotated[float, Field(ge=0)] = 4.0  # one_coin: its weight in pseudo-votes
    confusion_prior: Annotated[float, Field(ge=0)] = 0.0  # dawid_skene: pseudo-votes per true class shaped like prior_accuracy


class LabelsParams(Section):
    """Crowd vote connectors (ingest/votes) and label aggregation (transform/labels)."""

    exports: list[VoteExportEntry] = Field(default_factory=list)
    classes: list[str] | None = None
    synonyms: dict[str, str] = Field(default_factory=dict)
    policy: Literal["crowd_over_given", "given_over_crowd", "agree_only"] = "given_over_crowd"
    method: Literal["dawid_skene", "majority", "one_coin"] = "dawid_skene"
    min_votes: Annotated[int, Field(ge=1)] = 1
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.6  # a 2-of-3 majority (0.67) resolves
    max_unknown_label_share: Annotated[float, Field(ge=0, le=1)] = 0.01  # more votes outside the classes fail the stage
    gold_file: str | None = None
    ground_truth: str | None = None
    em: EmParams = EmParams()
    flag_min_votes: Annotated[int, Field(ge=1)] = 20
    flag_level: Annotated[float, Field(gt=0, lt=1)] = 0.95  # confidence level of the accuracy interval behind flags
    spammer_max_information: Annotated[float, Field(ge=0, le=1)] = 0.15
    seed: int = 0


def _valid_selector(value: str) -> str:
    """A CSS or XPath selector (``xpath:``/``css:`` prefix, or XPath when it starts with ``/ ./ (``)."""
    from sluice.selectors import compile_selector

    compile_selector(value)  # raises ValueError naming what is wrong
    return value


def _valid_regex(value: str) -> str:
    import re

    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"not a valid regular expression ({err})") from None
    return value


CrawlSelector = Annotated[str, AfterValidator(_valid_selector)]
CrawlRegex = Annotated[str, AfterValidator(_valid_regex)]


class CrawlFollowParams(Section):
    allow: list[CrawlRegex] = Field(default_factory=list)
    deny: list[CrawlRegex] = Field(default_factory=list)
    restrict: CrawlSelector | None = None
    pagination: CrawlSelector | None = None


class CrawlLabelParams(Section):
    # none = the source is declared unlabelled (no label expected, no unlabelled-share check)
    source: Literal["selector", "breadcrumb", "url_regex", "alt", "attr", "link_text", "none"] = "breadcrumb"
    on: Literal["page", "image"] = "page"  # what selector / url_regex read: the page, or each image (element, URL)
    selector: CrawlSelector | None = None
    position: int = -1
    pattern: CrawlRegex | None = None
    attr: str | None = Field(default=None, min_length=1)  # source attr: this attribute of the image element
    max_unlabelled_share: Annotated[float, Field(ge=0, le=1)] = 0.0  # above it the crawl stage fails

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data):
        """YAML 1.1 (PyYAML) reads an unquoted ``on:`` key as the boolean true: take it as ``on``."""
        if isinstance(data, dict) and True in data:
            data = {("on" if key is True else key): value for key, value in data.items()}
        return data

    @model_validator(mode="after")
    def _needs(self):
        if self.source in ("selector", "breadcrumb") and not self.selector:
            raise ValueError(f"label.source '{self.source}' needs label.selector")
        if self.source == "url_regex" and not self.pattern:
            raise ValueError("label.source 'url_regex' needs label.pattern")
        if self.source == "attr" and not self.attr:
            raise ValueError("label.source 'attr' needs label.attr")
        if self.source == "breadcrumb" and self.on == "image":
            raise ValueError("label.source 'breadcrumb' reads the page: use label.on 'page'")
        return self


class CrawlParams(Section):
    """The web crawl connector (ingest/crawl); see docs/crawl.md."""

    source: str = Field(default="demo-site", min_length=1)
    start_urls: list[str] = Field(default_factory=lambda: ["{demo_site}/"], min_length=1)
    demo_site_dir: str = "data/demo/site"
    allowed_domains: list[str] = Field(default_factory=list)
    follow: CrawlFollowParams = CrawlFollowParams()
    images: CrawlSelector = "img"
    image_attr: str = "src"
    label: CrawlLabelParams = Field(default_factory=lambda: CrawlLabelParams(selector="nav.breadcrumb a"))
    license: str | None = None
    user_agent: str = Field(default="SluiceBot/0.1 (+https://github.com/sluice-lake/sluice; data-team@example.org)",
                            min_length=1)
    obey_robots: bool = True
    concurrency: Annotated[int, Field(ge=1)] = 16
    concurrency_per_domain: Annotated[int, Field(ge=1)] = 4
    download_delay: Annotated[float, Field(ge=0)] = 0.0
    autothrottle: bool = True
    autothrottle_target: Annotated[float, Field(gt=0)] = 4.0
    retries: Annotated[int, Field(ge=0)] = 2
    backoff_base: Annotated[float, Field(ge=0)] = 0.5
    retry_after_max: Annotated[float, Field(ge=0)] = 120.0
    timeout: Annotated[float, Field(gt=0)] = 30.0
    max_bytes: Annotated[int, Field(ge=1)] = 20_000_000
    max_pixels: Annotated[int, Field(ge=1)] = 50_000_000
    max_pages: Annotated[int, Field(ge=0)] = 10_000
    max_depth: Annotated[int, Field(ge=0)] = 10
    max_redirects: Annotated[int, Field(ge=0)] = 5
    http_cache: bool = False
    http_cache_dir: str = "runs/crawl/httpcache"
    incremental: bool = True  # conditional GETs for images already landed (validators from crawl_log)
    recrawl_after: Annotated[float, Field(ge=0)] | None = None  # seconds; null = always revalidate
    sitemap: bool = False  # also crawl the pages listed in each start host's /sitemap.xml
    job_dir: str | None = None
    batch_rows: Annotated[int, Field(ge=1)] = 500
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"


class QualityParams(Section):
    """Great Expectations gates per layer, quarantine, reports (quality/); see docs/quality.md."""

    classes: list[str] | None = None  # null = labels.classes, else the resolved labels found
    min_class_share: Annotated[float, Field(ge=0, le=1)] = 0.01
    min_label_confidence: Annotated[float, Field(ge=0, le=1)] = 0.5
    min_annotator_accuracy: Annotated[float, Field(ge=0, le=1)] = 0.5
    max_flagged_annotator_share: Annotated[float, Field(ge=0, le=1)] = 0.5
    max_unresolved_vote_share: Annotated[float, Field(ge=0, le=1)] = 0.1
    max_image_side: Annotated[int, Field(ge=1)] = 20_000
    severity: dict[str, Literal["critical", "warning", "off"]] = Field(default_factory=dict)
    batch_rows: Annotated[int, Field(ge=1)] = 100_000
    max_quarantine_per_check: Annotated[int, Field(ge=0)] = 100_000
    reports_dir: str = "reports/quality"
    manifests_dir: str = "data/manifests"
    snapshot_dir: str = "data/dataset"
    page_samples_per_class: Annotated[int, Field(ge=0, le=64)] = 8
    page_max_dup_groups: Annotated[int, Field(ge=0)] = 12
    max_test_leakage: Annotated[float, Field(ge=0, le=1)] = 0.005  # share of test images with a near-copy in train
    page_max_quarantined: Annotated[int, Field(ge=0)] = 60


class ExportParams(Section):
    """The frozen training snapshot written by the export stage (transform/export.py); docs/versioning.md."""

    out_dir: str = "data/dataset"
    shard_rows: Annotated[int, Field(ge=1)] = 8192


class MaintainParams(Section):
    """`sluice lake maintain`: compaction, vacuum and orphan cleanup (sluice/maintenance.py)."""

    retention_hours: Annotated[int, Field(ge=0)] = 168
    target_file_mb: Annotated[int, Field(ge=1)] = 128
    tables: list[str] = Field(default_factory=list)


class CompressParams(Section):
    """Pruning, int8 quantization and the trade-off report (train/tradeoff.py); docs/compression.md."""

    model_dir: str = "models/fp32"
    snapshot: str = "data/dataset"
    out_dir: str = "models"
    metrics: str = "reports/metrics/compress.json"
    plot: str = "reports/plots/tradeoff.csv"
    seed: int = 0
    threads: Annotated[int, Field(ge=1)] = 1
    batch_size: Annotated[int, Field(ge=1)] = 64
    finetune_lr: Annotated[float, Field(gt=0)] = 0.05
    prune_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.5
    prune_steps: Annotated[int, Field(ge=1, le=20)] = 3
    prune_finetune_epochs: Annotated[int, Field(ge=0)] = 2
    prune_round_to: Annotated[int, Field(ge=1)] = 4
    sparsity: Annotated[float, Field(ge=0, lt=1)] = 0.5
    sparse_finetune_epochs: Annotated[int, Field(ge=0)] = 1
    calibration_images: Annotated[int, Field(ge=1)] = 512
    qat_threshold: Annotated[float, Field(ge=0)] = 1.0
    qat_epochs: Annotated[int, Field(ge=0)] = 1
    compile: bool = True
    warmup: Annotated[int, Field(ge=0)] = 3
    repeats: Annotated[int, Field(ge=1)] = 15


class PrivacyParams(Section):
    """Personal data in the lake (sluice/privacy.py)."""

    pseudonymize_workers: bool = True  # worker IDs -> HMAC-SHA256 pseudonyms keyed by $SLUICE_PSEUDONYM_KEY


class PathsParams(Section):
    """Where the project keeps its state (relative to the project folder, where DVC runs the stages).

    ``dataset`` and ``manifests`` are the defaults of the per-stage keys that used to repeat them
    (train.snapshot, export.out_dir, compress.snapshot, quality.snapshot_dir, quality.manifests_dir),
    which remain accepted as explicit overrides. ``python`` is the interpreter the generated
    ``dvc.yaml`` runs every stage with (``${paths.python} -m ...``).
    """

    python: str = Field(default=_paths.PYTHON, min_length=1)
    manifests: str = Field(default=_paths.MANIFESTS, min_length=1)
    dataset: str = Field(default=_paths.DATASET, min_length=1)


# (section, key) <- paths key: filled from `paths` unless the section sets the key itself.
_FROM_PATHS = {("train", "snapshot"): "dataset", ("export", "out_dir"): "dataset", ("compress", "snapshot"): "dataset",
               ("quality", "snapshot_dir"): "dataset", ("quality", "manifests_dir"): "manifests"}


class InsightParams(Section):
    """Out-of-fold predictions, label issues and per-group metrics (train/oof.py); docs/insight.md."""

    folds: Annotated[int, Field(ge=2, le=20)] = 3
    epochs: Annotated[int, Field(ge=1)] = 3
    rank_by: Literal["self_confidence", "normalized_margin"] = "self_confidence"
    method: Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_joint", "argmax"] = "prune_by_noise_rate"
    noise_warn_rate: Annotated[float, Field(ge=0, le=1)] = 0.1
    max_group_gap: Annotated[float, Field(ge=0, le=1)] = 0.2
    metrics: str = "reports/metrics/label_issues.json"
    groups_metrics: str = "reports/metrics/groups.json"


class Params(Section):
    seed: int = 0
    paths: PathsParams = PathsParams()
    lake: LakeParams = LakeParams()
    compute: ComputeParams = ComputeParams()
    demo: DemoParams = DemoParams()
    ingest: IngestParams = IngestParams()
    train: TrainParams = TrainParams()
    clean: CleanParams = CleanParams()
    dedup: DedupParams = DedupParams()
    dataset: DatasetParams = DatasetParams()
    labels: LabelsParams = LabelsParams()
    crawl: CrawlParams = CrawlParams()
    quality: QualityParams = QualityParams()
    export: ExportParams = ExportParams()
    maintain: MaintainParams = MaintainParams()
    compress: CompressParams = CompressParams()
    privacy: PrivacyParams = PrivacyParams()

    @model_validator(mode="before")
    @classmethod
    def _paths_defaults(cls, data):
        if not isinstance(data, dict):
            return data
        paths = data.get("paths") or {}
        if not isinstance(paths, dict):
            return data
        data = dict(data)
        for (section, key), source in _FROM_PATHS.items():
            body = data.get(section, {})
            if isinstance(body, dict) and key not in body:
                data[section] = {**body, key: paths.get(source, PathsParams.model_fields[source].default)}
        return data


    insight: InsightParams = InsightParams()


def _format_error(path: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not (isinstance(p, str) and p in _DISCRIMINATOR_TAGS))
    kind = first["type"]
    if kind == "extra_forbidden":
        parent = ".".join(loc.split(".")[:-1])
        ctx = first.get("ctx") or {}  # a connector entry names its own keys (sluice/connectors.py)
        allowed = ctx["allowed_keys"].split(", ") if "allowed_keys" in ctx else _allowed_keys(parent)
        hint = f"; allowed keys{' in ' + parent if parent else ''}: {', '.join(allowed)}" if allowed else ""
        return f"{path}: unknown key '{loc}'{hint}"
    value = first.get("input")
    if kind == "bool_number":
        key = ".".join(p for p in (loc, first["ctx"]["key"]) if p)
        return f"{path}: {key}: expected a number, got a boolean ({str(value[first['ctx']['key']]).lower()})"
    return f"{path}: {loc}: {first['msg'].lower()} (got {value!r})"


_DISCRIMINATOR_TAGS = {"image_folder", "cifar", "parquet", "mturk", "label_studio", "csv"}


def _allowed_keys(dotted: str) -> list[str]:
    model: type[BaseModel] | None = Params
    for part in [p for p in dotted.split(".") if p]:
        if part.isdigit() or model is None:
            continue
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return sorted(model.model_fields) if model is not None else []


def parse_params(raw: object, path: str = DEFAULT_PARAMS) -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        params = Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(path, err)) from None
    params = _apply_env(params, path)
    _check_across_fields(params, path)
    return params


def _check_across_fields(params: Params, path: str) -> None:
    """Rules that span keys (or the filesystem), checked once the whole file and environment are read."""
    root = params.lake.root
    source = "SLUICE_LAKE_ROOT" if os.environ.get("SLUICE_LAKE_ROOT") else f"{path}: lake.root"
    if not root.strip():
        raise ConfigError(f"{source}: empty; give a folder (e.g. lake) or a deltalake URI (s3://bucket/lake)")
    local = root.removeprefix("file://")
    if "://" not in local and Path(local).exists() and not Path(local).is_dir():
        raise ConfigError(f"{source}: {root} exists and is not a folder; the lake root must be a folder or a URI")
    ds = params.dataset
    if ds.val_fraction + ds.test_fraction >= 1:
        raise ConfigError(f"{path}: dataset.val_fraction + dataset.test_fraction must be < 1 (got {ds.val_fraction} + "
                          f"{ds.test_fraction}), or nothing is left for train")


def _apply_env(params: Params, path: str) -> Params:
    lake = params.lake
    if root := os.environ.get("SLUICE_LAKE_ROOT"):
        lake = lake.model_copy(update={"root": root})
    if raw_opts := os.environ.get("SLUICE_STORAGE_OPTIONS"):
        try:
            opts = json.loads(raw_opts)
            if not isinstance(opts, dict):
                raise ValueError("not an object")
        except ValueError as err:
            raise ConfigError(f"SLUICE_STORAGE_OPTIONS: must be a JSON object of strings ({err})") from None
        lake = lake.model_copy(update={"storage_options": {**lake.storage_options, **{k: str(v) for k, v in opts.items()}}})
    compute = params.compute
    if address := os.environ.get("SLUICE_DASK_SCHEDULER"):
        compute = compute.model_copy(update={"scheduler_address": address})
    return params.model_copy(update={"lake": lake, "compute": compute})


def load_params_file(path: str | os.PathLike) -> Params:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: params file not found (set SLUICE_PARAMS or run from the project root)")
    try:
        raw = load_yaml(p.read_text())
    except DuplicateKey as err:
        raise ConfigError(f"{p}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{p}:{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if raw is None:
        raise ConfigError(f"{p}: the file is empty; expected a mapping of sections such as lake:, ingest: "
                          f"(see README 'Using your own data')")
    return parse_params(raw, str(p))


@functools.cache
def load_params() -> Params:
    """The process-wide params, read once from ``$SLUICE_PARAMS`` or ``params.yaml``."""
    return load_params_file(os.environ.get("SLUICE_PARAMS", DEFAULT_PARAMS))
