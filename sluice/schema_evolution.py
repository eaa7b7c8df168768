"""Older lakes keep working when the catalog grows a column.

A new column of a catalog table is always nullable and added last (e.g. ``images.faces_blurred``).
Before a write to an existing table, :func:`add_missing_columns` adds the catalog's columns the table
lacks, as one Delta metadata commit (no data file is rewritten; older rows read them as null). Time
travel to a version from before the change returns the schema of that version, without the column, so
readers that select a new column check that the version has it. A missing *required* column is not
evolved: that table is not one this catalog wrote, and the write fails naming the column.
"""

from __future__ import annotations

from sluice.catalog import TableSpec, with_retries
from sluice.errors import SchemaMismatch


def missing_columns(lake, table_spec: TableSpec) -> list[str]:
    """Catalog columns the existing table lacks, in catalog order."""
    have = {f.name for f in lake.table(table_spec.name).schema().fields}
    return [f.name for f in table_spec.schema if f.name not in have]


def add_missing_columns(lake, table_spec: TableSpec) -> list[str]:
    """Add the catalog's nullable columns that the existing table lacks; return their names."""
    from deltalake import CommitProperties
    from deltalake.schema import Field

    missing = missing_columns(lake, table_spec)
    if not missing:
        return []
    required = [n for n in missing if not table_spec.schema.field(n).nullable]
    if required:
        raise SchemaMismatch(f"{table_spec.name}: the table in the lake lacks required column '{required[0]}' "
                             f"({table_spec.schema.field(required[0]).type}); it was not written by this catalog")

    def attempt() -> None:
        still = missing_columns(lake, table_spec)  # a concurrent writer may have added them meanwhile
        if still:
            fields = [Field.from_arrow(table_spec.schema.field(n)) for n in still]
            meta = {"sluice.operation": f"add columns {', '.join(still)}"}
            lake.table(table_spec.name).alter.add_columns(fields, commit_properties=CommitProperties(custom_metadata=meta))

    with_retries(attempt, lake.retries, f"add columns to {table_spec.name}")
    return missing
