"""Erased data stays erased: rows that would bring an erased image, URI or worker back are not written.

The originals of an erased image usually still exist somewhere (a source folder, a website, a crowd
export), and the next ingest, crawl or votes run would land them again. Every write through
:class:`sluice.lake.Lake` (merge-insert, upsert, append, overwrite) drops the rows whose ``image_id``
hashes to an erased image, whose ``worker_id``, ``source_uri`` or ``url`` hashes to an erased
selector value, or whose ``item`` (a vote's name for its image, image_id still null: it landed before
or without the image) hashes, itself or its path's tail, to a name the erased image had (its path
suffixes, URI, ``item_id``), using the hashes the ``erasures`` table holds (:func:`all_targets`). The
landing then counts them as already present; the drop is logged as a count, never with the values.
"""

from __future__ import annotations

import logging

from sluice.erasure_scan import Targets, sha

# not sluice.stage.stage_logger (stage imports the lake, which imports this): the handler's formatter names a
# record without a stage by its logger, so this prints "[erase] ..." (sluice/stage.py)
log = logging.getLogger("sluice.erase")

# column -> which hashes it is checked against
COLUMNS = {"image_id": "ids", "worker_id": "values", "source_uri": "values", "url": "values"}
AUDIT_TABLE = "erasures"


def all_targets(lake) -> Targets:
    """The hashes of everything every erasure so far erased (empty when nothing was)."""
    targets = Targets()
    if lake.exists(AUDIT_TABLE):
        columns = ["selector_hashes", "image_hashes", "pixel_hashes"]
        named = "name_hashes" in lake.dataset(AUDIT_TABLE).schema.names  # not in lakes erased from before it came
        for row in lake.read(AUDIT_TABLE, columns + (["name_hashes"] if named else [])).to_pylist():
            targets.update(Targets(set(row["image_hashes"]), set(row["pixel_hashes"]), set(row["selector_hashes"]),
                                   set(row.get("name_hashes") or ())))
    return targets



def drop_erased(name: str, data, targets: Targets):
    """``data`` (a conformed Arrow table of table ``name``) without the rows that hold erased data."""
    import pyarrow as pa

    if name == AUDIT_TABLE or not targets or data.num_rows == 0:
        return data
    keep = [True] * data.num_rows
    for column, kind in COLUMNS.items():
        wanted = getattr(targets, kind)
        if column not in data.column_names or not wanted:
            continue
        for i, value in enumerate(data.column(column).to_pylist()):
            if keep[i] and value is not None and sha(value) in wanted:
                keep[i] = False
    if "item" in data.column_names and targets.names:
        for i, value in enumerate(data.column("item").to_pylist()):
            if keep[i] and value is not None and targets.names_item(value):
                keep[i] = False
    dropped = keep.count(False)
    if dropped:
        log.warning("%s: %d row(s) of erased data not written again (see `sluice erase`)", name, dropped)
        data = data.filter(pa.array(keep))
    return data
