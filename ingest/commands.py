"""``sluice ingest`` and ``sluice demo``."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("ingest", help="land the public sources configured in params.yaml in raw_images",
                       description="Ingest the configured public sources (image folders, CIFAR, Parquet) into "
                                   "raw_images. Idempotent: a rerun adds no rows.")
    p.add_argument("--source", help="ingest only the source with this name")
    p.set_defaults(func=_ingest)

    d = sub.add_parser("demo", help="write the built-in demo data set (and its defect inventory)",
                       description="Write the built-in demo (real handwritten digits from scikit-learn) in "
                                   "image-folder, CIFAR and Parquet layouts, with planted defects.")
    d.add_argument("--out", help="output folder (default: demo.out_dir in params.yaml)")
    d.set_defaults(func=_demo)


def _ingest(args) -> int:
    from ingest.public import run
    from sluice.config import load_params

    run(load_params(), only=args.source)
    return 0


def _demo(args) -> int:
    from ingest.demo import build_demo
    from sluice.config import load_params

    params = load_params()
    truth = build_demo(params.demo, out_dir=args.out)
    print(f"[demo] wrote {truth['counts']['files']} files to {truth['out_dir']}; inventory in {truth['out_dir']}/ground_truth.json")
    return 0
