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
import json
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
_VANISHED_RETRIES = 5  # fresh rebuilds when data files keep vanishing under a refresh (then it is damage)
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
    recent: np.ndarray = field(default_factory=lambda: np.empty(0, HASH))  # sorted hashes of files added since
    lock: threading.Lock = field(default_factory=threading.Lock)
    _options: dict | None = None  # storage options of the lake
    _dt: object = None  # a DeltaTable this index walks forward version by version
    _fs: object = None  # a pyarrow filesystem rooted at the table
    _local: str | None = None  # the table's folder when the lake is local
    _prefix: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))  # base's first 8 bytes, as integers
    _recent_prefix: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        # two sorted arrays, both searched: a set of recent hashes was slower (3.4 ms a batch at 200k entries)
        return _member(self.base, self._prefix, hashes) | _member(self.recent, self._recent_prefix, hashes)

    def refresh(self, open_table, latest: bool = True) -> list[Duplicate]:
        """Bring the index to the table's latest version (``open_table(version)`` opens it; None: HEAD), walking the
        versions since the last refresh in order, so a duplicate is reported on the later of its files.
        ``latest=False``: only up to the version the table object is at (just after this process's commit,
        which is all that commit needs: a later commit's duplicates are its own writer's to repair)."""
        if self._dt is None:
            self._dt = open_table(None)
        elif latest and self._maybe_behind():
            self._dt.update_incremental()
        head = self._dt.version()
        if head < self.version:  # the table was recreated
            self.files.clear()
            self._merge()
            self.version = -1
        if head == self.version:
            return []
        from deltalake.exceptions import TableNotFoundError

        try:
            return self._build(head) if self.version < 0 else self._walk(open_table, head)
        except FileNotFoundError:  # maintenance compacted a file away and vacuumed it while it was read
            return self._rebuild()
        except TableNotFoundError:  # the versions to walk are gone: `sluice erase` (another process) removed them
            return self._rebuild()

    def _rebuild(self) -> list[Duplicate]:
        """Index the table afresh at its newest version: a data file of the version being read was vacuumed
        (``sluice lake maintain --retention-hours 0`` right after a compaction), so its rows are in the files
        that replaced it. Duplicates found are reported at that version (the writer that committed first is
        no longer known; either copy is repaired the same way)."""
        for attempt in range(_VANISHED_RETRIES + 1):
            self._dt.update_incremental()
            self.files.clear()
            self._merge()
            self.version = -1
            try:
                return self._build(self._dt.version())
            except FileNotFoundError:
                if attempt == _VANISHED_RETRIES:
                    raise
        raise AssertionError("unreachable")

    def _walk(self, open_table, head: int) -> list[Duplicate]:
        """Bring the index from its version to ``head`` one version at a time (see :meth:`refresh`)."""
        steps = list(range(self.version + 1, head + 1))
        per_version: list[tuple[int, list[str]]] = []
        active = set(self.files)
        walker = self._dt if len(steps) == 1 else open_table(steps[0])
        records: dict[str, int | None] = {}  # rows of each file added in these versions
        for v in steps:
            if v != steps[0]:
                walker.load_as_version(v)
            actions = walker.get_add_actions(flatten=False)
            paths = set(actions.column("path").to_pylist())
            per_version.append((v, ["-" + p for p in sorted(active - paths)] + sorted(paths - active)))
            records.update((p, n) for p, n in zip(actions.column("path").to_pylist(),
                                                   actions.column("num_records").to_pylist()) if p not in active)
            active = paths
        dups: list[Duplicate] = []
        for v, changes in per_version:
            removed = [c[1:] for c in changes if c.startswith("-") and c[1:] in self.files]
            gone, added = [c[1:] for c in changes if c.startswith("-")], [c for c in changes if not c.startswith("-")]
            if gone == removed and self._compacted(v, removed, added, active, records):
                continue
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

    def _maybe_behind(self) -> bool:
        """Whether a newer version of the table may exist. On a local lake: whether the log holds the next
        version's commit (delta-rs lists the whole log folder to find out, a cost that grows with the
        number of versions); elsewhere always (the listing starts after the current version there)."""
        if self._local is None:
            return True
        log, version = os.path.join(self._local, "_delta_log"), self._dt.version()
        return os.path.exists(os.path.join(log, f"{version + 1:020d}.json")) or not os.path.exists(
            os.path.join(log, f"{version:020d}.json"))

    def _compacted(self, version: int, removed: list[str], added: list[str], active: set,
                   records: dict[str, int | None]) -> bool:
        """Take in a compaction without hashing what it wrote: the version is an OPTIMIZE (which rewrites
        rows, never changes them), it removed only indexed files (``removed``) and added files with as
        many rows as they held. The largest added file's keys are then the removed files' keys less
        those of the other added files (read: the remainder of a pile, a few batches). False (nothing
        done) otherwise."""
        if not removed or not added or any(p not in active or records.get(p) is None for p in added):
            return False
        if sum(records[p] for p in added) != sum(len(self.files[p].hashes) for p in removed):
            return False
        if self._operation(version) != "OPTIMIZE":
            return False
        largest = max(added, key=lambda p: records[p])
        others = {p: np.sort(key_hashes(self.read_file(p, list(self.keys)), self.keys)) for p in added if p != largest}
        rest = _minus(np.concatenate(self._hashes(removed)), list(others.values()))
        if rest is None or len(rest) != records[largest]:
            return False
        for path in removed:
            del self.files[path]
        for path, hashes in [(largest, rest), *others.items()]:
            self.files[path] = _File(version, hashes)
        return True

    def _operation(self, version: int) -> str | None:
        """The operation of a commit, read from the log of a local lake (None elsewhere or if unreadable)."""
        if self._local is None:
            return None
        try:
            with open(os.path.join(self._local, "_delta_log", f"{version:020d}.json")) as log:
                for line in log:
                    if line.startswith('{"commitInfo"'):
                        return json.loads(line)["commitInfo"].get("operation")
        except (OSError, ValueError, KeyError):
            return None
        return None

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
        """Take in a file's sorted hashes: inserted into ``recent`` (a copy of ``recent``, not of the whole index),
        which is inserted into ``base`` (a copy of the index, no sort) once it holds sqrt(2 * index * file)
        hashes, the size that makes the two copies cost the same per file."""
        self.recent = np.insert(self.recent, np.searchsorted(self.recent, hashes), hashes)
        if len(self.recent) > max(1 << 16, int(np.sqrt(2 * len(self.base) * max(len(hashes), 1)))):
            self.base = np.insert(self.base, np.searchsorted(self.base, self.recent), self.recent)
            self._prefix = _prefix(self.base)
            self.recent = np.empty(0, HASH)
        self._recent_prefix = _prefix(self.recent)

    def _merge(self) -> None:
        parts = [f.hashes for f in self.files.values()]
        self.base = np.sort(np.concatenate(parts)) if parts else np.empty(0, HASH)
        self._prefix = _prefix(self.base)
        self.recent = np.empty(0, HASH)
        self._recent_prefix = _prefix(self.recent)


def _member(ordered: np.ndarray, prefix: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Which ``hashes`` are in ``ordered`` (sorted; ``prefix`` its :func:`_prefix`): binary search on the first
    8 bytes as integers (fast), then a compare of all 16."""
    if not len(ordered):
        return np.zeros(len(hashes), bool)
    first = _prefix(hashes)
    order = np.argsort(first)  # sorted needles: each search starts where the last ended (2.6x faster at 1M)
    pos = np.empty(len(hashes), np.intp)
    pos[order] = np.searchsorted(prefix, first[order])
    pos = pos.clip(max=len(ordered) - 1)
    found = ordered[pos] == hashes
    shared = ~found & (prefix[pos] == first)  # another hash with the same 8 bytes first
    if shared.any():
        exact = np.searchsorted(ordered, hashes[shared]).clip(max=len(ordered) - 1)
        found[shared] = ordered[exact] == hashes[shared]
    return found


def _prefix(hashes: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each hash as an unsigned integer; sorts as the bytes do (big-endian)."""
    return np.ascontiguousarray(hashes).view(">u8")[::2].astype(np.uint64)


def _minus(whole: np.ndarray, parts: list[np.ndarray]) -> np.ndarray | None:
    """The sorted multiset ``whole`` less every hash of ``parts``; None if one is not in it."""
    whole = np.sort(whole)
    if not parts or not sum(map(len, parts)):
        return whole
    values, counts = np.unique(whole, return_counts=True)
    taken, times = np.unique(np.concatenate(parts), return_counts=True)
    pos = np.searchsorted(values, taken).clip(max=max(len(values) - 1, 0))
    if not len(values) or not (values[pos] == taken).all() or (counts[pos] < times).any():
        return None
    counts[pos] -= times
    return np.repeat(values, counts)


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
