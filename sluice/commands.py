"""Core commands: ``sluice tables``, ``history TABLE``, ``sql QUERY``, ``shell``, ``duckdb-init``.

Listings share one output contract (:mod:`sluice.output`): ``--format table|csv|json|jsonl``, ``-o FILE``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from sluice.errors import InputError
from sluice.output import FORMATS, add_output_args, emit

AT_HELP = ("read tables as of a version: TABLE=@N (Delta version N; a bare N works too), TABLE=REF (the version "
           "a dataset version -- git tag, branch or commit -- recorded for TABLE), or REF alone (every table REF "
           "recorded). Repeatable")
ROLE_HELP = ("query as this role of params access.roles (default $SLUICE_ROLE; none: full access): only its "
             "tables and columns, masked columns hashed, no direct file reads (docs/access.md)")


def register(sub) -> None:
    t = sub.add_parser("tables", help="list the lake's tables: layer, rows, version")
    add_output_args(t)
    t.set_defaults(func=_tables)

    h = sub.add_parser("history", help="show a table's Delta commits (version, time, operation, run)")
    h.add_argument("table")
    h.add_argument("--limit", type=int, default=20, help="newest N commits (default 20)")
    add_output_args(h)
    h.set_defaults(func=_history)

    s = sub.add_parser("sql", help="run a read-only DuckDB query; every table is a view under its name",
                       description="Run one read-only SQL statement (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, "
                                   "EXPLAIN) with DuckDB. Every Delta table is a view under its own name; files "
                                   "outside the lake cannot be read. --at pins tables to past versions.")
    s.add_argument("query")
    add_output_args(s, (*FORMATS, "parquet"), max_rows=True)
    s.add_argument("--at", action="append", metavar="PIN", help=AT_HELP)
    s.add_argument("--role", metavar="NAME", help=ROLE_HELP)
    s.set_defaults(func=_sql)

    from sluice.shell import register as register_shell

    register_shell(sub, AT_HELP, ROLE_HELP)


def _lake():
    from sluice.lake import Lake

    return Lake.from_params()


def _tables(args) -> int:

    from sluice.catalog import TABLES

    lake = _lake()
    rows = []
    for name, spec in TABLES.items():
        exists = lake.exists(name)
        rows.append({"table": name, "layer": spec.layer, "rows": lake.count(name) if exists else None,
                     "version": lake.version(name) if exists else None, "keys": ", ".join(spec.keys)})
    emit(rows, args)
    return 0


def _history(args) -> int:
    from sluice.lake_health import oldest_readable, readable

    lake = _lake()
    history = lake.history(args.table)
    entries = history[: args.limit]
    rows = []
    for e in entries:
        ts = e.get("timestamp")
        when = dt.datetime.fromtimestamp(ts / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if ts else None
        rows.append({"version": e.get("version"), "time_utc": when, "operation": e.get("operation"),
                     "sluice": e.get("sluice.operation"), "run_id": e.get("sluice.run_id"),
                     "metrics": json.dumps(e.get("operationMetrics") or {}, sort_keys=True)})
    emit(rows, args)
    shown = [e["version"] for e in entries if e.get("version") is not None]
    vacuumed = any(str(e.get("operation", "")).startswith("VACUUM") for e in history)  # else skip the file checks
    gone = [v for v in shown if vacuumed and not readable(lake, args.table, v)]
    if gone:
        oldest = oldest_readable(lake, args.table)
        print(f"note: versions before {oldest} were vacuumed (their data files are gone, e.g. {max(gone)}); time "
              f"travel reads {oldest} or later", file=sys.stderr)
    return 0


def _sql(args) -> int:
    from sluice.access import resolve
    from sluice.sql import parse_pins, query

    lake = _lake()
    result = query(args.query, lake, parse_pins(args.at), resolve(args.role))
    if args.format == "parquet":
        if not args.output:
            raise InputError("--format parquet needs --output FILE")
        import pyarrow.parquet as pq

        pq.write_table(result, args.output)
        print(f"wrote {result.num_rows} rows to {args.output}", file=sys.stderr)
        return 0
    emit(result, args)
    return 0
