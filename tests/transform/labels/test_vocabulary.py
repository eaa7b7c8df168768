"""Class list, synonyms and the check that fails a run on labels outside the classes."""

from __future__ import annotations

import polars as pl
import pytest

from sluice.errors import InputError
from transform.labels.vocabulary import Vocabulary, check_unknown_labels


def test_vocabulary_normalises_and_infers():
    vocab = Vocabulary.build(None, {" Kitty ": "cat"}, pl.Series(["Cat", " dog", "kitty", None]))
    assert vocab.classes == ("cat", "dog")
    assert vocab.normalize(pl.Series([" CAT ", "Kitty", "Dog", "fish"])).to_list() == ["cat", "cat", "dog", None]


