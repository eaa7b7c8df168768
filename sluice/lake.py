"""Reads and writes of the catalog's Delta tables.

The lake root is a local folder by default or any deltalake URI (``s3://bucket/lake``); storage
options come from params or ``SLUICE_STORAGE_OPTIONS`` (never logged), with server-side encryption on S3
(sluice/storage.py). Every write conforms the data to the catalog schema first (a table of an older lake
first gains the catalog's newer nullable columns: sluice/schema_evolution.py), and is retried when it loses
a commit race.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from sluice.catalog import TABLES, SchemaMismatch, TableSpec, conform, dedupe_keys, spec, with_retries
from sluice.errors import InputError
from sluice.schema_evolution import add_missing_columns

#: merge_insert compacts a table's small files once this many have piled up (see Lake._compact_small_files)
AUTO_COMPACT_FILES = 64
#: duplicate keys repaired per commit (each is a term of the overwrite's predicate)
REPAIR_KEYS = 200


def _is_local(root: str) -> bool:
    return "://" not in root or root.startswith("file://")


@dataclass
class Lake:
    root: str
    storage_options: dict[str, str] = field(default_factory=dict)
    retries: int = 10
    auto_compact_files: int | None = None  # None: AUTO_COMPACT_FILES; 0: merge_insert never compacts
    _erased: object = field(default=None, repr=False, compare=False)  # sluice.tombstones, loaded at the first write

    @classmethod
    def from_params(cls, params=None) -> Lake:
        if params is None:
            from sluice.config import load_params

            params = load_params()
        from sluice.storage import storage_options

        return cls(params.lake.root, storage_options(params.lake), params.lake.commit_retries,
                   params.lake.auto_compact_files)

    def __post_init__(self):
        if _is_local(self.root):
            self.root = str(Path(self.root.removeprefix("file://")).absolute())

    # ------------------------------------------------------------------ locating
    def uri(self, name: str) -> str:
        spec(name)
        return f"{self.root.rstrip('/')}/{name}"

    def exists(self, name: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.uri(name), storage_options=self.storage_options or None)

    def table(self, name: str, version: int | None = None):
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.uri(name), version=version, storage_options=self.storage_options or None)
        except TableNotFoundError:
            if version is not None and self.exists(name):  # its commit was removed (e.g. by `sluice erase`)
                raise InputError(f"table '{name}' has no version {version} any more: its history was removed "
                                 f"(see `sluice history {name}`)") from None
            raise InputError(f"table '{name}' does not exist yet in the lake at {self.root} (run the stage that writes it)") from None
        except Exception as err:  # deltalake raises a bare DeltaError for a version it lacks and for a damaged log
            self._raise_if_damaged(name, err, version)
            raise

    def _raise_if_damaged(self, name: str, err: Exception, version: int | None) -> None:
        """A damaged log becomes one line naming table, version and what to do (see sluice/lake_health.py)."""
        from sluice.lake_health import LakeDamaged, diagnose

        if _is_local(self.root) and (damage := diagnose(name, self.uri(name))):
            raise LakeDamaged(damage.line()) from None
        if version is not None and "version" in str(err).lower():
            raise InputError(f"table '{name}' has no version {version}") from None
        if "kernel error" in str(err).lower():
            first = str(err).strip().splitlines()[0]
            raise LakeDamaged(f"table '{name}': the Delta log cannot be read ({first}); `sluice lake doctor` "
                              f"reports every table") from None

    def version(self, name: str) -> int | None:
        return self.table(name).version() if self.exists(name) else None

    # ------------------------------------------------------------------ reading
    def dataset(self, name: str, version: int | None = None) -> ds.Dataset:
        """A lazy pyarrow dataset of the table: filters and projections push down to Parquet."""
        if version is None and not self.exists(name):
            return ds.dataset(pa.table({f.name: pa.array([], f.type) for f in spec(name).schema}))
        return self.table(name, version).to_pyarrow_dataset()

    def batches(self, name: str, columns: list[str], batch_size: int, version: int | None = None):
        """Record batches read one data file and one batch ahead (pyarrow's default, 4 files and 16
        batches, held 4 files of pixels or image bytes at once: Arrow's peak 802 -> 202 MiB on 1 MB
        rows, no slower; docs/scale.md)."""
        return self.dataset(name, version).to_batches(columns=columns, batch_size=batch_size,
                                                      batch_readahead=1, fragment_readahead=1)

    def read(self, name: str, columns: list[str] | None = None, version: int | None = None, filter=None) -> pa.Table:
        return self.dataset(name, version).to_table(columns=columns, filter=filter)

    def count(self, name: str) -> int:
        return self.dataset(name).count_rows() if self.exists(name) else 0

    def history(self, name: str) -> list[dict]:
        return self.table(name).history()

    # ------------------------------------------------------------------ writing
    def _ensure(self, table_spec: TableSpec) -> None:
        from deltalake import DeltaTable

        if self.exists(table_spec.name):
            add_missing_columns(self, table_spec)
            return
        with_retries(
            lambda: DeltaTable.create(
                self.uri(table_spec.name), schema=table_spec.schema, mode="ignore",
                name=table_spec.name, description=table_spec.description,
                storage_options=self.storage_options or None,
            ),
            self.retries, f"create {table_spec.name}",
        )

    def _not_erased(self, name: str, data: pa.Table) -> pa.Table:
        """``data`` without rows that would bring erased data back (sluice/tombstones.py)."""
        from sluice import tombstones

        if self._erased is None:
            self._erased = tombstones.all_targets(self)
        return tombstones.drop_erased(name, data, self._erased)

    def _commit(self, operation: str, run_id: str | None):
        from deltalake import CommitProperties

        meta = {"sluice.operation": operation}
        if run_id:
            meta["sluice.run_id"] = run_id
        return CommitProperties(custom_metadata=meta)

    def merge_insert(self, name: str, data: pa.Table | pa.RecordBatch, run_id: str | None = None) -> int:
        """Insert the rows whose key is not in the table yet; return how many were inserted.

        The keys are checked against this process's index of the table's keys (sluice/key_index.py),
        refreshed by reading only the files added since, and the new rows are appended: a commit's
        cost does not grow with the table. A racing writer that appended the same key in between is
        caught by the refresh after the commit and repaired (one copy kept, deterministically)."""
        from sluice.key_index import index_for, key_hashes

        table_spec = spec(name)
        data = self._not_erased(name, dedupe_keys(conform(table_spec, data), table_spec.keys))
        if data.num_rows == 0:
            return 0
        if any(table_spec.schema.field(k).type != pa.string() for k in table_spec.keys):
            self._ensure(table_spec)
            return self._merge_insert(name, data, run_id)
        index = index_for(self.uri(name), table_spec.keys, self.storage_options or None)
        with index.lock:
            if index.table is None:
                self._ensure(table_spec)
            self._repair(name, index, index.refresh(self._opener(name)), run_id)
            new = ~index.contains(key_hashes(data, table_spec.keys))
            if not new.any():
                return 0
            rows = data.filter(pa.array(new))

            def append() -> int:
                try:
                    write_deltalake_append(index.table, rows, self._commit("merge_insert", run_id))
                except Exception:
                    index.table.update_incremental()
                    raise
                return index.table.version()

            mine = with_retries(append, self.retries, f"append to {name}")
            dups = index.refresh(self._opener(name), latest=False)  # up to my commit: the table is there
            lost = sum(len(d.hashes) for d in dups if d.version == mine)  # an earlier commit has these keys
            self._repair(name, index, dups, run_id)
            self._compact_small_files(name, index, rows.num_rows, run_id)
            return rows.num_rows - lost

    def _compact_small_files(self, name: str, index, batch_rows: int, run_id: str | None) -> None:
        """Merge the batch-sized files, and only those, once enough pile up (sluice/auto_compact.py)."""
        from sluice.auto_compact import compact_small_files

        files = AUTO_COMPACT_FILES if self.auto_compact_files is None else self.auto_compact_files  # 0: never
        compact_small_files(index, files, batch_rows, self._commit("compact batch files", run_id), self.retries,
                            f"compact {name}")

    def _opener(self, name: str):
        from deltalake import DeltaTable

        uri, options = self.uri(name), self.storage_options or None
        return lambda version: DeltaTable(uri, version=version, storage_options=options)

    def _repair(self, name: str, index, dups: list, run_id: str | None) -> None:
        """Keep one copy of every key that ``dups`` found in more than one row (the copy that sorts first
        by every column but the binary ones: the same choice in every writer), one atomic commit per
        :data:`REPAIR_KEYS` keys."""
        from sluice.key_index import key_hashes

        if not dups:
            return
        table_spec = spec(name)
        every = dedupe_keys(pa.concat_tables([d.keys for d in dups]), table_spec.keys)
        for start in range(0, every.num_rows, REPAIR_KEYS):  # a bounded predicate per commit
            keys = every.slice(start, REPAIR_KEYS)
            self._repair_keys(name, index, keys, key_hashes(keys, table_spec.keys), run_id)

    def _repair_keys(self, name: str, index, keys: pa.Table, hashes, run_id: str | None) -> None:
        import numpy as np

        from sluice.key_index import key_hashes

        table_spec = spec(name)

        def attempt() -> None:
            index.refresh(self._opener(name))
            paths = index.files_holding(hashes)
            if not paths:
                return
            rows = pa.concat_tables([conform(table_spec, index.read_file(p)) for p in paths])
            rows = rows.filter(pa.array(np.isin(key_hashes(rows, table_spec.keys), hashes)))
            if rows.num_rows == dedupe_keys(rows, table_spec.keys).num_rows:
                return  # another writer repaired them already
            order = [(f.name, "ascending") for f in table_spec.schema if not pa.types.is_binary(f.type)]
            rows = dedupe_keys(rows.sort_by(order), table_spec.keys)
            predicate = " OR ".join(
                "(" + " AND ".join(f"{k} = {_literal(v)}" for k, v in row.items()) + ")" for row in keys.to_pylist())
            write_deltalake_overwrite(self.table(name), rows, predicate, self._commit("repair duplicate keys", run_id))

        with_retries(attempt, self.retries, f"repair duplicate keys in {name}")

    def _merge_insert(self, name: str, data: pa.Table, run_id: str | None) -> int:
        predicate = " AND ".join(f"t.{k} = s.{k}" for k in spec(name).keys)

        def attempt() -> int:
            metrics = (
                self.table(name)
                .merge(data, predicate, source_alias="s", target_alias="t",
                       commit_properties=self._commit("merge_insert", run_id))
                .when_not_matched_insert_all()
                .execute()
            )
            return int(metrics.get("num_target_rows_inserted", 0))

        return with_retries(attempt, self.retries, f"merge into {name}")

    def upsert(self, name: str, data: pa.Table | pa.RecordBatch, run_id: str | None = None) -> dict:
        """Update rows whose key exists, insert the others (for derived tables that are recomputed)."""
        table_spec = spec(name)
        data = self._not_erased(name, dedupe_keys(conform(table_spec, data), table_spec.keys))
        self._ensure(table_spec)
        if data.num_rows == 0:
            return {"inserted": 0, "updated": 0}
        predicate = " AND ".join(f"t.{k} = s.{k}" for k in table_spec.keys)

        def attempt() -> dict:
            m = (
                self.table(name)
                .merge(data, predicate, source_alias="s", target_alias="t",
                       commit_properties=self._commit("upsert", run_id))
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
            return {"inserted": int(m.get("num_target_rows_inserted", 0)), "updated": int(m.get("num_target_rows_updated", 0))}

        return with_retries(attempt, self.retries, f"upsert into {name}")

    def update_columns(self, name: str, data: pa.Table | pa.RecordBatch, columns: list[str],
                       run_id: str | None = None, operation: str = "update columns") -> int:
        """Set ``columns`` on the rows whose key matches a row of ``data``; every other column and row is
        untouched (no rewrite of, say, pixels through Python). ``data`` holds the table's key columns
        and ``columns``. Returns the number of rows updated."""
        table_spec = spec(name)
        keyed = [c for c in columns if c in table_spec.keys]
        if keyed or not columns:
            raise SchemaMismatch(f"{name}: update_columns sets non-key columns; got {columns or 'none'}")
        data = dedupe_keys(conform(table_spec, data, only=[*table_spec.keys, *columns]), table_spec.keys)
        if data.num_rows == 0 or not self.exists(name):
            return 0
        predicate = " AND ".join(f"t.{k} = s.{k}" for k in table_spec.keys)

        def attempt() -> int:
            m = (
                self.table(name)
                .merge(data, predicate, source_alias="s", target_alias="t",
                       commit_properties=self._commit(operation, run_id))
                .when_matched_update({c: f"s.{c}" for c in columns})
                .execute()
            )
            return int(m.get("num_target_rows_updated", 0))

        return with_retries(attempt, self.retries, f"update {', '.join(columns)} in {name}")

    def delete_keys(self, name: str, keys: pa.Table, run_id: str | None = None, operation: str = "delete") -> int:
        """Delete the rows whose key columns equal a row of ``keys``; return how many went.

        A merge rather than a predicate: the commit records ``t.k = s.k``, not the values deleted
        (an erasure must not write the ids it erases into the Delta log)."""
        table_spec = spec(name)
        keys = dedupe_keys(conform(table_spec, keys, only=table_spec.keys), table_spec.keys)
        if keys.num_rows == 0 or not self.exists(name):
            return 0
        predicate = " AND ".join(f"t.{k} = s.{k}" for k in table_spec.keys)

        def attempt() -> int:
            m = (
                self.table(name)
                .merge(keys, predicate, source_alias="s", target_alias="t",
                       commit_properties=self._commit(operation, run_id))
                .when_matched_delete()
                .execute()
            )
            return int(m.get("num_target_rows_deleted", 0))

        return with_retries(attempt, self.retries, f"delete from {name}")

    def append(self, name: str, data: pa.Table | pa.RecordBatch, run_id: str | None = None) -> int:
        from deltalake import write_deltalake

        table_spec = spec(name)
        data = self._not_erased(name, conform(table_spec, data))
        if data.num_rows == 0:
            return 0
        self._ensure(table_spec)
        with_retries(
            lambda: write_deltalake(
                self.uri(name), data, mode="append", storage_options=self.storage_options or None,
                commit_properties=self._commit("append", run_id),
            ),
            self.retries, f"append to {name}",
        )
        return data.num_rows

    def overwrite(self, name: str, data: pa.Table | pa.RecordBatch, predicate: str | None = None,
                  run_id: str | None = None) -> int:
        """Replace the whole table, or only the rows matching ``predicate`` (SQL, e.g. ``stage = 'clean'``).

        With a predicate every new row must match it too: that is what makes a stage's rerun replace
        exactly its own previous output.
        """
        from deltalake import write_deltalake

        table_spec = spec(name)
        data = self._not_erased(name, conform(table_spec, data))
        self._ensure(table_spec)
        with_retries(
            lambda: write_deltalake(
                self.uri(name), data, mode="overwrite", predicate=predicate,
                storage_options=self.storage_options or None,
                commit_properties=self._commit("overwrite" + (f" where {predicate}" if predicate else ""), run_id),
            ),
            self.retries, f"overwrite {name}",
        )
        return data.num_rows

    def versions(self) -> dict[str, int | None]:
        """The current Delta version of every table (None for tables not written yet)."""
        return {name: self.version(name) for name in TABLES}


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def write_deltalake_append(table, data: pa.Table, commit) -> None:
    """A merge-insert's append. Its commit skips delta-rs's expired-log cleanup, which lists the whole log
    folder after every commit (a third of a commit's cost at 600 versions on a local lake); the
    automatic compaction's commits still run it, so the log is cleaned up as often as it can be."""
    from deltalake import write_deltalake
    from deltalake.transaction import PostCommitHookProperties

    write_deltalake(table, data, mode="append", commit_properties=commit,
                    post_commithook_properties=PostCommitHookProperties(cleanup_expired_logs=False))


def write_deltalake_overwrite(table, data: pa.Table, predicate: str, commit) -> None:
    from deltalake import write_deltalake

    write_deltalake(table, data, mode="overwrite", predicate=predicate, commit_properties=commit)


def dumps_extra(**fields) -> str | None:
    """Connector-specific provenance for ``raw_images.extra`` as compact, sorted JSON."""
    fields = {k: v for k, v in fields.items() if v is not None}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")) if fields else None
