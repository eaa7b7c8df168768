"""Params of the crowd side: vote exports (ingest/votes) and label aggregation (transform/labels)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationError
from pydantic_core import PydanticCustomError

from sluice.params_base import Section


def _item_key(key: str) -> str:
    from sluice.items import check_key  # here: sluice.items imports polars, and `sluice --help` loads no params

    return check_key(key)


class LabelColumns(Section):
    """One label an item kept in two columns of a larger table, a row per vote: a vote export's own truth column
    (CIFAR-10H's ``true_category`` beside every trial) or its control answers (Toloka's ``GOLDEN:result``, Figure
    Eight's ``<question>_gold``). Rows without a label are passed over; an item given two labels is an error."""

    path: str = Field(min_length=1)
    item_column: str = Field(min_length=1)
    label_column: str = Field(min_length=1)
    item_key: Annotated[str, AfterValidator(_item_key)] = "auto"  # as the vote export's: its names resolve alike
    delimiter: str | None = None
    class_names: list[str] | None = Field(default=None, min_length=1)  # whole-number labels index into it


SOURCES = "sources"  # ground_truth: the labels the image sources give (CIFAR's own beside CIFAR-10H's votes)


def _labels_file(value: object) -> str | LabelColumns | None:
    """A ``gold_file`` / ``ground_truth`` value: a file's path, or a mapping naming two columns of a table."""
    if value is None or isinstance(value, (str, LabelColumns)):
        return value or None
    if not isinstance(value, dict):
        raise PydanticCustomError("labels_file", "{msg}", {
            "msg": "a file's path, or a mapping with path, item_column and label_column"})
    try:
        return LabelColumns.model_validate(value)
    except ValidationError as err:
        first = min(err.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a misspelt key, before what it misses
        loc = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            msg = f"unknown key '{loc}'; allowed keys: {', '.join(LabelColumns.model_fields)}"
        elif first["type"] == "missing":
            msg = f"missing key '{loc}' (a mapping names path, item_column and label_column)"
        else:
            error = (first.get("ctx") or {}).get("error")
            msg = f"{loc}: {error if error is not None else first['msg'].lower()}"
        raise PydanticCustomError("labels_file", "{msg}", {"msg": msg}) from None


LabelsFile = Annotated[object, AfterValidator(_labels_file)]


def _ground_truth(value: object) -> str | LabelColumns | None:
    return value if value == SOURCES else _labels_file(value)


GroundTruth = Annotated[object, AfterValidator(_ground_truth)]


def label_file_path(value: str | dict | LabelColumns | None) -> str | None:
    """The file a ``gold_file`` / ``ground_truth`` value reads: a path, or the path of its columns (raw or parsed)."""
    if isinstance(value, LabelColumns):
        return value.path
    if isinstance(value, dict):
        return value.get("path")
    return None if value == SOURCES else value


def _vote_export(entry: object) -> object:
    """One ``labels.exports`` entry validated by the config model its ``kind`` registers (sluice.connectors)."""

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
    prior_accuracy: Annotated[float, Field(gt=0, lt=1)] = 0.7  # Beta prior mean of a worker's accuracy
    prior_strength: Annotated[float, Field(ge=0)] = 4.0  # its weight in pseudo-votes
    # dawid_skene: pseudo-votes per worker and true class of a prior with the worker's own accuracy and the crowd's
    # confusions (0: classic maximum-likelihood EM)
    confusion_prior: Annotated[float, Field(ge=0)] = 30.0


class LabelsParams(Section):
    """Crowd vote connectors (ingest/votes) and label aggregation (transform/labels)."""

    exports: list[VoteExportEntry] = Field(default_factory=list)
    classes: list[str] | None = None
    synonyms: dict[str, str] = Field(default_factory=dict)
    policy: Literal["crowd_over_given", "given_over_crowd", "agree_only"] = "given_over_crowd"
    # per source (raw_images.source) overrides of `policy`, e.g. {scraped: crowd_over_given}
    source_policy: dict[str, Literal["crowd_over_given", "given_over_crowd", "agree_only"]] = Field(default_factory=dict)
    method: Literal["dawid_skene", "majority", "one_coin"] = "dawid_skene"
    min_votes: Annotated[int, Field(ge=1)] = 1
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.6  # a 2-of-3 majority (0.67) resolves
    max_unknown_label_share: Annotated[float, Field(ge=0, le=1)] = 0.01  # more votes outside the classes fail the stage
    gold_file: LabelsFile = None  # known answers: pin their items, seed the workers' models
    # true labels the crowd is scored against, never used to label; "sources": the image sources' own labels
    ground_truth: GroundTruth = None
    em: EmParams = EmParams()
    flag_min_votes: Annotated[int, Field(ge=1)] = 20
    flag_level: Annotated[float, Field(gt=0, lt=1)] = 0.95  # confidence level of the accuracy interval behind flags
    spammer_max_information: Annotated[float, Field(ge=0, le=1)] = 0.15
    seed: int = 0
