"""The automatic compaction of batch files that ``Lake.merge_insert`` runs as they pile up.

A delta-rs commit's cost grows with the number of active files (12 ms at 20 files, 42 ms at 420 with
deltalake 1.6), so ``merge_insert`` merges its batch-sized files once enough of them pile up. It must
merge *only* those: delta-rs's compaction takes every file up to ``target_size`` and packs them,
largest first, into bins of that size, so with a plain target each compaction also rewrote an
earlier compacted file together with a few batch files, and its cost grew with the table (0.4 s at
128k rows, 1.5 s at 600k). :func:`compaction_target` picks a target that leaves every earlier
compacted ("big") file alone in its own bin (a one-file bin is not rewritten) and puts all the small
files in one bin: a row is rewritten once.

The key index (sluice/key_index.py) takes a compaction into one file in without reading it back: its
keys are those of the files it replaced.
"""

from __future__ import annotations

import numpy as np

#: the largest file the automatic compaction writes
MAX_FILE_BYTES = 128 << 20


def compaction_target(sizes, rows, files: int, batch_rows: int, cap: int = MAX_FILE_BYTES) -> int | None:
    """The ``target_size`` for delta-rs's compaction that merges the small files of a table whose active
    files have these sizes (bytes) and row counts, and rewrites none of the big ones; None while fewer
    than ``files`` are small.

    Small: fewer rows than half a compacted file (``files`` batches of ``batch_rows``) and under half of
    ``cap``. delta-rs skips files over
    the target and packs the rest, largest first, into the first bin they fit, and rewrites no bin of
    one file. So a target under ``min(big) + min(small)`` (and under ``2 * min(big)``) keeps each big
    file alone in its bin, and a target of the sum of the small files puts them all in one bin (if
    that is also under the first bound, in a few bins)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if len(sizes) < files:
        return None
    is_small = small_by_rows(rows, files, batch_rows) & (sizes < cap // 2)
    small, big = np.sort(sizes[is_small]), np.sort(sizes[~is_small])
    if len(small) < files:
        return None
    target = min(cap, int(small.sum()))
    if len(big):
        target = min(target, int(big[0] + small[0] - 1), int(2 * big[0] - 1))
    return target


def small_by_rows(rows, files: int, batch_rows: int) -> np.ndarray:
    """Which files hold fewer rows than half a compacted file (``files`` batches of ``batch_rows``; the caller's
    batch, not an estimate from the files: with many compacted files that would count some as batches)."""
    return np.asarray(rows, dtype=np.int64) < files * max(batch_rows, 1) / 2


def compact_small_files(index, files: int, batch_rows: int, commit, retries: int, what: str) -> None:
    """Compact the table the index follows (``index.table``) if :func:`compaction_target` says so (never
    when ``files`` is 0), under
    the table's compaction lock and planned on HEAD (sluice/compaction_lock.py)."""
    from deltalake import WriterProperties

    from sluice.catalog import with_retries
    from sluice.compaction_lock import compaction_lock

    rows = [len(f.hashes) for f in index.files.values()]  # the index is at the table's version: no log read
    if files == 0 or len(rows) < files or small_by_rows(rows, files, batch_rows).sum() < files:
        return

    def attempt() -> None:
        table = index.table
        with compaction_lock(table.table_uri):
            table.update_incremental()  # plan on HEAD: another process may have compacted these files
            compact(table)

    def compact(table) -> None:
        actions = table.get_add_actions(flatten=False)
        target = compaction_target(actions.column("size_bytes").to_pylist(), actions.column("num_records").to_pylist(),
                                   files, batch_rows)
        if target is None:
            return
        try:  # Snappy, as the batch files: optimize's default (ZSTD) made a compacted file half the bytes a row,
            # so it looked like a pile of small files to the next compaction; and it is twice as slow to write
            table.optimize.compact(target_size=target, writer_properties=WriterProperties(compression="SNAPPY"),
                                   commit_properties=commit)
        except Exception:
            table.update_incremental()
            raise

    with_retries(attempt, retries, what)
