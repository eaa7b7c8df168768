"""Reconciliation counts read back from the stage manifests in ``data/manifests/``.

Stages record ``sluice.runs.reconcile`` results (``{"rows_in": n, <part>: k, ...}``) anywhere in their
manifest; ingest summaries record ``seen = inserted + already_present + quarantined`` per source. The
gate of a layer re-checks the manifests of that layer's stages, so a stage that lost rows cannot pass
even if it forgot to fail itself.
"""

from __future__ import annotations

from collections.abc import Iterator

STAGES = {
    "bronze": ("ingest_public", "ingest_crowd", "crawl"),
    "silver": ("clean", "dedup", "labels"),
    "gold": ("dataset",),
    "snapshot": ("export",),
}
_INGEST_PARTS = ("inserted", "already_present", "quarantined")


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def reconciliations(body, path: str = "") -> Iterator[tuple[str, int, int]]:
    """Every (where, rows in, rows accounted) entry found in a manifest, depth first."""
    if isinstance(body, dict):
        if _count(body.get("rows_in")):
            parts = [v for k, v in body.items() if k != "rows_in" and _count(v)]
            yield path or "reconcile", body["rows_in"], sum(parts)
        elif _count(body.get("seen")) and all(_count(body.get(k)) for k in _INGEST_PARTS):
            yield path or "sources", body["seen"], sum(body[k] for k in _INGEST_PARTS)
        for key, value in sorted(body.items()):
            if isinstance(value, (dict, list)):
                yield from reconciliations(value, f"{path}.{key}" if path else str(key))
    elif isinstance(body, list):
        for i, value in enumerate(body):
            yield from reconciliations(value, f"{path}[{i}]")


def reconciliation_frames(env, layer: str):
    """One pandas frame: a row per reconciliation entry of the layer's stage manifests."""
    import pandas as pd

    rows = []
    for stage in STAGES[layer]:
        body = env.manifest(stage)
        if body is None:
            continue
        if "__unreadable__" in body:
            rows.append({"entry": stage, "rows_expected": 0, "rows_actual": 0, "readable": False})
            continue
        for where, rows_in, accounted in reconciliations(body):
            rows.append({"entry": f"{stage}:{where}", "rows_expected": rows_in, "rows_actual": accounted,
                         "readable": True})
    yield pd.DataFrame(rows, columns=["entry", "rows_expected", "rows_actual", "readable"])
