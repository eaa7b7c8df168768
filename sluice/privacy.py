"""Pseudonymous people: crowd worker IDs and the subjects images show replaced by a keyed hash before they land.

HMAC-SHA256 keyed by ``$SLUICE_PSEUDONYM_KEY``: the same worker (or patient) maps to the same pseudonym on every
run and machine that shares the key, and nobody without the key can test a guessed raw ID. The key never goes
into a file Sluice writes; lose it and new votes of known workers (new images of known patients) get new
pseudonyms. Workers and subjects are hashed in separate domains, so a worker and a patient who share a raw ID do
not share a pseudonym.

Ingesting votes without the key is refused unless ``privacy.pseudonymize_workers: false``. Subjects (a DICOM
file's ``PatientID``, a labels file's ``Patient ID`` column, ``patient00001/`` in a path) follow
``privacy.pseudonymize_subjects``: ``auto`` stores pseudonyms when the key is set and the IDs as given (said in
the ingest log) when it is not, since public sets publish their subject IDs as pseudonyms already; ``true``
refuses to land a subject without the key (a hospital's record numbers); ``false`` stores them as given.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Callable

from sluice.errors import ConfigError

KEY_ENV = "SLUICE_PSEUDONYM_KEY"
PREFIX = "w-"
SUBJECT_PREFIX = "s-"
SUBJECT_PSEUDONYM = re.compile(r"^s-[0-9a-f]{20}$")


def key_or_none() -> bytes | None:
    return os.environ.get(KEY_ENV, "").encode() or None


def _key() -> bytes:
    key = key_or_none()
    if not key:
        raise ConfigError(f"${KEY_ENV} is not set: crowd worker IDs are pseudonymised with it (HMAC-SHA256) "
                          "before they land; set it to a long secret and keep it stable, or set "
                          "privacy.pseudonymize_workers: false in params.yaml to store raw worker IDs")
    return key


def pseudonym(raw_id: str, key: bytes | None = None) -> str:
    """The pseudonym of one raw worker ID (needs the key)."""
    return PREFIX + hmac.new(key or _key(), raw_id.encode(), hashlib.sha256).hexdigest()[:20]


def subject_pseudonym(raw_id: str, key: bytes) -> str:
    """The pseudonym of one subject (a patient ID as its source gives it), in a domain apart from workers'."""
    return SUBJECT_PREFIX + hmac.new(key, b"subject\0" + raw_id.encode(), hashlib.sha256).hexdigest()[:20]


def worker_pseudonymizer(enabled: bool) -> Callable[[str], str]:
    """The function votes' worker IDs go through before landing: the pseudonym, or the ID itself when disabled.

    Raises ConfigError (exit 2) up front when enabled and the key is missing.
    """
    if not enabled:
        return lambda raw_id: raw_id
    key = _key()
    return lambda raw_id: pseudonym(raw_id, key)


def subject_pseudonymizer(mode: str | bool) -> Callable[[str | None], str | None] | None:
    """The function an image's subject goes through before it lands, or None where subjects land as given
    (``mode`` false, or ``auto`` without the key). ``True`` without the key returns a function that refuses the
    first subject it meets (ConfigError, exit 2): most sources name none, and those must not need a key."""
    key = key_or_none()
    if mode is False or mode == "auto" and key is None:
        return None
    if key is None:
        def refuse(raw_id: str | None) -> str | None:
            if raw_id is None:
                return None
            raise ConfigError(f"${KEY_ENV} is not set and privacy.pseudonymize_subjects is true: the images name the "
                              "person they show (a patient ID), stored only as a keyed pseudonym (HMAC-SHA256); set "
                              "the key to a long secret and keep it stable, or set privacy.pseudonymize_subjects: "
                              "auto or false in params.yaml to store the IDs as given")
        return refuse
    return lambda raw_id: None if raw_id is None else subject_pseudonym(raw_id, key)
