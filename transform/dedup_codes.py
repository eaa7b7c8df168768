"""Dedup's window codes, computed once per image and kept between runs in ``image_groups``.

Every run hashed the 118 query windows (and the 4, or 8 with ``dedup.mirrored``, indexed windows) of
every image with detail: a cost linear in the lake that an incremental run paid for all images although
only the new ones had changed (2.9 of the 7.7 s of an incremental run on CIFAR-10's 60,000 photos with
600 new, profiled). The stage now writes each image's codes beside its group (``window_codes``,
``probe_codes``: little-endian int64, 944 and 32 or 64 bytes; null for a detail-free image, which the
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
CHUNK_ROWS = 1 << 20  # image rows per stored chunk of codes (at most 1,008 MiB: Arrow binary offsets are int32)


@dataclass
class WindowCodes:
    """The images' codes known so far: ``stored`` (the previous ``image_groups``' image_id, window_codes and
    probe_codes, or None) for the images ``ids`` (in row order). :meth:`bind` lays them out for the rows that
    are searched (the images with detail): ``windows`` (rows x len(WINDOWS)) and ``probes`` (rows x m),
    with which of them hold a code (read, or computed during this run)."""

    ids: pl.Series
    probes_per_image: int
    stored: pl.DataFrame | None = None
    rows: np.ndarray | None = None
    windows: np.ndarray | None = None
    probes: np.ndarray | None = None
    have_windows: np.ndarray | None = None
    have_probes: np.ndarray | None = None

    def bind(self, rows: np.ndarray) -> WindowCodes:
        """Lay the codes out for ``rows`` (increasing row numbers): those ``stored`` holds are taken, a code of
        another length than this run's (other windows) is not."""
        self.rows = np.asarray(rows, np.int64)
        self.windows = np.zeros((len(rows), len(WINDOWS)), np.int64)
        self.probes = np.zeros((len(rows), self.probes_per_image), np.int64)
        self.have_windows, self.have_probes = np.zeros(len(rows), bool), np.zeros(len(rows), bool)
        if self.stored is None or "window_codes" not in self.stored.columns:
            return self
        at = pl.DataFrame({"image_id": self.ids.gather(self.rows)}).with_row_index("at").join(
            self.stored.select("image_id", "window_codes", "probe_codes"), on="image_id", how="inner")
        for column, target, have in (("window_codes", self.windows, self.have_windows),
                                     ("probe_codes", self.probes, self.have_probes)):
            ok = at.filter(pl.col(column).bin.size() == target.shape[1] * 8)
            if ok.height:
                where = ok["at"].to_numpy()
                target[where] = np.frombuffer(b"".join(ok[column].to_list()), "<i8").reshape(len(where), -1)
                have[where] = True
        self.stored = None  # taken: not held twice
        return self

    def binary(self, which: str) -> pa.ChunkedArray:
        """One column to store, a value per image row: its codes as bytes, null where it has none (a
        detail-free image). In chunks of CHUNK_ROWS rows, whose bytes stay within Arrow's 2 GiB a chunk."""
        n = len(self.ids)
        have = np.zeros(n, bool)
        chunks = []
        if self.rows is not None:
            codes, known = (self.windows, self.have_windows) if which == "windows" else (self.probes, self.have_probes)
            have[self.rows[known]] = True
            data = np.ascontiguousarray(codes if known.all() else codes[known], "<i8").reshape(-1)  # all: no copy
            width = codes.shape[1]
        else:
            data, width = np.zeros(0, "<i8"), 0
        taken = 0
        for start in range(0, max(n, 1), CHUNK_ROWS):
            part = have[start:start + CHUNK_ROWS]
            count = int(part.sum())
            offsets = np.zeros(len(part) + 1, np.int32)
            np.cumsum(part * (width * 8), out=offsets[1:])
            validity = pa.array(part).buffers()[1] if not part.all() else None
            chunks.append(pa.Array.from_buffers(pa.binary(), len(part), [
                validity, pa.py_buffer(offsets), pa.py_buffer(data[taken * width:(taken + count) * width])],
                null_count=len(part) - count))
            taken += count
        return pa.chunked_array(chunks, pa.binary())


def fill(codes: np.ndarray | None, have: np.ndarray | None, thumbs: np.ndarray, windows: list[Window],
         rows: np.ndarray, client=None) -> np.ndarray:
    """``window_codes(thumbs[rows], windows).ravel()``, taking each row's codes from ``codes`` (laid out for
    ``rows``: :meth:`WindowCodes.bind`) where ``have`` says it holds them and computing (and storing there)
    the others, ``CODES_SHARE`` images at a time; with ``client`` as tasks over shares of them (at most
    ``CODES_SHARE`` images each, at most two tasks per worker thread in flight), so the driver does not hash
    every window of every image alone and a task's memory does not grow with the table. Without ``codes``
    (None) they are computed into a new array."""
    if codes is None:
        codes, have = np.empty((len(rows), len(windows)), np.int64), np.zeros(len(rows), bool)
    if len(codes) != len(rows):
        raise ValueError(f"codes laid out for {len(codes)} rows, asked for {len(rows)}")
    missing = np.flatnonzero(~have)
    if client is None or len(missing) == 0:
        for start in range(0, len(missing), CODES_SHARE):
            part = missing[start:start + CODES_SHARE]
            codes[part] = window_codes(thumbs[rows[part]], windows)
    else:
        from sluice.compute import total_threads

        window_size = 2 * total_threads(client)
        step = min(-(-len(missing) // window_size), CODES_SHARE)
        starts, running = deque(range(0, len(missing), step)), deque()
        while starts or running:
            while starts and len(running) < window_size:
                start = starts.popleft()
                block = client.scatter(thumbs[rows[missing[start:start + step]]], hash=False)
                running.append((start, client.submit(window_codes, block, windows, pure=False)))
            start, future = running.popleft()
            codes[missing[start:start + step]] = future.result()
            future.release()
    have[missing] = True
    return codes.ravel()
