"""``sluice ingest``."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("ingest", help="land the public sources configured in params.yaml in raw_images",
                       description="Ingest the configured public sources (image folders, CIFAR, Parquet) into "
                                   "raw_images. Idempotent: a rerun adds no rows.")
    p.add_argument("--source", help="ingest only the source with this name")
    p.set_defaults(func=_ingest)


def _ingest(args) -> int:
    from ingest.public import run
    from sluice.config import load_params

    run(load_params(), only=args.source)
    return 0

