"""``sluice labels aggregate | workers`` (landing vote exports is ``sluice votes ingest``)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("labels", help="crowd labels: aggregate votes, show workers",
                       description="Aggregate the crowd votes of crowd_votes (majority vote, Dawid-Skene or one-coin) "
                                   "with the labels sources carry into `labels` and `annotators`. Land vote exports "
                                   "with `sluice votes ingest`. Settings: the `labels` section of params.yaml.")
    cmds = p.add_subparsers(dest="labels_command", metavar="ACTION", required=True)
    a = cmds.add_parser("aggregate", help="recompute labels and annotators from every vote and source label")
    a.set_defaults(func=_aggregate)
    w = cmds.add_parser("workers", help="list annotators: votes, estimated accuracy with its interval, flags")
    w.set_defaults(func=_workers)
    r = cmds.add_parser("worker", help="the pseudonym of a raw worker ID (needs $SLUICE_PSEUDONYM_KEY) and its row")
    r.add_argument("--reveal", metavar="RAW_ID", required=True, help="the worker ID as the crowd platform shows it")
    r.set_defaults(func=_worker)


def _aggregate(args) -> int:
    from sluice.config import load_params
    from transform.labels.stage import run

    run(load_params())
    return 0


def _workers(args) -> int:
    import polars as pl

    from sluice.output import render
    from sluice.lake import Lake

    lake = Lake.from_params()
    table = pl.from_arrow(lake.read("annotators")).sort("accuracy", descending=True, nulls_last=True).drop("confusion", "run_id")
    print(render(table.to_arrow(), "table"))
    return 0


def _worker(args) -> int:
    import pyarrow.compute as pc

    from sluice.lake import Lake
    from sluice.privacy import pseudonym

    name = pseudonym(args.reveal)
    lake = Lake.from_params()
    rows = lake.read("annotators", filter=pc.field("worker_id") == name).to_pylist() if lake.exists("annotators") else []
    detail = "no annotators row" if not rows else ", ".join(
        f"{k} {rows[0][k]}" for k in ("votes", "accuracy", "accuracy_low", "accuracy_high", "is_spammer", "is_adversarial"))
    print(f"{name}: {detail}")
    return 0
