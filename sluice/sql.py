"""DuckDB over the lake: every Delta table is a read-only view under its own name.

Local lakes are read with DuckDB's own ``delta`` extension (shipped by the ``duckdb-ext-delta``
package and loaded from disk: nothing is downloaded), so DuckDB plans the Parquet scan natively:
``delta_scan`` for current versions, ``ATTACH ... (TYPE delta, VERSION n)`` for time travel
(``versions={"raw_images": 3}``). Lakes on object storage go through ``deltalake``'s Arrow dataset of
the version (credentials stay in deltalake's storage options), which DuckDB scans with filter and
projection pushdown.
"""

from __future__ import annotations

import functools
from pathlib import Path

import duckdb

from sluice.catalog import TABLES
from sluice.errors import InputError
from sluice.lake import Lake


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


def connect(lake: Lake | None = None, versions: dict[str, int] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per existing Delta table (for notebooks and ``sluice sql``).

    ``versions`` pins tables to past Delta versions (time travel).
    """
    lake = lake or Lake.from_params()
    versions = dict(versions or {})
    for name in versions:
        if name not in TABLES:
            raise InputError(f"unknown table '{name}' in version pin; tables: {', '.join(TABLES)}")
    con = duckdb.connect(":memory:")
    ext = _delta_extension() if "://" not in lake.root else None
    if ext:
        con.execute(f"LOAD '{ext}'")
    for name in TABLES:
        version = versions.pop(name, None)
        if version is None and not lake.exists(name):
            continue
        if ext and version is None:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM delta_scan('{lake.uri(name)}')")
        elif ext:
            lake.table(name, version)  # a clear error for a version the table does not have
            con.execute(f"ATTACH '{lake.uri(name)}' AS __{name}_v{version} (TYPE delta, VERSION {version})")
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM __{name}_v{version}")
        else:
            con.register(f"__{name}_arrow", lake.dataset(name, version))
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM __{name}_arrow")
    return con


def parse_pins(pins: list[str] | None) -> dict[str, int]:
    out = {}
    for pin in pins or []:
        name, _, version = pin.partition("=")
        if not version.isdigit():
            raise InputError(f"--at {pin!r}: expected TABLE=VERSION, e.g. raw_images=3")
        out[name] = int(version)
    return out


_WRITE_WORDS = ("insert", "update", "delete", "create", "drop", "alter", "copy", "attach", "install", "load",
                "set", "pragma", "export", "import", "call", "checkpoint")


def query(sql: str, lake: Lake | None = None, versions: dict[str, int] | None = None):
    """Run one read-only statement and return its result as an Arrow table."""
    head = sql.lstrip().split(None, 1)[0].lower() if sql.strip() else ""
    if head in _WRITE_WORDS:
        raise InputError(f"sluice sql is read-only: '{head.upper()}' statements are not allowed")
    con = connect(lake, versions)
    try:
        return con.execute(sql).fetch_arrow_table()
    except duckdb.Error as err:
        message = str(err).splitlines()[0]
        raise InputError(f"query failed: {message}") from None
