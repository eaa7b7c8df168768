"""DuckDB over the lake: every Delta table is a read-only view under its own name, in a sandbox.

Local lakes are read with DuckDB's own ``delta`` extension (shipped by the ``duckdb-ext-delta``
package and loaded from disk: nothing is downloaded), so DuckDB plans the Parquet scan natively:
``delta_scan`` for current versions, ``ATTACH ... (TYPE delta, VERSION n)`` for time travel
(``versions={"raw_images": 3}``). Lakes on object storage go through ``deltalake``'s Arrow dataset of
the version (credentials stay in deltalake's storage options), which DuckDB scans with filter and
projection pushdown.

Two locks make ``sluice sql`` read-only, and the first also holds for the Python connection:

1. **DuckDB's sandbox** (:func:`connect`): once the views exist, ``enable_external_access`` is
   switched off with ``allowed_directories`` = the lake (so ``read_csv('/etc/passwd')``, ``ATTACH``,
   ``COPY TO`` anywhere else, ``INSTALL`` all fail), extension auto-loading is off, and
   ``lock_configuration`` stops a query from switching any of it back on.
2. **DuckDB's own parser** (:func:`check_read_only`): the text must be exactly one statement of type
   SELECT (which includes WITH, DESCRIBE, SHOW, SUMMARIZE, VALUES, FROM-first) or EXPLAIN of one.
   The sandbox alone cannot stop a write *inside* the lake (``COPY ... TO 'lake/x/_delta_log/...'``),
   because DuckDB's allowed directories are readable and writable; the parser does.
"""

from __future__ import annotations

import functools
from pathlib import Path

import duckdb

from sluice.catalog import TABLES
from sluice.errors import InputError
from sluice.lake import Lake
from sluice.lake_health import require_readable

READ_ONLY_HELP = "only SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN"


@functools.cache
def _delta_extension() -> str | None:
    try:
        import duckdb_ext
    except ImportError:
        return None
    for path in Path(next(iter(duckdb_ext.__path__))).rglob("delta.duckdb_extension"):
        if f"v{duckdb.__version__}" in path.as_posix():
            return str(path)
    return None


def extension_directory() -> str | None:
    """The folder DuckDB's ``extension_directory`` setting must name to find the packaged extensions."""
    ext = _delta_extension()
    return str(Path(ext).parents[2]) if ext else None


def connect(lake: Lake | None = None, versions: dict[str, int] | None = None) -> duckdb.DuckDBPyConnection:
    """A sandboxed DuckDB connection with one view per existing Delta table (notebooks, ``sluice sql``).

    ``versions`` pins tables to past Delta versions (time travel). The connection can read files
    only inside the lake, cannot load or install extensions, and its configuration is locked.
    """
    lake = lake or Lake.from_params()
    versions = dict(versions or {})
    for name in versions:
        if name not in TABLES:
            raise InputError(f"unknown table '{name}' in version pin; tables: {', '.join(TABLES)}")
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False,
                                             "allow_community_extensions": False})
    local = "://" not in lake.root
    ext = _delta_extension() if local else None
    if ext:
        con.execute(f"LOAD '{ext}'")
    for name in TABLES:
        version = versions.pop(name, None)
        if version is None and not lake.exists(name):
            continue
        if ext and version is None:
            lake.table(name)  # a damaged log is named here, not as a DuckDB error at query time
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM delta_scan('{lake.uri(name)}')")
        elif ext:
            require_readable(lake, name, version)  # one line for a version it lacks or whose files were vacuumed
            con.execute(f"ATTACH '{lake.uri(name)}' AS __{name}_v{version} (TYPE delta, VERSION {version})")
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM __{name}_v{version}")
        else:
            if version is not None:
                require_readable(lake, name, version)
            con.register(f"__{name}_arrow", lake.dataset(name, version))
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM __{name}_arrow")
    _sandbox(con, lake.root if local else None)
    return con


def _sandbox(con: duckdb.DuckDBPyConnection, root: str | None) -> None:
    allowed = [root.rstrip("/") + "/"] if root else []
    con.execute("SET allowed_directories = $dirs", {"dirs": allowed})
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def parse_pins(pins: list[str] | None) -> dict[str, int]:
    out = {}
    for pin in pins or []:
        name, _, version = pin.partition("=")
        version = version.removeprefix("@")
        if not version.isdigit():
            raise InputError(f"--at {pin!r}: expected TABLE=VERSION (a Delta version), e.g. raw_images=3")
        out[name] = int(version)
    return out


def check_read_only(sql: str) -> str:
    """The one read statement ``sql`` holds, as DuckDB's parser splits it; else an InputError."""
    try:
        statements = duckdb.connect(":memory:").extract_statements(sql)
    except duckdb.Error as err:
        raise InputError(f"query failed: {str(err).splitlines()[0]}") from None
    if len(statements) != 1:
        raise InputError(f"sluice sql runs exactly one statement; got {len(statements)} "
                         f"(read-only: {READ_ONLY_HELP})")
    statement = statements[0]
    kind = statement.type
    if kind == duckdb.StatementType.EXPLAIN:
        _check_explained(statement.query)
    elif kind != duckdb.StatementType.SELECT:
        raise InputError(f"sluice sql is read-only: {kind.name} statements are not allowed ({READ_ONLY_HELP})")
    return statement.query


def _check_explained(text: str) -> None:
    """EXPLAIN [ANALYZE] runs its statement (ANALYZE executes it), so that one must be a read too."""
    tokens = duckdb.tokenize(text)  # (offset, kind): comments are not tokens
    words = [text[start:end].strip().lower() for (start, _), (end, _) in zip(tokens, tokens[1:] + [(len(text), None)])]
    skip = 1 + (len(words) > 1 and words[1] == "analyze")
    if len(tokens) <= skip:
        raise InputError("sluice sql: EXPLAIN needs a statement")
    inner = duckdb.connect(":memory:").extract_statements(text[tokens[skip][0]:])
    if len(inner) != 1 or inner[0].type != duckdb.StatementType.SELECT:
        raise InputError(f"sluice sql is read-only: EXPLAIN of {inner[0].type.name if inner else 'nothing'} "
                         f"is not allowed ({READ_ONLY_HELP})")


def query(sql: str, lake: Lake | None = None, versions: dict[str, int] | None = None):
    """Run one read-only statement and return its result as an Arrow table."""
    statement = check_read_only(sql)
    con = connect(lake, versions)
    try:
        return con.execute(statement).fetch_arrow_table()
    except duckdb.Error as err:
        message = str(err).splitlines()[0]
        raise InputError(f"query failed: {message}") from None
