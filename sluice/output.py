"""One output contract for every listing command (``tables``, ``history``, ``sql``, ``dataset list|diff``).

``--format table`` is for people: aligned columns, floats rounded to 6 significant digits, bytes
shown as ``<n bytes>``, long cells cut with a visible ``…``. ``csv``, ``json`` (one array) and
``jsonl`` (one object per line) are for programs: exact values, nothing cut. ``-o FILE`` writes
any of them to a file instead of stdout.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pyarrow loads in the commands that print, not for `sluice --help`
    import pyarrow as pa

FORMATS = ("table", "csv", "json", "jsonl")
MAX_CELL = 60  # characters of one cell in table format


def add_output_args(parser, formats: tuple[str, ...] = FORMATS, max_rows: bool = False) -> None:
    parser.add_argument("--format", choices=formats, default="table",
                        help="table (for people), csv, json (an array) or jsonl (one object per line)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    if max_rows:
        parser.add_argument("--max-rows", type=int, default=100, help="rows shown in table format (default 100)")


def emit(rows: pa.Table | list[dict], args) -> None:
    """Print (or write to ``args.output``) ``rows`` in ``args.format``."""
    import pyarrow as pa

    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
    text = render(table, args.format, getattr(args, "max_rows", None))
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text + "\n")
        print(f"wrote {table.num_rows} row(s) to {args.output}", file=sys.stderr)
    else:
        print(text)


def render(table: pa.Table, fmt: str, max_rows: int | None = None) -> str:
    """Format an Arrow table as an aligned text table, CSV, a JSON array or JSON lines."""
    import pyarrow as pa

    if fmt == "csv":
        import io

        import pyarrow.csv as pcsv

        buf = io.BytesIO()
        pcsv.write_csv(_printable(table), buf)
        return buf.getvalue().decode().rstrip("\n")
    rows = table.to_pylist()
    if fmt == "json":
        return json.dumps([{k: _json(v) for k, v in r.items()} for r in rows], indent=1)
    if fmt == "jsonl":
        return "\n".join(json.dumps({k: _json(v) for k, v in r.items()}) for r in rows)
    shown = rows if max_rows is None else rows[:max_rows]
    header = table.column_names
    cells = [[_cell(r[c]) for c in header] for r in shown]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(header)]
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in table.schema]

    def fmt_row(vals):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric)).rstrip()

    lines = [fmt_row(header), "  ".join("-" * w for w in widths)] + [fmt_row(r) for r in cells]
    if len(rows) > len(shown):
        lines.append(f"... {len(rows) - len(shown)} more rows (use --max-rows or --format csv)")
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _printable(table: pa.Table) -> pa.Table:
    import pyarrow as pa

    cols = [pa.array([f"<{len(v)} bytes>" if v is not None else None for v in c.to_pylist()], pa.string())
            if pa.types.is_binary(c.type) or pa.types.is_large_binary(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(cols, names=table.column_names)


def _json(v):
    if isinstance(v, bytes):
        return f"<{len(v)} bytes>"
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return v
