"""Core commands: ``sluice tables``, ``sluice history TABLE``, ``sluice sql QUERY``."""

from __future__ import annotations

import datetime as dt
import json
import sys

import pyarrow as pa

from sluice.errors import InputError


def register(sub) -> None:
    t = sub.add_parser("tables", help="list the lake's tables: layer, rows, version")
    t.set_defaults(func=_tables)

    h = sub.add_parser("history", help="show a table's Delta commits (version, time, operation, run)")
    h.add_argument("table")
    h.add_argument("--limit", type=int, default=20, help="newest N commits (default 20)")
    h.set_defaults(func=_history)

    s = sub.add_parser("sql", help="run a read-only DuckDB query; every table is a view under its name",
                       description="Run one read-only SQL statement with DuckDB. Every Delta table is a view "
                                   "under its own name; --at pins a table to a past version (time travel).")
    s.add_argument("query")
    s.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    s.add_argument("--output", "-o", help="write to this file instead of stdout (required for parquet)")
    s.add_argument("--at", action="append", metavar="TABLE=VERSION", help="read TABLE as of a Delta version")
    s.add_argument("--max-rows", type=int, default=100, help="rows shown in table format (default 100)")
    s.set_defaults(func=_sql)


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
    print(render(pa.Table.from_pylist(rows), "table"))
    return 0


def _history(args) -> int:
    from sluice.lake_health import oldest_readable, readable

    lake = _lake()
    entries = lake.history(args.table)[: args.limit]
    rows = []
    for e in entries:
        ts = e.get("timestamp")
        when = dt.datetime.fromtimestamp(ts / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if ts else None
        rows.append({"version": e.get("version"), "time_utc": when, "operation": e.get("operation"),
                     "sluice": e.get("sluice.operation"), "run_id": e.get("sluice.run_id"),
                     "metrics": json.dumps(e.get("operationMetrics") or {}, sort_keys=True)[:80]})
    print(render(pa.Table.from_pylist(rows), "table"))
    shown = [e["version"] for e in entries if e.get("version") is not None]
    gone = [v for v in shown if not readable(lake, args.table, v)]
    if gone:
        oldest = oldest_readable(lake, args.table)
        print(f"note: versions before {oldest} were vacuumed (their data files are gone, e.g. {max(gone)}); time "
              f"travel reads {oldest} or later", file=sys.stderr)
    return 0


def _sql(args) -> int:
    from sluice.sql import parse_pins, query

    result = query(args.query, _lake(), parse_pins(args.at))
    if args.format == "parquet":
        if not args.output:
            raise InputError("--format parquet needs --output FILE")
        import pyarrow.parquet as pq

        pq.write_table(result, args.output)
        print(f"wrote {result.num_rows} rows to {args.output}", file=sys.stderr)
        return 0
    text = render(result, args.format, args.max_rows)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return 0


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def render(table: pa.Table, fmt: str, max_rows: int | None = None) -> str:
    """Format an Arrow table as an aligned text table, CSV or JSON lines."""
    if fmt == "csv":
        import io

        import pyarrow.csv as pcsv

        buf = io.BytesIO()
        pcsv.write_csv(_printable(table), buf)
        return buf.getvalue().decode().rstrip("\n")
    rows = table.to_pylist()
    if fmt == "json":
        return "\n".join(json.dumps({k: _json(v) for k, v in r.items()}) for r in rows)
    shown = rows if max_rows is None else rows[:max_rows]
    header = table.column_names
    cells = [[_cell(r[c]) for c in header] for r in shown]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(header)]
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in table.schema]
    fmt_row = lambda vals: "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric)).rstrip()
    lines = [fmt_row(header), "  ".join("-" * w for w in widths)] + [fmt_row(r) for r in cells]
    if len(rows) > len(shown):
        lines.append(f"... {len(rows) - len(shown)} more rows (use --max-rows or --format csv)")
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def _printable(table: pa.Table) -> pa.Table:
    cols = [pa.array([_cell(v) if v is not None else None for v in c.to_pylist()], pa.string())
            if pa.types.is_binary(c.type) or pa.types.is_large_binary(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(cols, names=table.column_names)


def _json(v):
    if isinstance(v, bytes):
        return f"<{len(v)} bytes>"
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return v
