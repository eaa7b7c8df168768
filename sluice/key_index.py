"""An in-memory index of a Delta table's keys, kept in step with the table file by file.

``Lake.merge_insert`` used to run a Delta MERGE per batch, which scans every key of the table on
every commit: a lake of N rows landed in batches of B cost ~N^2/B. Instead each writer process keeps
the keys of every *active* data file of the table as 128-bit hashes (16 bytes a row), built once by
reading only the key columns and then refreshed per commit by reading only the files added since
(its own file and any racing writer's). A batch keeps the rows whose key is absent and is appended.

Exactly once, with racing writers: two writers may both append the same new key between their
checks. Every refresh compares the keys of each newly seen file with the keys already indexed, so a
duplicate in the table is always seen by the later committer, which refreshes right after its own
commit; it is then repaired with one atomic predicate overwrite that keeps one deterministic copy
per key (see :meth:`sluice.lake.Lake.merge_insert`). A writer killed between commit and repair
leaves the duplicate for the next writer of that table, whose first (full) refresh finds it.

Files removed by a commit (compaction, a delete, a repair) drop out of the index, so a deleted key
can be landed again. Memory is 32 bytes a row (per-file arrays and the merged sorted array).
"""

from __future__ import annotations

import atexit
import os
import threading
from dataclasses import dataclass, field
from hashlib import blake2b
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HASH = np.dtype("S16")
_SEP = "\x1f"


def key_hashes(table: pa.Table, keys: tuple[str, ...]) -> np.ndarray:
    """128-bit hash of every row's key tuple (collisions: ~N^2/2^129, nil even at a billion rows)."""
    cols = [pc.cast(table.column(k), pa.string()) for k in keys]
    joined = cols[0] if len(cols) == 1 else pc.binary_join_element_wise(*cols, _SEP)
    values = joined.to_pylist()
    return np.array([blake2b(v.encode(), digest_size=16).digest() for v in values], dtype=HASH)


@dataclass
class _File:
    version: int  # the table version that added the file (the build version for files of the first build)
    hashes: np.ndarray  # sorted


@dataclass
class Duplicate:
    """Rows of ``path`` (added at ``version``) whose key an earlier indexed row already has."""
    path: str
    version: int
    hashes: np.ndarray
    keys: pa.Table  # their key columns


@dataclass
class KeyIndex:
    keys: tuple[str, ...]
    version: int = -1
    files: dict[str, _File] = field(default_factory=dict)
    base: np.ndarray = field(default_factory=lambda: np.empty(0, HASH))  # sorted hashes of all files at the last merge
    recent: set = field(default_factory=set)  # hashes of files added since
    lock: threading.Lock = field(default_factory=threading.Lock)
    _options: dict | None = None  # storage options of the lake
    _dt: object = None  # a DeltaTable this index walks forward version by version
    _fs: object = None  # a pyarrow filesystem rooted at the table
    _local: str | None = None  # the table's folder when the lake is local
    _prefix: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))  # base's first 8 bytes, as integers

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        found = np.zeros(len(hashes), bool)
        if len(self.base):  # binary search on the first 8 bytes as integers (fast), then compare all 16
            pos = np.searchsorted(self._prefix, _prefix(hashes)).clip(max=len(self.base) - 1)
            found = self.base[pos] == hashes
            shared = ~found & (self._prefix[pos] == _prefix(hashes))  # another hash with the same 8 bytes first
            if shared.any():
                exact = np.searchsorted(self.base, hashes[shared]).clip(max=len(self.base) - 1)
                found[shared] = self.base[exact] == hashes[shared]
        if self.recent:
            found |= np.fromiter((h in self.recent for h in hashes.tolist()), bool, len(hashes))
        return found

    def refresh(self, open_table) -> list[Duplicate]:
        """Bring the index to the table's latest version (``open_table(version)`` opens it; None: HEAD), walking the
        versions since the last refresh in order, so a duplicate is reported on the later of its files."""
        if self._dt is None:
            self._dt = open_table(None)
        else:
            self._dt.update_incremental()
        head = self._dt.version()
        if head < self.version:  # the table was recreated
            self.files.clear()
            self._merge()
            self.version = -1
        if head == self.version:
            return []
        if self.version < 0:
            return self._build(head)
        steps = list(range(self.version + 1, head + 1))
        per_version: list[tuple[int, list[str]]] = []
        active = set(self.files)
        walker = self._dt if len(steps) == 1 else open_table(steps[0])
        for v in steps:
            if v != steps[0]:
                walker.load_as_version(v)
            paths = set(walker.get_add_actions(flatten=False).column("path").to_pylist())
            per_version.append((v, ["-" + p for p in sorted(active - paths)] + sorted(paths - active)))
            active = paths
        dups: list[Duplicate] = []
        for v, changes in per_version:
            removed = [c[1:] for c in changes if c.startswith("-") and c[1:] in self.files]
            keys = {c: self.read_file(c, list(self.keys)) for c in changes if not c.startswith("-") and c in active}
            hashes = {p: key_hashes(t, self.keys) for p, t in keys.items()}
            if removed and keys and _same(self._hashes(removed), list(hashes.values())):
                # a rewrite of the same rows (compaction): no key came or went, the merged index stays
                for path in removed:
                    del self.files[path]
                for path, h in hashes.items():
                    self.files[path] = _File(v, np.sort(h))
                continue
            for path in removed:
                del self.files[path]
            if removed:
                self._merge()
            for path in keys:
                if (dup := self._add_file(path, v, keys[path], hashes[path])) is not None:
                    dups.append(dup)
        self.version = head
        return dups

    def _build(self, head: int) -> list[Duplicate]:
        """The first refresh: the key columns of every file at HEAD, one sort, duplicates by adjacency."""
        paths = sorted(self._dt.get_add_actions(flatten=False).column("path").to_pylist())
        self.files = {p: _File(head, np.sort(key_hashes(self.read_file(p, list(self.keys)), self.keys))) for p in paths}
        self._merge()
        self.version = head
        repeated = self.base[1:][self.base[1:] == self.base[:-1]]
        if not len(repeated):
            return []
        dups = []
        for path in self.files_holding(repeated):
            keys = self.read_file(path, list(self.keys))
            hashes = key_hashes(keys, self.keys)
            rows = np.flatnonzero(np.isin(hashes, repeated))
            dups.append(Duplicate(path, head, hashes[rows], keys.take(pa.array(rows))))
        return dups

    @property
    def table(self):
        """The DeltaTable this index last refreshed from (at HEAD then): write through it, no log reload."""
        return self._dt

    def read_file(self, path: str, columns: list[str] | None = None) -> pa.Table:
        """One data file of the table (a path relative to it, as the log names it)."""
        if self._local is not None:  # pyarrow's own filesystem: no Python in the read path
            return pq.read_table(os.path.join(self._local, unquote(path)), columns=columns)
        if self._fs is None:
            import pyarrow.fs as pa_fs
            from deltalake.fs import DeltaStorageHandler

            self._fs = pa_fs.PyFileSystem(DeltaStorageHandler.from_table(self._dt._table, self._options))
        return pq.read_table(path, columns=columns, filesystem=self._fs)

    def _hashes(self, paths: list[str]) -> list[np.ndarray]:
        return [self.files[p].hashes for p in paths]

    def _add_file(self, path: str, version: int, keys: pa.Table, hashes: np.ndarray) -> Duplicate | None:
        repeated = self.contains(hashes)
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        within = np.zeros(len(hashes), bool)
        within[order[1:]] = ordered[1:] == ordered[:-1]
        repeated |= within
        self.files[path] = _File(version, ordered)
        self._add(ordered)
        if not repeated.any():
            return None
        rows = np.flatnonzero(repeated)
        return Duplicate(path, version, hashes[rows], keys.take(pa.array(rows)))

    def files_holding(self, hashes: np.ndarray) -> list[str]:
        """The active files holding a row with one of these key hashes."""
        return [p for p, f in self.files.items() if np.isin(f.hashes, hashes).any()]

    def _add(self, hashes: np.ndarray) -> None:
        self.recent.update(hashes.tolist())
        if len(self.recent) > max(1 << 16, len(self.base) // 4):
            self._merge()

    def _merge(self) -> None:
        parts = [f.hashes for f in self.files.values()]
        self.base = np.sort(np.concatenate(parts)) if parts else np.empty(0, HASH)
        self._prefix = _prefix(self.base)
        self.recent = set()


def _prefix(hashes: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each hash as an unsigned integer; sorts as the bytes do (big-endian)."""
    return np.ascontiguousarray(hashes).view(">u8")[::2].astype(np.uint64)


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    """Whether two lists of hash arrays hold the same multiset of hashes."""
    if sum(map(len, a)) != sum(map(len, b)):
        return False
    return bool(np.array_equal(np.sort(np.concatenate(a)), np.sort(np.concatenate(b))))


_INDEXES: dict[str, KeyIndex] = {}
_GUARD = threading.Lock()


@atexit.register
def _drop_indexes() -> None:
    """Release the cached tables and filesystems before the interpreter tears down (a deltalake-backed
    pyarrow filesystem finalised during shutdown can abort the process)."""
    _INDEXES.clear()


def index_for(uri: str, keys: tuple[str, ...], options: dict | None) -> KeyIndex:
    """The process-wide index of the table at ``uri`` (one per table, shared by every Lake object)."""
    with _GUARD:
        if uri not in _INDEXES or _INDEXES[uri].keys != keys:
            local = uri.removeprefix("file://") if "://" not in uri or uri.startswith("file://") else None
            _INDEXES[uri] = KeyIndex(keys, _options=options, _local=local)
        return _INDEXES[uri]
