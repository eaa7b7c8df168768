"""Where a project keeps its state, in one place.

The ``paths`` params section (:class:`sluice.config.PathsParams`) takes its defaults from here, the
generated ``dvc.yaml`` (:mod:`sluice.pipeline`) names the same files, and the few outputs stages write
at fixed places (metrics and plots that DVC tracks) import their location from here instead of
spelling it. Every path is relative to the project folder, which is where DVC runs the stages.
"""

from __future__ import annotations

from pathlib import Path

PYTHON = ".venv/bin/python"  # interpreter the dvc stages run (params `paths.python`, dvc.yaml `${paths.python}`)
MANIFESTS = "data/manifests"  # stage manifests (DVC outputs): table versions and counts, with the lake's id
DATASET = "data/dataset"      # the exported snapshot (DVC output) that training reads
SOURCE_LISTING = "data/source_listing.json"  # the image folders' digest (stage list_sources) ingest depends on
SOURCE_HASH_CACHE = "runs/source_hashes.sqlite"  # its content hashes by (device, inode, size, mtime): not tracked
METRICS = Path("reports/metrics")
PLOTS = Path("reports/plots")

SUMMARY_METRICS = METRICS / "summary.json"  # the headline figures `dvc metrics show` prints (sluice/summary.py)
LABELS_METRICS = METRICS / "labels.json"
TRAIN_METRICS = METRICS / "train.json"
TRAIN_CURVE = PLOTS / "train_curve.csv"
EVAL_METRICS = METRICS / "eval.json"
CONFUSION = PLOTS / "confusion.csv"
