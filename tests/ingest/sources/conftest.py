"""Helpers for the source-connector tests: small real PNGs and one-source params."""

import io

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def png():
    def make(seed: int, size=(8, 8)) -> bytes:
        rng = np.random.default_rng(seed)
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    return make


@pytest.fixture
def source_params(make_params):
    """Params with one ``ingest.sources`` entry (and batch_rows 3, so batching is exercised)."""

    def build(**source):
        return make_params({"ingest": {"batch_rows": 3, "sources": [{"name": "s", **source}]}})

    return build
