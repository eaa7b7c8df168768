"""Fixtures of the vote connector tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def pseudonym_key(monkeypatch):
    """Vote ingestion refuses to run without the pseudonym key (sluice.privacy)."""
    monkeypatch.setenv("SLUICE_PSEUDONYM_KEY", "test-key-not-secret")
