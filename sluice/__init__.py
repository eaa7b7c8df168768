"""Sluice: an open data lakehouse for training image models.

For notebooks (see docs/query.md)::

    import sluice
    con = sluice.connect()                      # DuckDB, every table a view (sandboxed to the lake)
    con.sql("select source, count(*) from raw_images group by 1").pl()
    df = sluice.table("dataset")                # Polars; to="pandas" or to="arrow" for the others
    old = sluice.table("dataset", version="v1") # a dataset version's table (git tag), or "@3" / 3
    con = sluice.connect(role="analyst")        # only what the role may see (params access.roles; docs/access.md)
"""

__version__ = "0.1.0"


def connect(versions: dict[str, int | str] | None = None, role: str | None = None):
    """A DuckDB connection with one view per table of the lake in params (``$SLUICE_PARAMS``).

    ``versions`` pins tables: ``{"dataset": 3}`` / ``"@3"`` (Delta version) or ``"v1"`` (git ref).
    ``role`` (default ``$SLUICE_ROLE``; none: full access) limits the views to what that role of
    params ``access.roles`` may see; the connection then reads no file directly."""
    from sluice import sql
    from sluice.access import resolve

    chosen = resolve(role)
    return sql.connect(versions=sql.parse_pins([f"{t}={v}" for t, v in (versions or {}).items()]), role=chosen)


def table(name: str, version: int | str | None = None, to: str = "polars", role: str | None = None):
    """One table (as of ``version``: a Delta version ``3``/``"@3"`` or a git ref ``"v1"``) as Polars,
    pandas or Arrow, read through deltalake (only the files of that version, never stale ones).
    With a ``role`` (default ``$SLUICE_ROLE``) it holds only what the role may see, as its view does."""
    from sluice.access import resolve
    from sluice.errors import InputError
    from sluice.lake import Lake
    from sluice.lake_health import require_readable
    from sluice.sql import parse_pins

    chosen = resolve(role)
    if chosen is not None:
        chosen.require(name)
    lake = Lake.from_params()
    pinned = parse_pins([f"{name}={version}"]).get(name) if version is not None else None
    if pinned is not None:
        require_readable(lake, name, pinned)
    elif not lake.exists(name):
        lake.table(name)  # the one-line "does not exist yet" error
    if chosen is None:
        data = lake.read(name, version=pinned)
    else:
        from sluice.sql import connect as role_connect

        pins = {name: pinned} if pinned is not None else None
        data = role_connect(lake, pins, chosen).execute(f'SELECT * FROM "{name}"').fetch_arrow_table()
    if to == "arrow":
        return data
    if to == "pandas":
        return data.to_pandas()
    if to == "polars":
        import polars as pl

        return pl.from_arrow(data)
    raise InputError(f"sluice.table(to={to!r}): expected 'polars', 'pandas' or 'arrow'")
