"""The vocabulary of the suites: checks, suites and the environment they are evaluated in.

A check is one Great Expectations expectation plus what GX does not model: a stable name
(``<suite>.<short>``), a severity (``critical`` stops the pipeline, ``warning`` is reported) and, for
aggregate checks, how to compute the value it judges and which rows to quarantine when it fails.

Two kinds of checks, chosen so that no table is ever pulled into one pandas frame:

- **row checks** (``Check.row``) are column-map expectations validated by GX on the suite's row frame,
  streamed from DuckDB in batches of ``quality.batch_rows`` rows (only the columns the checks need,
  binary columns replaced by their byte length); per-batch results are merged. Failing rows' keys go
  to quarantine.
- **aggregate checks** (``Check.aggregate``) compute one value per table with a DuckDB query over the
  Delta table (uniqueness, shares, joins across tables, reconciliation), assembled into a one-row
  metrics frame that GX validates. A ``keys`` query names the offending rows for quarantine.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Severity = Literal["critical", "warning"]
LAYERS = ("bronze", "silver", "gold", "snapshot")


@dataclass
class Env:
    """What checks read: the lake through DuckDB, params, the class list, manifests and the snapshot."""

    lake: Any
    con: Any  # duckdb connection with one view per existing table
    params: Any
    classes: list[str] | None
    classes_origin: str
    columns: dict[str, dict[str, str]]  # existing table -> column -> Arrow type
    manifests_dir: Path
    snapshot_dir: Path

    def has(self, *needs: str) -> str | None:
        """None when every ``table`` / ``table.column`` exists, else why not."""
        for need in needs:
            table, _, column = need.partition(".")
            if table not in self.columns:
                return f"table '{table}' does not exist"
            if column and column not in self.columns[table]:
                return f"column '{need}' is missing"
        return None

    def scalar(self, sql: str, *params) -> Any:
        row = self.con.execute(sql, list(params)).fetchone()
        return None if row is None else row[0]

    def values(self, sql: str, *params) -> list:
        return [r[0] for r in self.con.execute(sql, list(params)).fetchall()]

    def rows(self, sql: str, *params) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()

    def manifest(self, stage: str) -> dict | None:
        path = self.manifests_dir / f"{stage}.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError:
            return {"__unreadable__": str(path)}


@dataclass(frozen=True)
class Check:
    short: str
    severity: Severity
    description: str
    expectation: Callable[[str], Any]  # column name in the frame -> GX expectation
    kind: Literal["row", "aggregate"] = "row"
    column: str | None = None  # row checks: frame column validated
    value: Callable[[Env], Any] | None = None  # aggregate: scalar, or {"expected": a, "actual": b}
    keys: Callable[[Env], list[str]] | None = None  # aggregate: offending row keys
    detail: Callable[[Env], str] | None = None  # aggregate: human explanation when it fails
    needs: tuple[str, ...] = ()  # tables / table.columns an aggregate needs
    needs_classes: bool = False  # judged against the class list: skipped when there is none

    @classmethod
    def row(cls, short: str, severity: Severity, column: str, expectation: Callable[[str], Any],
            description: str, needs_classes: bool = False) -> "Check":
        return cls(short, severity, description, expectation, "row", column, needs_classes=needs_classes)

    @classmethod
    def aggregate(cls, short: str, severity: Severity, description: str, expectation: Callable[[str], Any],
                  value: Callable[[Env], Any], *, needs: tuple[str, ...] = (), keys=None, detail=None,
                  needs_classes: bool = False) -> "Check":
        return cls(short, severity, description, expectation, "aggregate", None, value, keys, detail, needs,
                   needs_classes)


@dataclass(frozen=True)
class FrameColumn:
    sql: str  # expression over the table
    needs: tuple[str, ...]  # table columns it reads


@dataclass
class Suite:
    """One suite per table (or per non-table artefact: stage manifests, the exported snapshot)."""

    name: str
    layer: str
    table: str | None  # lake table validated; rows of it are quarantined under this name
    checks: list[Check]
    key: FrameColumn | None = None  # row key (quarantine row_key)
    frame: dict[str, FrameColumn] = field(default_factory=dict)  # row frame columns
    rows: Callable[[Env], Iterator[Any]] | None = None  # non-table suites: pandas frames to validate
    required: bool = False  # a missing table fails the gate instead of being skipped
    quarantines: bool = True  # failing rows of ``table`` go to quarantine (not for quarantine itself)

    def check_name(self, check: Check) -> str:
        return f"{self.name}.{check.short}"
