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




def test_unknown_labels_within_the_allowed_share_pass():
    vocab = Vocabulary(("cat", "dog"), {})
    check_unknown_labels(pl.Series(["fish"]), 100, vocab, 0.01)


def test_unknown_labels_above_the_share_name_the_top_ones_and_a_fix():
    vocab = Vocabulary(("airplane", "automobil"), {})
    with pytest.raises(InputError) as err:
        check_unknown_labels(pl.Series(["automobile"] * 30 + ["Plane"] * 2), 100, vocab, 0.01)
    assert "32 of 100 votes (32.0%)" in str(err.value) and "'automobile' x30, 'Plane' x2" in str(err.value)
    assert "'automobile' -> 'automobil'" in str(err.value)
