"""Ingest: land raw images, labels and votes in the bronze Delta tables, idempotently, with provenance."""
