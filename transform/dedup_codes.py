"""Dedup's window codes, computed once per image and kept between runs in ``image_groups``.

Every run hashed the 75 query windows (and the 4, or 8 with ``dedup.mirrored``, indexed windows) of
every image with detail: a cost linear in the lake that an incremental run paid for all images although
only the new ones had changed (2.9 of the 7.7 s of an incremental run on CIFAR-10's 60,000 photos with
600 new, profiled). The stage now writes each image's codes beside its group (``window_codes``,
``probe_codes``: little-endian int64, 600 and 32 or 64 bytes; null for a detail-free image, which the
window search leaves out), and a run that builds on the stored rows (:mod:`transform.dedup_state`: the
same settings and matching version, the same pixels, so the same thumbnails and codes) reads them and
hashes only the images without them. A full pass computes every code, as before, and stores them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from transform.dedup_match import WINDOWS, Window, window_codes

CODES_SHARE = 32_768  # images a window-code task hashes at most (Dask path: ~60 MB of thumbnails and codes)


@dataclass
class WindowCodes:
    """The codes of every image row (``windows``: n x len(WINDOWS), ``probes``: n x m) and which rows hold
    them (read from the stored table, or computed during this run)."""

    windows: np.ndarray
    probes: np.ndarray
    have_windows: np.ndarray
    have_probes: np.ndarray

    @classmethod
    def empty(cls, n: int, probes: int) -> WindowCodes:
        return cls(np.zeros((n, len(WINDOWS)), np.int64), np.zeros((n, probes), np.int64), np.zeros(n, bool),
                   np.zeros(n, bool))

    @classmethod
    def read(cls, stored: pl.DataFrame | None, ids: pl.Series, probes: int) -> WindowCodes:
        """The codes ``stored`` (the previous ``image_groups``) holds for the images ``ids`` (in row order);
        a code of another length than this run's (other windows) is not taken."""
        codes = cls.empty(len(ids), probes)
        if stored is None or "window_codes" not in stored.columns:
            return codes
        rows = pl.DataFrame({"image_id": ids}).with_row_index("row").join(
            stored.select("image_id", "window_codes", "probe_codes"), on="image_id", how="inner")
        for column, target, have in (("window_codes", codes.windows, codes.have_windows),
                                     ("probe_codes", codes.probes, codes.have_probes)):
            width = target.shape[1] * 8
            ok = rows.filter(pl.col(column).bin.size() == width)
            if ok.height:
                at = ok["row"].to_numpy()
                target[at] = np.frombuffer(b"".join(ok[column].to_list()), "<i8").reshape(len(at), -1)
                have[at] = True
        return codes

    def binary(self, which: str) -> pa.Array:
        """One column to store: each row's codes as bytes, null where the row has none."""
        codes, have = (self.windows, self.have_windows) if which == "windows" else (self.probes, self.have_probes)
        width = codes.shape[1] * 8
        offsets = np.zeros(len(have) + 1, np.int32)
        np.cumsum(have * width, out=offsets[1:])
        data = np.ascontiguousarray(codes if have.all() else codes[have], "<i8")  # all rows: no copy
        validity = pa.array(have).buffers()[1] if not have.all() else None
        return pa.Array.from_buffers(pa.binary(), len(have), [validity, pa.py_buffer(offsets), pa.py_buffer(data)],
                                     null_count=int((~have).sum()))


def fill(codes: np.ndarray | None, have: np.ndarray | None, thumbs: np.ndarray, windows: list[Window],
         rows: np.ndarray, client=None) -> np.ndarray:
    """``window_codes(thumbs[rows], windows).ravel()``, taking the rows' codes from ``codes`` where ``have``
    says it holds them and computing (and storing there) the others, ``CODES_SHARE`` images at a time;
    with ``client`` as tasks over shares of them (at most ``CODES_SHARE`` images each, at most two tasks per
    worker thread in flight), so the driver does not hash every window of every image alone and a task's
    memory does not grow with the table. Without ``codes`` (None) they are computed into a new array."""
    if codes is None:
        codes, have = np.empty((len(thumbs), len(windows)), np.int64), np.zeros(len(thumbs), bool)
    missing = rows[~have[rows]]
    if client is None or len(missing) == 0:
        for start in range(0, len(missing), CODES_SHARE):
            part = missing[start:start + CODES_SHARE]
            codes[part] = window_codes(thumbs[part], windows)
    else:
        from sluice.compute import total_threads

        window_size = 2 * total_threads(client)
        step = min(-(-len(missing) // window_size), CODES_SHARE)
        starts, running = deque(range(0, len(missing), step)), deque()
        while starts or running:
            while starts and len(running) < window_size:
                start = starts.popleft()
                running.append((start, client.submit(window_codes, client.scatter(thumbs[missing[start:start + step]]),
                                                     windows, pure=False)))
            start, future = running.popleft()
            codes[missing[start:start + step]] = future.result()
            future.release()
    have[missing] = True
    whole = len(rows) == len(codes) and (len(rows) == 0 or (rows[0] == 0 and rows[-1] == len(rows) - 1))
    return codes.ravel() if whole else codes[rows].ravel()  # rows 0..n-1 in order: no copy
