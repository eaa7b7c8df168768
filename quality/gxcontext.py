"""The Great Expectations file context under ``reports/quality/`` and its Data Docs site.

GX keeps suites and validation results as JSON in ``<reports>/gx/``; Data Docs are rendered from them
into ``<reports>/docs/`` (``index.html``). Everything is local: analytics are off, nothing is fetched
while building, and the pages GX writes with CDN links are rewritten to vendored copies of their
CSS/JS (``quality/offline_docs.py``), so the site renders with no network.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

SITE = "sluice_docs"


def open_context(reports_dir: Path | str):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    reports_dir = Path(reports_dir).absolute()
    reports_dir.mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="file", project_root_dir=str(reports_dir))
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    ctx.variables.analytics_enabled = False
    site = {"class_name": "SiteBuilder", "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(reports_dir / "docs")},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}
    sites = ctx.variables.data_docs_sites or {}
    if set(sites) != {SITE} or sites[SITE] != site:
        for name in list(sites):
            ctx.delete_data_docs_site(name)
        ctx.add_data_docs_site(SITE, site)
    ctx.variables.save()
    return ctx


@functools.cache
def _validation_context():
    """An in-memory context for running validations: no YAML rewritten per data asset."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    ctx.data_sources.add_pandas("sluice")
    return ctx


def batch_definition(asset_name: str):
    """A whole-dataframe batch definition for ``asset_name`` (the validated frame is passed per batch)."""
    source = _validation_context().data_sources.get("sluice")
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(asset_name)
    try:
        return asset.get_batch_definition("all")
    except (KeyError, ValueError, LookupError):
        return asset.add_batch_definition_whole_dataframe("all")


def forget_results(ctx, suite_names: list[str]) -> None:
    """Drop stored validation results of these suites so Data Docs show only the latest run."""
    base = Path(ctx.root_directory) / "uncommitted" / "validations"
    for name in suite_names:
        shutil.rmtree(base.joinpath(*name.split(".")), ignore_errors=True)  # GX nests dotted names


def build_docs(ctx, reports_dir: Path | str) -> Path:
    site = Path(reports_dir) / "docs"
    shutil.rmtree(site, ignore_errors=True)  # regenerated from the stores: no stale pages
    ctx.build_data_docs(site_names=[SITE])
    from quality.offline_docs import make_offline

    make_offline(site)
    return site / "index.html"
