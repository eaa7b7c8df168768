"""Crowd vote connectors (family ``votes`` of the connector registry): one module per export kind.

``mturk`` (batch results CSV), ``label_studio`` (JSON export), ``csv`` (long CSV, JSON records, or lines without
a header), ``wide`` (one row per item, one column per answer: CSV, Parquet, .npy/.npz/.pt), ``ground_truth``
(SageMaker), ``labelbox`` (NDJSON), ``nested`` (a JSON / YAML mapping of mappings). Each module holds
its config model and a reader ``(export) -> Parsed``; ``land`` writes what they read to ``crowd_votes``.
"""
