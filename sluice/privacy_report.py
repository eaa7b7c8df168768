"""``sluice privacy report``: what the lake holds of personal data and what was done about it, in numbers.

Rows of (section, item, count, share, detail): images whose metadata was stripped at landing (the
crawler records ``gps_removed`` in ``raw_images.extra``; a landing that records ``metadata_stripped``
counts too), faces blurred (when ``images`` has a face column), crowd workers and whether they are
pseudonyms, the subjects images show (patients) and whether they are pseudonyms, erasures performed, roles defined (``access.roles``, when params have it) and, per
source, its licences and the share of its images with no known licence.
"""

from __future__ import annotations

import json
import re

_PSEUDONYM = re.compile(r"^w-[0-9a-f]{20}$")
_UNKNOWN_LICENCES = {"", "unknown", "none", "n/a", "?"}
FACE_COLUMNS = ("faces_blurred", "face_blurred", "faces")  # whichever the face-anonymisation stage writes


def _row(section: str, item: str, count: int | None, share: float | None = None, detail: str = "") -> dict:
    return {"section": section, "item": item, "count": count, "share": None if share is None else round(share, 4),
            "detail": detail}


def report(lake, params) -> list[dict]:
    rows = []
    rows += _metadata(lake)
    rows += _faces(lake, params)
    rows += _workers(lake, params)
    rows += _subjects(lake, params)
    rows += _erasures(lake)
    rows += _roles(params)
    rows += _licences(lake)
    return rows


def _metadata(lake) -> list[dict]:
    if not lake.exists("raw_images"):
        return [_row("metadata", "images landed", 0)]
    extra = lake.read("raw_images", ["extra"]).column(0).to_pylist()
    stripped = 0
    for text in extra:
        try:
            fields = json.loads(text) if text else {}
        except ValueError:
            continue
        if isinstance(fields, dict) and (fields.get("gps_removed") or fields.get("metadata_stripped")):
            stripped += 1
    total = len(extra)
    return [_row("metadata", "images landed", total),
            _row("metadata", "metadata stripped at landing", stripped, stripped / total if total else None,
                 "recorded per image by the landing (raw_images.extra)")]


def _faces(lake, params) -> list[dict]:
    """Face anonymisation (transform/faces.py): images whose faces were blurred, faces blurred, images
    dropped for a face (quarantine check ``privacy:face``); null ``faces_blurred`` = not looked at."""
    if not lake.exists("images"):
        return []
    names = lake.dataset("images").schema.names
    column = next((c for c in FACE_COLUMNS if c in names), None)
    total = lake.count("images")
    mode = getattr(getattr(params, "privacy", None), "faces", None)
    setting = f"privacy.faces: {mode}" if mode else ""
    if column is None:
        return [_row("faces", "faces blurred", None, None, "not recorded (no face anonymisation in this lake)")]
    values = lake.read("images", [column]).column(0).to_pylist()
    checked = sum(1 for v in values if v is not None)
    blurred = sum(1 for v in values if v and v not in ("keep", "none", 0, False))
    faces = sum(v for v in values if isinstance(v, int) and not isinstance(v, bool))
    dropped = _quarantined(lake, "privacy:face")
    return [_row("faces", "images checked for faces", checked, checked / total if total else None,
                 setting + ("" if checked else "; no detector ran (keep)")),
            _row("faces", "images with faces blurred", blurred, blurred / total if total else None,
                 f"images.{column}; {faces} face(s) blurred in silver pixels"),
            _row("faces", "images dropped for faces", dropped, None, "quarantine check privacy:face (never in silver)")]


def _quarantined(lake, check: str) -> int:
    if not lake.exists("quarantine"):
        return 0
    import pyarrow.dataset as ds

    return lake.dataset("quarantine").count_rows(filter=ds.field("check") == check)


def _workers(lake, params) -> list[dict]:
    mode = "pseudonymised (HMAC-SHA256)" if params.privacy.pseudonymize_workers else "raw ids (pseudonymisation off)"
    if not lake.exists("crowd_votes"):
        return [_row("workers", "crowd workers", 0, None, mode)]
    workers = set(lake.read("crowd_votes", ["worker_id"]).column(0).to_pylist())
    pseudonyms = sum(1 for w in workers if _PSEUDONYM.match(w or ""))
    return [_row("workers", "crowd workers", len(workers), None, mode),
            _row("workers", "workers stored as pseudonyms", pseudonyms, pseudonyms / len(workers) if workers else None)]


def _subjects(lake, params) -> list[dict]:
    from sluice.privacy import SUBJECT_PSEUDONYM

    mode = {True: "pseudonymised (HMAC-SHA256), the key required", False: "as given (pseudonymisation off)",
            "auto": "pseudonymised where the key was set"}[params.privacy.pseudonymize_subjects]
    names = lake.exists("raw_images") and "subject" in lake.dataset("raw_images").schema.names
    subjects = set(lake.read("raw_images", ["subject"]).column(0).to_pylist()) - {None} if names else set()
    pseudonyms = sum(1 for s in subjects if SUBJECT_PSEUDONYM.match(s))
    return [_row("subjects", "people images show (raw_images.subject)", len(subjects), None, mode),
            _row("subjects", "subjects stored as pseudonyms", pseudonyms,
                 pseudonyms / len(subjects) if subjects else None)]


def _erasures(lake) -> list[dict]:
    if not lake.exists("erasures"):
        return [_row("erasures", "erasures performed", 0)]
    table = lake.read("erasures", ["erased_at", "image_hashes", "versions_purged", "objects_purged"]).to_pylist()
    last = max((r["erased_at"] for r in table), default=None)
    images = len({h for r in table for h in r["image_hashes"]})
    versions = len({v for r in table for v in r["versions_purged"]})
    return [_row("erasures", "erasures performed", len(table), None,
                 f"last {last:%Y-%m-%d %H:%M} UTC" if last else ""),
            _row("erasures", "images erased", images),
            _row("erasures", "dataset versions purged", versions, None,
                 f"{sum(r['objects_purged'] for r in table)} DVC object(s) deleted")]


def _roles(params) -> list[dict]:
    access = getattr(params, "access", None)
    roles = getattr(access, "roles", None) or {}
    names = sorted(roles) if isinstance(roles, dict) else []
    return [_row("access", "roles defined", len(names), None, ", ".join(names) or "none (access.roles)")]


def _licences(lake) -> list[dict]:
    if not lake.exists("raw_images"):
        return []
    table = lake.read("raw_images", ["source", "license"]).to_pylist()
    per: dict[str, dict[str, int]] = {}
    for r in table:
        licence = (r["license"] or "").strip()
        per.setdefault(r["source"], {}).setdefault(licence, 0)
        per[r["source"]][licence] += 1
    rows = []
    unknown_total = 0
    for source, counts in sorted(per.items()):
        total = sum(counts.values())
        unknown = sum(n for lic, n in counts.items() if lic.lower() in _UNKNOWN_LICENCES)
        unknown_total += unknown
        known = ", ".join(f"{lic} ({n})" for lic, n in sorted(counts.items()) if lic.lower() not in _UNKNOWN_LICENCES)
        rows.append(_row("licences", source, total, unknown / total if total else None,
                         f"{known or 'no licence recorded'}; share = images without a known licence"))
    if table:
        rows.append(_row("licences", "all sources", len(table), unknown_total / len(table),
                         "share = images without a known licence"))
    return rows
