"""The class list and how raw label text maps onto it; the check that fails a run on a likely typo."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import polars as pl

from sluice.errors import ConfigError, InputError


@dataclass(frozen=True)
class Vocabulary:
    """The class list and how raw label text maps onto it: trim, casefold, synonyms, canonical spelling."""

    classes: tuple[str, ...]
    synonyms: dict[str, str]

    @classmethod
    def build(cls, classes: list[str] | None, synonyms: dict[str, str], source_labels: pl.Series) -> Vocabulary:
        syn = {k.strip().casefold(): v.strip() for k, v in synonyms.items()}
        if classes is None:
            mapped = _map_synonyms(source_labels.drop_nulls().str.strip_chars().str.to_lowercase(), syn)
            classes = sorted(set(mapped.str.to_lowercase().drop_nulls().to_list()) - {""})
            if not classes:
                raise ConfigError("labels.classes is null and no source carries labels to infer it from; "
                                  "set labels.classes in params.yaml")
        if len({c.casefold() for c in classes}) != len(classes):
            raise ConfigError(f"labels.classes: classes must differ after case folding (got {classes})")
        return cls(tuple(classes), syn)

    def normalize(self, labels: pl.Series) -> pl.Series:
        """Each label as its canonical class name, null where it is not one of the classes."""
        key = _map_synonyms(labels.str.strip_chars().str.to_lowercase(), self.synonyms).str.to_lowercase()
        return key.replace_strict({c.casefold(): c for c in self.classes}, default=None, return_dtype=pl.String)

    def index(self, names: pl.Series) -> np.ndarray:
        codes = names.replace_strict({c: i for i, c in enumerate(self.classes)}, return_dtype=pl.Int64)
        return codes.to_numpy().astype(np.int64, copy=False)


def _map_synonyms(keys: pl.Series, synonyms: dict[str, str]) -> pl.Series:
    return keys.replace(synonyms) if synonyms else keys


def check_unknown_labels(unknown: pl.Series, total: int, vocab: Vocabulary, max_share: float) -> None:
    """Fail (InputError, exit 2) when more than ``max_share`` of ``total`` votes carry a label outside the classes.

    The message names the most common unknown labels with their counts and, where one exists, the fix:
    a class they are a near-spelling of (a synonym or a typo in labels.classes), or class indices.
    """
    if total == 0 or unknown.len() <= max_share * total:
        return
    raise InputError(f"{unknown.len()} of {total} votes ({unknown.len() / total:.1%}) carry a label outside "
                     f"labels.classes (more than labels.max_unknown_label_share {max_share:.1%}); most common: "
                     f"{unknown_labels(unknown, vocab)}")


def unknown_labels(unknown: pl.Series, vocab: Vocabulary, entry: str = "the vote export's labels.exports entry") -> str:
    """The most common of ``unknown`` labels with their counts, and, where one exists, the fix: a class they are a
    near-spelling of (a synonym or a typo in labels.classes), or class indices (named by ``class_names`` on
    ``entry``)."""
    top = unknown.str.strip_chars().value_counts(sort=True).head(5)
    names = top[top.columns[0]].to_list()
    listed = ", ".join(f"'{n}' x{c}" for n, c in zip(names, top["count"].to_list()))
    hints = []
    folded = {c.casefold(): c for c in vocab.classes}
    for name in names:
        close = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.75)
        if close:
            hints.append(f"'{name}' -> '{folded[close[0]]}'")
    suggestion = ""
    if hints:
        suggestion = (f"; near-spellings of classes: {', '.join(hints)} (fix labels.classes, or add them to "
                      f"labels.synonyms)")
    elif all(n.isdigit() and int(n) < len(vocab.classes) for n in names):
        suggestion = (f"; they look like class indices: set class_names on {entry} "
                      "(the class names in index order) or map them with labels.synonyms "
                      f"(e.g. '0': {vocab.classes[0]!r})")
    return f"{listed}{suggestion}"
