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
import re
from pathlib import Path

import duckdb
import pyarrow as pa

from sluice.access import Role, explain
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


def connect(lake: Lake | None = None, versions: dict[str, int] | None = None,
            role: Role | None = None) -> duckdb.DuckDBPyConnection:
    """A sandboxed DuckDB connection with one view per existing Delta table (notebooks, ``sluice sql``).

    ``versions`` pins tables to past Delta versions (time travel). The connection can read files
    only inside the lake, cannot load or install extensions, and its configuration is locked. With a
    ``role`` (sluice/access.py) only its tables have views, only its columns are in them, and the
    connection can read no file at all.
    """
    lake = lake or Lake.from_params()
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False,
                                             "allow_community_extensions": False})
    if role is not None:
        return _role_views(con, lake, versions, role)
    if "://" not in lake.root and _delta_extension():
        for statement in setup_statements(lake, versions):
            con.execute(statement)
        return con
    for name, version in _pinned(lake, versions).items():
        con.register(f"__{name}_arrow", lake.dataset(name, version))
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM __{name}_arrow")
    _sandbox(con)
    return con


def _role_views(con: duckdb.DuckDBPyConnection, lake: Lake, versions: dict[str, int] | None,
                role: Role) -> duckdb.DuckDBPyConnection:
    """Views as ``role`` sees them, each an Arrow scan of the version's dataset narrowed to the role's
    columns (a denied column is not in the dataset either) and held by the view alone (no name to
    query around it); then no file access at all, so no SQL function reaches the lake's files."""
    for name in versions or {}:
        role.require(name)
    for name, version in _pinned(lake, versions).items():
        if not role.sees(name):
            continue
        dataset = lake.dataset(name, version)
        kept = [c for c, _ in role.columns(name)]
        dataset = dataset.replace_schema(pa.schema([dataset.schema.field(c) for c in kept]))
        con.from_arrow(dataset).project(role.select_list(name)).create_view(name)
    for statement in ["SET python_enable_replacements = false", *_sandbox_statements([])]:
        con.execute(statement)
    return con


def setup_statements(lake: Lake, versions: dict[str, int] | None = None, sandbox: bool = True,
                     role: Role | None = None) -> list[str]:
    """The SQL that turns a bare DuckDB session into the lake's: the packaged delta extension loaded
    from disk, one view per table (``delta_scan``, or ``ATTACH ... VERSION n`` when pinned), then the
    sandbox. :func:`connect` runs it; ``sluice duckdb-init`` prints it for the stock ``duckdb`` CLI.
    With a ``role`` only its tables get views (of its columns) and only their folders stay readable."""
    ext = _delta_extension()
    if ext is None:
        raise InputError(f"DuckDB's delta extension is not installed: pip install duckdb-ext-delta=={duckdb.__version__}.*")
    if "://" in lake.root:
        raise InputError(f"{lake.root}: the stock DuckDB route needs a local lake; use `sluice sql` or "
                         f"`sluice.connect()` for object storage")
    statements = ["SET autoinstall_known_extensions = false", "SET autoload_known_extensions = false",
                  f"SET extension_directory = {_literal(extension_directory())}", f"LOAD {_literal(ext)}"]
    for name in versions or {}:
        if role is not None:
            role.require(name)
    shown = {n: v for n, v in _pinned(lake, versions).items() if role is None or role.sees(n)}
    for name, version in shown.items():
        uri = _literal(lake.uri(name))
        columns = "*" if role is None else role.select_list(name)
        if version is None:
            statements.append(f"CREATE OR REPLACE VIEW {name} AS SELECT {columns} FROM delta_scan({uri})")
        else:
            statements.append(f"ATTACH {uri} AS __{name}_v{version} (TYPE delta, VERSION {version})")
            statements.append(f"CREATE OR REPLACE VIEW {name} AS SELECT {columns} FROM __{name}_v{version}")
    if sandbox:
        folders = [lake.root] if role is None else [lake.uri(n) for n in shown]
        statements += _sandbox_statements(folders)
    return statements


def _pinned(lake: Lake, versions: dict[str, int] | None) -> dict[str, int | None]:
    """table -> pinned Delta version (None: current) for every table that exists or is pinned; every pin
    is checked first, so a bad one is one line rather than a DuckDB error."""
    versions = dict(versions or {})
    for name in versions:
        if name not in TABLES:
            raise InputError(f"unknown table '{name}' in version pin; tables: {', '.join(TABLES)}")
    out = {}
    for name in TABLES:
        version = versions.get(name)
        if version is None and not lake.exists(name):
            continue
        if version is None:
            lake.table(name)  # a damaged log is named here, not as a DuckDB error at query time
        else:
            require_readable(lake, name, version)  # one line for a version it lacks or whose files were vacuumed
        out[name] = version
    return out


def _literal(text: str | None) -> str:
    return "'" + (text or "").replace("'", "''") + "'"


def _sandbox_statements(folders: list[str]) -> list[str]:
    allowed = "[" + ", ".join(_literal(f.rstrip("/") + "/") for f in folders) + "]"
    return [f"SET allowed_directories = {allowed}", "SET enable_external_access = false", "SET lock_configuration = true"]


def _sandbox(con: duckdb.DuckDBPyConnection) -> None:
    for statement in _sandbox_statements([]):
        con.execute(statement)


def parse_pins(pins: list[str] | None) -> dict[str, int]:
    """``--at`` pins -> table -> Delta version. One naming everywhere: ``@N`` (or a bare ``N``) is a Delta
    version; anything else is a git ref (tag, branch, commit, ``workspace``) naming a dataset version,
    whose manifest recorded the version of each table it read. ``TABLE=PIN`` pins one table, ``REF``
    alone pins every table the ref recorded."""
    out: dict[str, int] = {}
    for pin in pins or []:
        name, sep, ref = pin.partition("=")
        if not sep:
            if name in TABLES or name.removeprefix("@").isdigit():
                raise InputError(f"--at {pin!r}: expected TABLE=VERSION (e.g. raw_images=@3) or a dataset version "
                                 f"(a git tag such as v1)")
            out.update(_recorded(name))
        elif ref.removeprefix("@").isdigit():
            out[name] = int(ref.removeprefix("@"))
        elif not ref or ref.startswith("@"):
            raise InputError(f"--at {pin!r}: expected TABLE=@N (a Delta version) or TABLE=REF (a git tag, branch "
                             f"or commit)")
        else:
            recorded = _recorded(ref)
            if name not in recorded:
                raise InputError(f"--at {pin!r}: dataset version {ref} recorded no version of '{name}' (it recorded "
                                 f"{', '.join(sorted(recorded)) or 'none'})")
            out[name] = recorded[name]
    return out


def _recorded(ref: str) -> dict[str, int]:
    """The Delta version of every table a dataset version's manifest recorded."""
    from sluice.config import load_params
    from sluice.dvc_store import WORKSPACE, repo_root
    from sluice.versions import load_version

    root = Path.cwd() if ref == WORKSPACE else repo_root()
    manifest = load_version(root, ref, load_params().export.out_dir).manifest
    return {t: int(v) for t, v in (manifest.get("table_versions") or {}).items() if v is not None}


def check_read_only(sql: str) -> str:
    """The one read statement ``sql`` holds, as DuckDB's parser splits it; else an InputError."""
    try:
        statements = duckdb.connect(":memory:").extract_statements(sql)
    except duckdb.Error as err:
        raise InputError(f"query failed: {first_line(err)}") from None
    if len(statements) != 1:
        raise InputError(f"sluice sql runs exactly one statement; got {len(statements)} "
                         f"(read-only: {READ_ONLY_HELP})")
    statement = statements[0]
    kind = statement.type
    if kind == duckdb.StatementType.EXPLAIN:
        _check_explained(statement.query)
    elif kind != duckdb.StatementType.SELECT:
        raise InputError(f"sluice sql is read-only: {_keyword(statement.query, kind.name)} statements are not allowed "
                         f"({READ_ONLY_HELP})")
    return statement.query


def _keyword(text: str, kind: str) -> str:
    """The statement's own first word (INSTALL, FORCE): DuckDB files INSTALL under LOAD."""
    tokens = duckdb.tokenize(text)
    word = text[tokens[0][0]:].split(None, 1)[0].upper() if tokens else ""
    return word if word.isalpha() else kind


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


def query(sql: str, lake: Lake | None = None, versions: dict[str, int] | None = None, role: Role | None = None):
    """Run one read-only statement (as ``role``, if given) and return its result as an Arrow table."""
    statement = check_read_only(sql)
    con = connect(lake, versions, role)
    try:
        return con.execute(statement).fetch_arrow_table()
    except duckdb.Error as err:
        raise failure(err, statement, role) from None


def failure(err: Exception, statement: str, role: Role | None = None) -> InputError:
    """A failed query as one line: the role it reached past, else DuckDB's first line."""
    if role is not None and (denied := explain(role, statement, str(err))):
        return denied
    missing = re.search(r"Table with name (\w+) does not exist", str(err))
    if missing and missing.group(1).lower() in TABLES:
        name = missing.group(1).lower()
        return InputError(f"query failed: table '{name}' is not in the lake yet: no stage has written to it "
                          f"({TABLES[name].description.rstrip('.')}; `sluice tables` lists the tables there are)")
    return InputError(f"query failed: {first_line(err)}")


def first_line(err: Exception) -> str:
    """DuckDB's first line, without a hint to run a statement sluice sql refuses (SET max_expression_depth)."""
    line = str(err).splitlines()[0]
    return line.split(' Use "SET ', 1)[0] + (" (simplify the query)" if ' Use "SET ' in line else "")
