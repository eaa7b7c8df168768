"""Pseudonymous annotators: worker IDs replaced by a keyed hash before they land anywhere.

HMAC-SHA256 keyed by ``$SLUICE_PSEUDONYM_KEY``: the same worker maps to the same pseudonym on every
run and machine that shares the key, and nobody without the key can test a guessed raw ID. The key
never goes into a file Sluice writes; lose it and new votes of known workers get new pseudonyms.
Ingesting votes without the key is refused unless ``privacy.pseudonymize_workers: false``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable

from sluice.errors import ConfigError

KEY_ENV = "SLUICE_PSEUDONYM_KEY"
PREFIX = "w-"


def _key() -> bytes:
    key = os.environ.get(KEY_ENV, "")
    if not key:
        raise ConfigError(f"${KEY_ENV} is not set: crowd worker IDs are pseudonymised with it (HMAC-SHA256) "
                          "before they land; set it to a long secret and keep it stable, or set "
                          "privacy.pseudonymize_workers: false in params.yaml to store raw worker IDs")
    return key.encode()


def pseudonym(raw_id: str, key: bytes | None = None) -> str:
    """The pseudonym of one raw worker ID (needs the key)."""
    return PREFIX + hmac.new(key or _key(), raw_id.encode(), hashlib.sha256).hexdigest()[:20]


def worker_pseudonymizer(enabled: bool) -> Callable[[str], str]:
    """The function votes' worker IDs go through before landing: the pseudonym, or the ID itself when disabled.

    Raises ConfigError (exit 2) up front when enabled and the key is missing.
    """
    if not enabled:
        return lambda raw_id: raw_id
    key = _key()
    return lambda raw_id: pseudonym(raw_id, key)
