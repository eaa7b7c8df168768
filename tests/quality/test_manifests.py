"""Reconciliation entries found in stage manifests (pure function, no GX)."""

from quality.manifests import reconciliations


def test_finds_reconcile_and_ingest_entries_at_any_depth():
    body = {"reconcile": {"rows_in": 10, "images": 7, "quarantined": 2, "merged": 1},
            "sources": {"a": {"seen": 5, "inserted": 3, "already_present": 1, "quarantined": 0, "reasons": {}}},
            "parts": [{"rows_in": 4, "out": 4}], "versions": {"images": 3}, "flag": True}
    assert list(reconciliations(body)) == [
        ("parts[0]", 4, 4), ("reconcile", 10, 10), ("sources.a", 5, 4)]


def test_booleans_are_not_counts():
    assert list(reconciliations({"reconcile": {"rows_in": 2, "ok": True, "out": 2}})) == [("reconcile", 2, 2)]
