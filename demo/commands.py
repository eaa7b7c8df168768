"""``sluice demo``: write the built-in demo data set."""

from __future__ import annotations


def register(sub) -> None:
    d = sub.add_parser("demo", help="write the built-in demo data set (and its defect inventory)",
                       description="Write the built-in demo (real handwritten digits from scikit-learn) in "
                                   "image-folder, CIFAR and Parquet layouts, with planted defects.")
    d.add_argument("--out", help="output folder (default: demo.out_dir in params.yaml)")
    d.set_defaults(func=_demo)


def _demo(args) -> int:
    from demo.generate import build_demo
    from sluice.config import load_params

    params = load_params()
    truth = build_demo(params.demo, out_dir=args.out)
    print(f"[demo] wrote {truth['counts']['files']} files to {truth['out_dir']}; inventory in {truth['out_dir']}/ground_truth.json")
    return 0
