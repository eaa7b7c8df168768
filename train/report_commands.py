"""``sluice report``: write the offline run report (train/run_report.py) and print where it is."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "report", help="write the run report: one offline HTML page (reports/run.html)",
        description="Write one self-contained HTML page about the latest run: the dataset page's sections, "
                    "training curves, the test confusion matrix, per-group metrics with confidence intervals, "
                    "label issues with thumbnails, saliency overlays, robustness curves and the compression "
                    "trade-off. Charts are inline SVG and images data URIs: it opens with no network. A section "
                    "whose stage has not run says so. Also copied to runs/<run_id>/report.html.")
    p.add_argument("--out", "-o", "--output", dest="out", metavar="FILE",
                   help="where to write it (default: report.out in params.yaml, reports/run.html)")
    p.set_defaults(func=_report)


def _report(args) -> int:
    from sluice.config import load_params
    from train.run_report import write_report

    done = write_report(load_params(), args.out)
    print(done["report"])
    if done.get("run_copy"):
        print(done["run_copy"])
    return 0
