"""Roles: which tables and columns a query session sees (``access.roles`` in params, sluice/params_access.py).

A role is chosen by ``--role`` (``sluice sql``, ``sluice shell``, ``sluice duckdb-init``), by
``role=`` (``sluice.connect``, ``sluice.table``) or by ``$SLUICE_ROLE``; no role means full access.
In a role session (:func:`sluice.sql.connect`) a table outside the role's ``tables`` has no view, a
denied column is left out of its table's view *and* out of the Arrow dataset behind it, a masked
column reads as the SHA-256 of its value, and DuckDB may read no file at all (the views are Arrow
scans built before the sandbox locks), so ``delta_scan``/``read_parquet`` of the lake's files fail
too. What a role cannot see is an error naming the role (:func:`explain`).

This shapes what Sluice's own query paths show. It is not file-level security: anyone who can read
the lake's files can read every column; that is the storage's job (docs/access.md).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from sluice.errors import ConfigError, InputError

ROLE_ENV = "SLUICE_ROLE"


@dataclass(frozen=True)
class Role:
    name: str
    tables: tuple[str, ...]  # the tables it sees, catalog order
    deny: dict[str, frozenset[str]]  # table -> columns left out
    mask: dict[str, frozenset[str]]  # table -> columns hashed

    def sees(self, table: str) -> bool:
        return table in self.tables

    def require(self, table: str) -> None:
        if not self.sees(table):
            raise InputError(f"role '{self.name}' may not read table '{table}' (its tables: "
                             f"{', '.join(self.tables) or 'none'})")

    def columns(self, table: str) -> list[tuple[str, bool]]:
        """(column, masked) for every column of ``table`` the role sees, in schema order."""
        from sluice.catalog import spec

        denied, masked = self.deny.get(table, frozenset()), self.mask.get(table, frozenset())
        return [(f.name, f.name in masked) for f in spec(table).schema if f.name not in denied]

    def select_list(self, table: str) -> str:
        """The view's SELECT list: allowed columns, masked ones as the hex SHA-256 of their text."""
        return ", ".join(f"sha256(CAST({_ident(c)} AS VARCHAR)) AS {_ident(c)}" if masked else _ident(c)
                         for c, masked in self.columns(table))

    def denied_columns(self) -> set[str]:
        return {c for cols in self.deny.values() for c in cols}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def resolve(name: str | None = None, params=None) -> Role | None:
    """The role ``name`` (else ``$SLUICE_ROLE``) of params' ``access.roles``; None for full access."""
    name = name if name is not None else os.environ.get(ROLE_ENV)
    if not name:
        return None
    if params is None:
        from sluice.config import load_params

        params = load_params()
    roles = params.access.roles
    if name not in roles:
        known = f"roles in params access.roles: {', '.join(sorted(roles))}" if roles else "params define no roles (access.roles)"
        raise InputError(f"unknown role '{name}'; {known}")
    built = {n: _build(n, r) for n, r in roles.items()}  # every role checked: a typo never widens one silently
    return built[name]


def _build(name: str, raw) -> Role:
    from sluice.catalog import TABLES

    where = f"access.roles.{name}"
    tables = list(TABLES) if raw.tables is None else raw.tables
    for table in tables:
        if table not in TABLES:
            raise ConfigError(f"{where}.tables: unknown table '{table}'; tables: {', '.join(TABLES)}")
    deny, mask = _columns(f"{where}.deny_columns", raw.deny_columns), _columns(f"{where}.mask_columns", raw.mask_columns)
    for table, cols in mask.items():
        if both := cols & deny.get(table, frozenset()):
            raise ConfigError(f"{where}: column '{sorted(both)[0]}' of {table} is both denied and masked; pick one")
    # a table whose every column is denied is as hidden as one outside `tables`
    seen = tuple(t for t in TABLES if t in tables and set(TABLES[t].schema.names) - deny.get(t, frozenset()))
    return Role(name, seen, deny, mask)


def _columns(where: str, names: list[str]) -> dict[str, frozenset[str]]:
    """``column`` (every table holding it) or ``table.column`` -> table -> columns; unknown names are errors."""
    from sluice.catalog import TABLES

    out: dict[str, set[str]] = {}
    for item in names:
        table, _, column = item.rpartition(".")
        holders = [table] if table else [t for t, s in TABLES.items() if column in s.schema.names]
        if table and (table not in TABLES or column not in TABLES[table].schema.names) or not holders:
            raise ConfigError(f"{where}: unknown column '{item}' (name a column of a table, or TABLE.COLUMN)")
        for holder in holders:
            out.setdefault(holder, set()).add(column)
    return {t: frozenset(c) for t, c in out.items()}


_MISSING_TABLE = re.compile(r"Table(?: Function)? with name \"?([\w.]+)\"? does not exist", re.I)
_MISSING_COLUMN = re.compile(r"(?:Referenced column \"?([\w.]+)\"? not found|does not have a column named \"?(\w+)\"?)", re.I)


def explain(role: Role, statement: str, error: str) -> InputError | None:
    """The role-naming error for a failed query that reached for what ``role`` cannot see, else None."""
    from sluice.catalog import TABLES

    try:
        import duckdb

        referenced = duckdb.get_table_names(statement, qualified=False)
    except Exception:  # an unparsable statement fails elsewhere with DuckDB's own message
        referenced = set()
    hidden = sorted(t for t in referenced | set(_MISSING_TABLE.findall(error)) if t in TABLES and not role.sees(t))
    if hidden:
        return InputError(f"role '{role.name}' may not read table '{hidden[0]}' (its tables: "
                          f"{', '.join(role.tables) or 'none'})")
    for column in ("".join(groups) for groups in _MISSING_COLUMN.findall(error)):
        if column.rpartition(".")[2] in role.denied_columns():
            return InputError(f"role '{role.name}' may not read column '{column.rpartition('.')[2]}'")
    if "Permission Error" in error or re.search(r"Function with name \"?\w+\"? (does not exist|is not in the catalog)", error):
        return InputError(f"role '{role.name}' reads the lake only through its views; files cannot be read "
                          f"directly ({error.splitlines()[0]})")
    return None
