"""``sluice votes ingest``: the vote connectors from the command line."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("votes", help="land crowd vote exports (labels.exports) in crowd_votes",
                       description="Land the vote exports of labels.exports (MTurk CSV, Label Studio JSON, long CSV, wide tables) "
                                   "in crowd_votes. Idempotent: a rerun adds no votes. Aggregate with `sluice labels aggregate`.")
    cmds = p.add_subparsers(dest="votes_command", metavar="ACTION", required=True)
    i = cmds.add_parser("ingest", help="land the exports (all, or --export NAME)")
    i.add_argument("--export", help="only the export with this name")
    i.set_defaults(func=_ingest)


def _ingest(args) -> int:
    from ingest.votes.land import run
    from sluice.config import load_params

    run(load_params(), only=args.export)
    return 0
