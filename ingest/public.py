"""The ``ingest_public`` stage: land every configured ``ingest.sources`` entry in ``raw_images``.

Each source is read by the connector of its ``kind`` (``ingest/sources/``, found through the
connector registry) and landed by ``ingest.landing``: merge-inserted in batches (a rerun adds
nothing), rejected inputs in ``quarantine`` with their reason, counts reconciled per source.
"""

from __future__ import annotations

import os
from pathlib import Path

from ingest.landing import ingest_source, summarize
from sluice import not_downloaded
from sluice.connectors import SUBJECT_KEYS
from sluice.errors import InputError
from sluice.lake import Lake
from sluice.privacy import KEY_ENV, subject_pseudonymizer
from sluice.stage import stage_logger


def check_sources(sources, configured, only: str | None) -> None:
    """Fail fast, before anything is written: nothing to ingest, or a configured path missing."""
    if not configured:
        raise InputError("no ingest sources configured: add entries under ingest.sources in params.yaml "
                         "(see docs/connectors.md)")
    if only is not None and not sources:
        names = ", ".join(s.name for s in configured)
        raise InputError(f"no ingest source named '{only}' in params.yaml (sources: {names})")
    for src in sources:
        if not os.path.exists(src.path):
            raise InputError(f"{src.path}: path of ingest source '{src.name}' does not exist")
        if not os.path.isdir(src.path) and (note := not_downloaded.file_note(Path(src.path))):
            raise InputError(f"{src.path}: path of ingest source '{src.name}' is {note}")


def run(params, only: str | None = None) -> dict:
    """Ingest every configured public source (or just ``only``) and return the stage summary."""
    from sluice.runs import new_run_id

    configured = params.ingest.sources
    sources = [s for s in configured if only is None or s.name == only]
    check_sources(sources, configured, only)
    subject_name = subject_pseudonymizer(params.privacy.pseudonymize_subjects)
    if subject_name is not None and any(getattr(s, key, None) for s in sources for key in SUBJECT_KEYS):
        subject_name("")  # refuses now, before anything lands, where the key is required and missing
    log = stage_logger("ingest")
    lake = Lake.from_params(params)
    run_id = new_run_id("ingest")
    summary = {}
    for src in sources:
        stats = ingest_source(lake, src, run_id, params.ingest.batch_rows, params.ingest.max_file_bytes,
                              params.ingest.batch_bytes, subject_name)
        summary[src.name] = summarize(src, stats)
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(stats.reasons.items())) or "none"
        log.info(f"{src.name}: seen {stats.seen}, new {stats.inserted}, already present {stats.already_present}, "
                 f"quarantined {stats.quarantined} ({reasons})")
        if pointers := stats.reasons.get(not_downloaded.REASON):
            log.warning(f"{src.name}: {pointers} files are Git LFS or git-annex pointers, not images (quarantined as "
                        f"{not_downloaded.REASON}): fetch them in their repository (`git lfs pull`), then run again")
        if stats.subjects_as_given:
            log.warning(f"{src.name}: {stats.subjects_as_given} images name the person they show (raw_images.subject), "
                        f"stored as the source gives them: set ${KEY_ENV} to store keyed pseudonyms instead "
                        "(privacy.pseudonymize_subjects, docs/privacy.md)")
        if stats.relabelled or stats.withdrawn:
            log.info(f"{src.name}: {stats.relabelled} rows take the label or split the source gives now, "
                     f"{stats.withdrawn} labels withdrawn from files no longer in it (their images stay, unlabelled)")
    return {"run_id": run_id, "sources": summary,
            "versions": {t: lake.version(t) for t in ("raw_images", "quarantine")},
            "rows": {t: lake.count(t) for t in ("raw_images", "quarantine")}}


def main() -> None:
    from sluice.stage import run_stage

    run_stage("ingest_public", run)


if __name__ == "__main__":
    main()
