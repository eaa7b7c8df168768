"""The lake from DuckDB's own tools: ``sluice shell`` and ``sluice duckdb-init``.

``sluice duckdb-init > lake.sql`` prints the SQL (:func:`sluice.sql.setup_statements`) that makes a
stock ``duckdb`` session see every table as a view, with the delta extension loaded from the
``duckdb-ext-delta`` package (no download): ``duckdb -init lake.sql`` or ``.read lake.sql``.
``sluice shell`` starts that CLI (the ``duckdb-cli`` package's binary) with the same script, or, when
no ``duckdb`` binary is installed, a small prompt over :func:`sluice.sql.connect`. Both are
sandboxed like ``sluice sql`` (files outside the lake cannot be read or written, configuration
locked) unless ``--allow-files`` is given, e.g. to ``COPY`` a result out.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path


def register(sub, at_help: str) -> None:
    p = sub.add_parser("shell", help="interactive DuckDB over the lake: every table a view",
                       description="Open the DuckDB command-line shell with every table as a view (delta "
                                   "extension loaded offline). Read-only sandbox unless --allow-files.")
    p.add_argument("--at", action="append", metavar="PIN", help=at_help)
    p.add_argument("--allow-files", action="store_true", help="no sandbox: allow reading/writing files anywhere")
    p.set_defaults(func=_shell)

    p = sub.add_parser("duckdb-init", help="print a DuckDB init script that makes every table a view",
                       description="Print SQL for the stock duckdb CLI: `sluice duckdb-init > lake.sql`, then "
                                   "`duckdb -init lake.sql` (or `.read lake.sql` inside duckdb).")
    p.add_argument("--at", action="append", metavar="PIN", help=at_help)
    p.add_argument("--allow-files", action="store_true", help="leave out the sandbox statements")
    p.set_defaults(func=_init)


def init_script(args) -> str:
    from sluice.lake import Lake
    from sluice.sql import parse_pins, setup_statements

    lake = Lake.from_params()
    statements = setup_statements(lake, parse_pins(args.at), sandbox=not args.allow_files)
    header = (f"-- written by `sluice duckdb-init` for the lake at {lake.root}\n"
              "-- use: duckdb -init lake.sql   (or .read lake.sql); every table is a view under its own name\n")
    return header + "".join(f"{s};\n" for s in statements)


def _init(args) -> int:
    print(init_script(args), end="")
    return 0


def duckdb_binary() -> str | None:
    """The ``duckdb`` CLI next to this Python (the duckdb-cli package), else on PATH."""
    beside = Path(sys.executable).parent / "duckdb"
    return str(beside) if os.access(beside, os.X_OK) else shutil.which("duckdb")


def _shell(args) -> int:
    script = init_script(args)
    binary = duckdb_binary()
    if binary is None:
        return _prompt(args)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="sluice-shell-", delete=False) as fh:
        fh.write(script)
    try:
        import subprocess

        return subprocess.call([binary, "-init", fh.name])
    finally:
        os.unlink(fh.name)


def _prompt(args) -> int:
    """A minimal prompt over the sandboxed connection, for machines without the duckdb CLI."""
    import duckdb

    from sluice.errors import UserError
    from sluice.lake import Lake
    from sluice.output import render
    from sluice.sql import check_read_only, connect, parse_pins

    con = connect(Lake.from_params(), parse_pins(args.at))
    print("sluice shell (no duckdb CLI found: pip install duckdb-cli); one statement per line, Ctrl-D to quit",
          file=sys.stderr)
    while True:
        try:
            line = input("sluice> ").strip()
        except EOFError:
            return 0
        if not line:
            continue
        try:
            print(render(con.execute(check_read_only(line)).fetch_arrow_table(), "table", 100))
        except (UserError, duckdb.Error) as err:
            print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
