"""Shared fixtures: a throw-away lake and params built in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.config import parse_params
from sluice.lake import Lake

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.fixture
def make_params(tmp_path):
    """Build validated Params from a dict, with the lake in tmp_path unless given."""

    def build(raw: dict | None = None):
        raw = dict(raw or {})
        raw.setdefault("lake", {"root": str(tmp_path / "lake")})
        return parse_params(raw, "test-params.yaml")

    return build


@pytest.fixture
def run_cli(tmp_path):
    """Run ``sluice ...`` (or ``python -m module``) in a subprocess with a params file; return the result."""

    def run(*args: str, params: dict | None = None, module: str | None = None, cwd: Path | None = None,
            env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        import yaml

        params_path = tmp_path / "params.yaml"
        if params is not None:
            params_path.write_text(yaml.safe_dump(params))
        full_env = {**os.environ, "SLUICE_PARAMS": str(params_path), **(env or {})}
        cmd = [sys.executable, "-m", module or "sluice.cli", *args]
        return subprocess.run(cmd, cwd=cwd or tmp_path, env=full_env, capture_output=True, text=True, timeout=timeout)

    return run
