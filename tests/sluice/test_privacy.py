"""Pseudonymous workers: a keyed hash, stable, refused without the key unless disabled."""

from __future__ import annotations

import pytest

from sluice.errors import ConfigError
from sluice.privacy import pseudonym, worker_pseudonymizer


def test_pseudonyms_are_keyed_and_stable(monkeypatch):
    monkeypatch.setenv("SLUICE_PSEUDONYM_KEY", "k1")
    first = worker_pseudonymizer(True)("A1B2C3WORKER")
    assert first == pseudonym("A1B2C3WORKER") and first.startswith("w-") and "A1B2C3" not in first
    assert worker_pseudonymizer(True)("A1B2C3WORKER") == first
    monkeypatch.setenv("SLUICE_PSEUDONYM_KEY", "k2")
    assert worker_pseudonymizer(True)("A1B2C3WORKER") != first


def test_refused_without_the_key_unless_disabled(monkeypatch):
    monkeypatch.delenv("SLUICE_PSEUDONYM_KEY", raising=False)
    with pytest.raises(ConfigError, match="SLUICE_PSEUDONYM_KEY is not set.*privacy.pseudonymize_workers: false"):
        worker_pseudonymizer(True)
    assert worker_pseudonymizer(False)("W1") == "W1"
