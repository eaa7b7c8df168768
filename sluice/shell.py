"""The lake from DuckDB's own tools: ``sluice shell`` and ``sluice duckdb-init``.

``sluice duckdb-init > lake.sql`` prints the SQL (:func:`sluice.sql.setup_statements`) that makes a
stock ``duckdb`` session see every table as a view, with the delta extension loaded from the
``duckdb-ext-delta`` package (no download): ``duckdb -init lake.sql`` or ``.read lake.sql``.
``sluice shell`` starts that CLI (the ``duckdb-cli`` package's binary) with the same script, or, when
no ``duckdb`` binary is installed, a small prompt over :func:`sluice.sql.connect`. Both are
sandboxed like ``sluice sql`` (files outside the lake cannot be read or written, configuration
locked) unless ``--allow-files`` is given, e.g. to ``COPY`` a result out.

With a role (``--role`` or ``$SLUICE_ROLE``), ``sluice shell`` is always the prompt over the role's
connection, which reads no file itself (the stock CLI reads the lake's files, so it could read around
the role); ``duckdb-init --role`` writes the role's views for a DuckDB the user runs, which only the
storage's permissions can hold to the role, and says so.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path


def register(sub, at_help: str, role_help: str) -> None:
    p = sub.add_parser("shell", help="interactive DuckDB over the lake: every table a view",
                       description="Open the DuckDB command-line shell with every table as a view (delta "
                                   "extension loaded offline). Read-only sandbox unless --allow-files.")
    p.add_argument("--at", action="append", metavar="PIN", help=at_help)
    p.add_argument("--allow-files", action="store_true", help="no sandbox: allow reading/writing files anywhere")
    p.add_argument("--role", metavar="NAME", help=role_help)
    p.set_defaults(func=_shell)

    p = sub.add_parser("duckdb-init", help="print a DuckDB init script that makes every table a view",
                       description="Print SQL for the stock duckdb CLI: `sluice duckdb-init > lake.sql`, then "
                                   "`duckdb -init lake.sql` (or `.read lake.sql` inside duckdb).")
    p.add_argument("--at", action="append", metavar="PIN", help=at_help)
    p.add_argument("--allow-files", action="store_true", help="leave out the sandbox statements")
    p.add_argument("--role", metavar="NAME", help=role_help)
    p.set_defaults(func=_init)


def init_script(args, role=None) -> str:
    from sluice.lake import Lake
    from sluice.sql import parse_pins, setup_statements

    lake = Lake.from_params()
    statements = setup_statements(lake, parse_pins(args.at), sandbox=not args.allow_files, role=role)
    header = (f"-- written by `sluice duckdb-init` for the lake at {lake.root}\n"
              "-- use: duckdb -init lake.sql   (or .read lake.sql); every table is a view under its own name\n")
    if role is not None:
        header += (f"-- role '{role.name}': views of its tables and columns only; this DuckDB reads the lake's files "
                   f"itself, so only file permissions hold it to the role (docs/access.md)\n")
    return header + "".join(f"{s};\n" for s in statements)


def _init(args) -> int:
    from sluice.access import resolve

    role = resolve(args.role)
    print(init_script(args, role), end="")
    if role is not None:
        print(f"note: role '{role.name}': the stock duckdb CLI reads the lake's files itself; the views leave out "
              f"what the role may not see, file permissions must do the rest (docs/access.md)", file=sys.stderr)
    return 0


def duckdb_binary() -> str | None:
    """The ``duckdb`` CLI next to this Python (the duckdb-cli package), else on PATH."""
    beside = Path(sys.executable).parent / "duckdb"
    return str(beside) if os.access(beside, os.X_OK) else shutil.which("duckdb")


def _shell(args) -> int:
    from sluice.access import resolve

    role = resolve(args.role)
    binary = duckdb_binary()
    if binary is None or role is not None:
        return _prompt(args, role)
    script = init_script(args)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="sluice-shell-", delete=False) as fh:
        fh.write(script)
    try:
        import subprocess

        return subprocess.call([binary, "-init", fh.name])
    finally:
        os.unlink(fh.name)


def _prompt(args, role=None) -> int:
    """A minimal prompt over the sandboxed connection (as ``role``), for machines without the duckdb CLI."""
    import duckdb

    from sluice.errors import UserError
    from sluice.lake import Lake
    from sluice.output import render
    from sluice.sql import check_read_only, connect, failure, parse_pins

    con = connect(Lake.from_params(), parse_pins(args.at), role)
    why = f"role '{role.name}'" if role is not None else "no duckdb CLI found: pip install duckdb-cli"
    print(f"sluice shell ({why}); one statement per line, Ctrl-D to quit", file=sys.stderr)
    while True:
        try:
            line = input("sluice> ").strip()
        except EOFError:
            return 0
        if not line:
            continue
        try:
            statement = check_read_only(line)
            print(render(con.execute(statement).fetch_arrow_table(), "table", 100))
        except UserError as err:
            print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        except duckdb.Error as err:
            print(f"error: {failure(err, statement, role)}", file=sys.stderr)
