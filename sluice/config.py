"""Typed, validated pipeline parameters loaded once from ``params.yaml``.

Every section is a pydantic model that forbids unknown keys, so a typo is an error that names the key
instead of a silently ignored setting. Deployment settings (where the lake lives, how to reach object
storage, which Dask cluster to use) can be overridden from the environment so the same params file
runs on a laptop and in production:

- ``SLUICE_PARAMS``            path of the params file (default ``params.yaml``)
- ``SLUICE_LAKE_ROOT``         lake root, a local folder or any deltalake URI (``s3://bucket/lake``)
- ``SLUICE_STORAGE_OPTIONS``   JSON object of deltalake storage options (credentials stay out of files)
- ``SLUICE_DASK_SCHEDULER``    address of an existing Dask scheduler (``tcp://host:8786``)
- ``SLUICE_SSE_KMS_KEY_ID``    KMS key of SSE-KMS for an S3 lake with ``lake.sse: aws:kms`` (sluice/storage.py)
- ``SLUICE_ROLE``              the role of ``access.roles`` queries run as (sluice/access.py)

The section models live in ``sluice/params_data.py`` (the data side) and ``sluice/params_train.py``
(the model side) on the base in ``sluice/params_base.py``; this module assembles them into ``Params``
and loads, validates and reports.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError, model_validator

from sluice.errors import ConfigError
from sluice.params_access import AccessParams
from sluice.params_base import Section
from sluice.params_data import (
    LakeParams,
    ComputeParams,
    DemoParams,
    IngestParams,
    CleanParams,
    DedupParams,
    DatasetParams,
    CrawlParams,
    QualityParams,
    ExportParams,
    MaintainParams,
    PrivacyParams,
    PathsParams,
)
from sluice.params_labels import LabelsParams
from sluice.params_train import (AugmentParams, CompressParams, InsightParams, ReportParams,  # noqa: F401 (AugmentParams: public)
                                 TrainParams)
from sluice.strict_yaml import DuplicateKey, load_yaml

DEFAULT_PARAMS = "params.yaml"


_FROM_PATHS = {("train", "snapshot"): "dataset", ("export", "out_dir"): "dataset", ("compress", "snapshot"): "dataset",
               ("quality", "snapshot_dir"): "dataset", ("quality", "manifests_dir"): "manifests"}


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
    insight: InsightParams = InsightParams()
    access: AccessParams = AccessParams()
    report: ReportParams = ReportParams()

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



def format_error(path: str, err: ValidationError) -> str:
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
        raise ConfigError(format_error(path, err)) from None
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
    from sluice.storage import check_transport

    check_transport(params.lake)
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
