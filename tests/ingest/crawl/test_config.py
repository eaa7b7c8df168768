import pytest

from sluice.selectors import compile_selector
from sluice.config import parse_params
from sluice.errors import ConfigError


@pytest.mark.parametrize("value, kind, expr", [
    ("img.photo", "css", "img.photo"),
    ("img::attr(src)", "css", "img::attr(src)"),
    ("//main//img", "xpath", "//main//img"),
    ("(//img)[1]", "xpath", "(//img)[1]"),
    ("xpath: .//img", "xpath", ".//img"),
    ("css: a.next", "css", "a.next"),
])
def test_selector_kind_is_explicit_or_inferred(value, kind, expr):
    sel = compile_selector(value)
    assert (sel.kind, sel.expr) == (kind, expr)


@pytest.mark.parametrize("section, param", [
    ({"images": "img["}, "crawl.images"),
    ({"images": "xpath://img["}, "crawl.images"),
    ({"follow": {"pagination": "a:::next"}}, "crawl.follow.pagination"),
    ({"follow": {"restrict": "//div[@id="}}, "crawl.follow.restrict"),
    ({"follow": {"allow": ["(unclosed"]}}, "crawl.follow.allow.0"),
    ({"label": {"source": "selector", "selector": "h1.."}}, "crawl.label.selector"),
    ({"label": {"source": "url_regex", "pattern": "[a-"}}, "crawl.label.pattern"),
    ({"label": {"source": "url_regex"}}, "crawl.label"),
])
def test_bad_selector_or_pattern_is_one_line_naming_the_param(section, param):
    with pytest.raises(ConfigError) as err:
        parse_params({"crawl": section}, "params.yaml")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"params.yaml: {param}:"), message


def test_cli_bad_selector_exits_2_with_one_line(run_cli):
    result = run_cli("crawl", params={"crawl": {"images": "div[class="}})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "crawl.images" in lines[0] and "not a valid css selector" in lines[0].lower(), result.stderr
    assert "Traceback" not in result.stderr


def test_cli_start_url_must_be_http(run_cli, tmp_path):
    result = run_cli("crawl", params={"lake": {"root": str(tmp_path / "lake")}, "crawl": {"start_urls": ["ftp://x/"]}})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "sluice: error: crawl.start_urls[0]: 'ftp://x/' is not an http(s) URL (or '{demo_site}/...')"]


def test_cli_missing_demo_site_is_one_line(run_cli, tmp_path):
    result = run_cli("crawl", params={"lake": {"root": str(tmp_path / "lake")},
                                      "crawl": {"demo_site_dir": str(tmp_path / "nowhere")}})
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "nowhere: demo site not found (crawl.demo_site_dir)" in line


def test_label_on_written_unquoted_in_yaml(tmp_path):
    """PyYAML reads ``on:`` as the boolean true; the label section takes it as ``on``."""
    import yaml

    from sluice.config import parse_params

    raw = yaml.safe_load("crawl:\n  label:\n    source: url_regex\n    on: image\n    pattern: '/(\\\\w+)/'\n")
    assert parse_params(raw, "t.yaml").crawl.label.on == "image"
