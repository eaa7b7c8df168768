"""Silver and gold stages: clean, dedup, labels, dataset (Dask for per-image work, Polars for tables)."""
