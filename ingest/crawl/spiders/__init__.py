"""Spiders: the generic, params-driven :class:`CatalogueSpider`; site-specific spiders subclass it."""

from ingest.crawl.spiders.catalogue import CatalogueSpider

__all__ = ["CatalogueSpider"]
