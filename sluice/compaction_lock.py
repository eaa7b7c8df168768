"""One compaction of a table at a time, planned on the table as it is once it is this one's turn.

deltalake 1.x commits two concurrent compactions of the same files: its conflict checker lets a
concurrent commit's removes pass when they do not change data (``dataChange=false``, which is what a
compaction writes; delta-io/delta-rs#3982), so the loser's commit removes files that are already gone
and adds a second copy of their rows (measured with deltalake 1.6.6: two OPTIMIZEs of 10 rows leave
20). A compaction planned on a stale snapshot does the same after the fact. Every compaction sluice
runs (``Lake.merge_insert``'s automatic one, ``sluice lake maintain``'s) therefore holds this lock
and reloads the table to HEAD inside it before planning.

On a local lake the lock is an exclusive ``flock`` on ``_sluice_compaction.lock`` in the table's
folder (names starting with ``_`` are never data files, and vacuum leaves them alone); it is
released when the holder exits, even by kill -9. Object storage has no such lock: there, run one
compacting process per table (docs/scale.md, known limits).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager

LOCK_NAME = "_sluice_compaction.lock"


def local_folder(uri: str) -> str | None:
    """The table's folder when ``uri`` is on the local filesystem, else None."""
    if "://" in uri and not uri.startswith("file://"):
        return None
    return uri.removeprefix("file://")


@contextmanager
def compaction_lock(uri: str):
    """Hold the table's compaction lock (a no-op on object storage, see the module docstring)."""
    folder = local_folder(uri)
    if folder is None or not os.path.isdir(folder):
        yield
        return
    with open(os.path.join(folder, LOCK_NAME), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
