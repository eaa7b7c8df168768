from ingest.crawl.journal import Journal


def test_frontier_is_children_of_parsed_pages_not_yet_done(tmp_path):
    j = Journal(tmp_path, "run-1")
    j.links("http://s/", [{"url": "http://s/a", "kind": "page", "depth": 1},
                          {"url": "http://s/i.png", "kind": "image", "page_url": "http://s/"}])
    j.links("http://s/a", [{"url": "http://s/b", "kind": "page", "depth": 2}])
    j.mark_done(["http://s/", "http://s/a"])
    j.close()
    with (tmp_path / "journal.jsonl").open("a") as fh:
        fh.write('{"done": ["http://s/i.p')  # a line torn by SIGKILL
    resumed = Journal(tmp_path, "run-2")
    assert resumed.resumed
    assert [c["url"] for c in resumed.pending()] == ["http://s/i.png", "http://s/b"]


def test_a_finished_crawl_starts_afresh(tmp_path):
    j = Journal(tmp_path, "run-1")
    j.links("http://s/", [{"url": "http://s/a", "kind": "page", "depth": 1}])
    j.mark_done(["http://s/", "http://s/a"])
    j.finish("run-1")
    j.close()
    again = Journal(tmp_path, "run-2")
    assert not again.resumed and again.pending() == [] and not again.done
