"""The export's one pass over ``images``: every member's pixels straight into the snapshot's shards.

The snapshot's rows are sorted by image_id within each split; ``images`` is read in its files'
order. So each member gets its place (split, position) from the membership index up front, the
image shards are created at their final size (:func:`sluice.snapshot.open_image_shards`), and every
batch's rows are copied into their places: the pixels are written once, in bounded memory.

With ``compute.scheduler_address`` set the table's data files are shared out to Dask tasks that each
read theirs and fill their rows (rows are disjoint, so the bytes do not depend on which task ran when:
the same snapshot, tested). Workers that share the driver's filesystem (a cluster on one big machine, or
a shared filesystem) write into the shards where the driver created them; workers that cannot see that
folder (a cluster without a shared disk) read a data file a task and send its member rows back, and the
driver writes them (the same bytes, tested; the stage says so with a warning). Without an address
the pass runs in one process whatever the size: on this 2-core machine a LocalCluster's pass was
slower (1M images: 21-24 s vs 15-17 s for the stage; the lookup's scatter alone 3.6 s).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from sluice.lake import Lake
from sluice.membership import Lookup
from sluice.snapshot import SPLITS, open_image_shards, shard_bounds

BATCH_ROWS = 4096
COLUMNS = ["image_id", "pixels"]


class StagingNotShared(RuntimeError):
    """A Dask worker cannot see the folder the driver created the shards in."""


@dataclass
class ShardPlan:
    """Where every member's pixels go: its split and position there (rows of :attr:`ids`)."""

    ids: list[str]  # the members in valid splits, each split sorted by image_id
    split_of: np.ndarray  # int8 index into SPLITS, per member
    pos_of: np.ndarray  # int64 row within its split
    rows: dict[str, int]  # rows per split
    shape: tuple[int, int, int]
    shard_rows: int
    folder: Path  # where the image shards are

    @classmethod
    def create(cls, index: pl.DataFrame, shape: tuple[int, int, int], folder: Path, shard_rows: int
               ) -> tuple[ShardPlan, dict[str, list[np.ndarray]]]:
        """The plan for ``index`` (image_id, split, pos) and its shards, created in ``folder``."""
        folder.mkdir()
        rows = {split: int((index["split"] == split).sum()) for split in SPLITS}
        shards = {split: open_image_shards(folder, split, rows[split], shape, shard_rows) for split in SPLITS}
        plan = cls(index["image_id"].to_list(),
                   index["split"].replace_strict({s: k for k, s in enumerate(SPLITS)}, return_dtype=pl.Int8).to_numpy(),
                   index["pos"].to_numpy(), rows, shape, shard_rows, folder)
        return plan, shards

    def open(self) -> dict[str, list[np.ndarray]]:
        """The shards as writable maps, in another process (a Dask worker)."""
        if not self.folder.is_dir():
            raise StagingNotShared(f"{self.folder} is not visible to this worker")
        shards = {}
        for split in SPLITS:
            bounds = shard_bounds(self.rows[split], self.shard_rows)
            shards[split] = [np.load(self.folder / f"{split}-{k:05d}.images.npy", mmap_mode="r+") if stop > start
                             else np.zeros((0, *self.shape), np.uint8) for k, (start, stop) in enumerate(bounds)]
        return shards


def pixel_matrix(pixels: pa.ChunkedArray | pa.Array, rows: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Gather ``pixels[rows]`` (equal-length binary values) into one uint8 (n, H, W, 3) array."""
    if len(rows) == 0:
        return np.zeros((0, *shape), np.uint8)
    taken = pc.take(pixels, pa.array(rows, pa.int64())).cast(pa.large_binary())
    if isinstance(taken, pa.ChunkedArray):
        taken = taken.combine_chunks()
    n = len(taken)
    offsets = np.frombuffer(taken.buffers()[1], np.int64)[taken.offset: taken.offset + n + 1]
    data = np.frombuffer(taken.buffers()[2], np.uint8)[offsets[0]: offsets[-1]]
    return data.reshape(n, *shape)  # a read-only view that keeps the Arrow buffer alive


def fill(batches, plan: ShardPlan, lookup: Lookup, shards: dict[str, list[np.ndarray]] | list) -> pl.DataFrame:
    """Copy each batch's members with pixels of the planned size into their shard rows (or onto a list:
    :func:`write`); returns (image_id, nbytes) of every member met (what the rejects are judged on)."""
    expected = int(np.prod(plan.shape))
    seen = []
    for batch in batches:
        ids = batch.column("image_id").cast(pa.string())
        at = lookup.rows(ids)  # not a join a batch: that probes every member each time (O(N^2 / B))
        hit = np.flatnonzero(at >= 0)
        if not len(hit):
            continue
        lengths = pc.binary_length(batch.column("pixels")).to_numpy(zero_copy_only=False)[hit].astype(np.int64)
        seen.append(pl.DataFrame({"image_id": ids.take(hit).to_pylist(), "nbytes": lengths}))
        good = hit[lengths == expected]
        for k, split in enumerate(SPLITS):
            rows = good[plan.split_of[at[good]] == k]
            if not len(rows):
                continue
            pos = plan.pos_of[at[rows]]
            order = np.argsort(pos)  # one gather a batch, then a run of rows per shard, in row order
            write(shards, plan, split, pos[order], pixel_matrix(batch.column("pixels"), rows[order], plan.shape))
    return pl.concat(seen) if seen else pl.DataFrame(schema={"image_id": pl.String, "nbytes": pl.Int64})


def write(shards, plan: ShardPlan, split: str, pos: np.ndarray, matrix: np.ndarray) -> None:
    """Rows ``matrix`` into their positions ``pos`` (increasing) of ``split``'s shards; with ``shards`` a list,
    the rows are kept there instead (a worker that cannot see the shards sends them to the driver)."""
    if isinstance(shards, list):
        shards.append((split, pos, np.array(matrix)))
        return
    shard, offset = np.divmod(pos, plan.shard_rows)
    cuts = np.flatnonzero(np.diff(shard)) + 1
    for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(shard)]])):
        shards[split][shard[lo]][offset[lo:hi]] = matrix[lo:hi]


def file_batches(lake: Lake, version: int):
    """``images`` (image_id, pixels) at ``version`` in batches, one file and one batch read ahead."""
    return lake.batches("images", COLUMNS, BATCH_ROWS, version)


def fragment_batches(fragments: list, schema: pa.Schema, file_format) -> object:
    """The same batches from some of the table's data files (pickled fragments: a task does not reopen
    the Delta log)."""
    part = ds.FileSystemDataset(fragments, schema, file_format, fragments[0].filesystem)
    return part.to_batches(columns=COLUMNS, batch_size=BATCH_ROWS, batch_readahead=1, fragment_readahead=1)


def fill_fragments(fragments: list, schema: pa.Schema, file_format, plan: ShardPlan, lookup: Lookup) -> pl.DataFrame:
    """A Dask task: :func:`fill` over these data files, writing into the shards where the driver made them."""
    return fill(fragment_batches(fragments, schema, file_format), plan, lookup, plan.open())


def rows_of_fragment(fragment, schema: pa.Schema, file_format, plan: ShardPlan, lookup: Lookup) -> tuple:
    """A Dask task where the workers cannot see the shards: one data file's member rows, (members met,
    [(split, positions, pixels)]), for the driver to write."""
    rows: list = []
    return fill(fragment_batches([fragment], schema, file_format), plan, lookup, rows), rows


def fill_on_dask(client, lake: Lake, version: int, plan: ShardPlan, lookup: Lookup, shards=None,
                 on_unshared=None) -> pl.DataFrame:
    """:func:`fill` over every data file of ``images``, the files shared out to tasks (about four per
    worker thread, so that unequal files even out). Workers that cannot see the folder of the shards (a
    cluster without a shared disk) raise :class:`StagingNotShared`, or with the driver's ``shards`` given
    read a data file a task and send its rows back, written here as they come (at most two a worker
    thread in flight, so the driver holds a few files' rows, never the snapshot's); ``on_unshared(why)``
    is told."""
    from distributed import as_completed

    from sluice.compute import total_threads

    whole = lake.dataset("images", version)
    fragments = list(whole.get_fragments())
    if not fragments:
        return pl.DataFrame(schema={"image_id": pl.String, "nbytes": pl.Int64})
    tasks = max(1, min(len(fragments), 4 * total_threads(client)))
    # keys of their own (hash=False): with content keys, a second call could scatter under the keys the scheduler is
    # still releasing from the first, and its tasks die with 'lost dependencies' (seen under load)
    plan_f, lookup_f = client.scatter([plan, lookup], broadcast=True, hash=False)
    sees = client.run(Path.is_dir, plan.folder)  # asked first: a failed task would log its traceback on the worker
    futures: list = []
    try:
        if shards is not None and not all(sees.values()):
            raise StagingNotShared(f"{plan.folder} is not visible to {sum(not v for v in sees.values())} of "
                                   f"{len(sees)} workers")
        futures = [client.submit(fill_fragments, fragments[k::tasks], whole.schema, whole.format, plan_f, lookup_f,
                                 pure=False) for k in range(tasks)]
        seen = [future.result() for future in as_completed(futures)]
    except StagingNotShared as err:
        client.cancel(futures)
        if shards is None:
            raise
        if on_unshared:
            on_unshared(str(err))
        seen, in_flight = [], deque()  # every file (again): rows a worker wrote in place get the same bytes

        def collect(future) -> None:
            met, rows = future.result()
            seen.append(met)
            for split, pos, matrix in rows:
                write(shards, plan, split, pos, matrix)
        for fragment in fragments:
            in_flight.append(client.submit(rows_of_fragment, fragment, whole.schema, whole.format, plan_f, lookup_f,
                                           pure=False))
            while len(in_flight) > 2 * total_threads(client):
                collect(in_flight.popleft())
        for future in in_flight:
            collect(future)
    return pl.concat(seen) if seen else pl.DataFrame(schema={"image_id": pl.String, "nbytes": pl.Int64})
