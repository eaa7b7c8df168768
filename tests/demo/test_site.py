from demo.site import DEMO_ORIGIN
from ingest.crawl.server import CANONICAL_ORIGIN


def test_demo_inventory_uses_the_origin_the_crawl_records():
    assert DEMO_ORIGIN == CANONICAL_ORIGIN
