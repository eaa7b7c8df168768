"""Every dependency pyproject.toml declares is pinned in requirements.lock: `make setup` installs from the lock
(then the project with --no-deps), so a dependency added to pyproject alone installs on no fresh machine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalised as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)).lower()


def test_every_runtime_dependency_is_in_the_lock():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lock = {_name(line) for line in (REPO / "requirements.lock").read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-"))}
    declared = [*project["dependencies"], *project["optional-dependencies"]["test"]]  # make test installs both
    missing = sorted(_name(r) for r in declared if _name(r) not in lock)
    assert not missing, f"in pyproject.toml but not pinned in requirements.lock: {missing}"
