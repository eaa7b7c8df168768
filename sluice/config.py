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
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sluice.errors import ConfigError

DEFAULT_PARAMS = "params.yaml"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class _SourceBase(Section):
    name: str = Field(min_length=1)
    path: str = Field(min_length=1)
    license: str | None = None


class ImageFolderSource(_SourceBase):
    kind: Literal["image_folder"]


class CifarSource(_SourceBase):
    kind: Literal["cifar"]
    layout: Literal["python", "binary"] = "python"
    variant: Literal["cifar10", "cifar100"] = "cifar10"
    label_level: Literal["fine", "coarse"] = "fine"


class ParquetSource(_SourceBase):
    kind: Literal["parquet"]
    image_column: str = "image"
    label_column: str | None = "label"
    path_column: str | None = None
    split_column: str | None = None
    class_names: list[str] | None = None


Source = Annotated[Union[ImageFolderSource, CifarSource, ParquetSource], Field(discriminator="kind")]


class IngestParams(Section):
    batch_rows: Annotated[int, Field(ge=1)] = 2000
    max_file_bytes: Annotated[int, Field(ge=1)] = 50_000_000
    sources: list[Source] = Field(default_factory=list)


class Params(Section):
    seed: int = 0
    lake: LakeParams = LakeParams()
    compute: ComputeParams = ComputeParams()
    demo: DemoParams = DemoParams()
    ingest: IngestParams = IngestParams()


def _format_error(path: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not (isinstance(p, str) and p in _DISCRIMINATOR_TAGS))
    kind = first["type"]
    if kind == "extra_forbidden":
        parent = ".".join(loc.split(".")[:-1])
        allowed = _allowed_keys(parent)
        hint = f"; allowed keys{' in ' + parent if parent else ''}: {', '.join(allowed)}" if allowed else ""
        return f"{path}: unknown key '{loc}'{hint}"
    value = first.get("input")
    return f"{path}: {loc}: {first['msg'].lower()} (got {value!r})"


_DISCRIMINATOR_TAGS = {"image_folder", "cifar", "parquet"}


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
    return _apply_env(params, path)


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
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{p}:{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    return parse_params(raw, str(p))


@functools.cache
def load_params() -> Params:
    """The process-wide params, read once from ``$SLUICE_PARAMS`` or ``params.yaml``."""
    return load_params_file(os.environ.get("SLUICE_PARAMS", DEFAULT_PARAMS))
