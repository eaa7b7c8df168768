"""CSS or XPath selectors written in params: parsing, validation and evaluation.

A selector is XPath when it starts with ``xpath:``, ``/``, ``./`` or ``(``, CSS otherwise (``css:``
forces CSS). CSS may use Parsel's ``::text`` and ``::attr(name)`` pseudo-elements.
"""

from __future__ import annotations

from dataclasses import dataclass

_XPATH_STARTS = ("/", "./", "(")


@dataclass(frozen=True)
class Selector:
    kind: str  # "css" or "xpath"
    expr: str

    def select(self, node):
        """Evaluate on a Scrapy response or Parsel selector; returns a ``SelectorList``."""
        return node.css(self.expr) if self.kind == "css" else node.xpath(self.expr)


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split()) or err.__class__.__name__


def compile_selector(value: str) -> Selector:
    """Parse and validate ``value``; raise ``ValueError`` saying what is wrong with it."""
    text = value.strip()
    if text.startswith("xpath:"):
        kind, expr = "xpath", text[len("xpath:"):].strip()
    elif text.startswith("css:"):
        kind, expr = "css", text[len("css:"):].strip()
    else:
        kind, expr = ("xpath" if text.startswith(_XPATH_STARTS) else "css"), text
    if not expr:
        raise ValueError("empty selector")
    if kind == "css":
        from cssselect import SelectorError
        from parsel.csstranslator import HTMLTranslator

        try:
            HTMLTranslator().css_to_xpath(expr)
        except SelectorError as err:
            raise ValueError(f"not a valid CSS selector ({_one_line(err)})") from None
    else:
        from lxml import etree

        try:
            etree.XPath(expr)
        except etree.XPathSyntaxError as err:
            raise ValueError(f"not a valid XPath expression ({_one_line(err)})") from None
    return Selector(kind, expr)


def node_text(node) -> str | None:
    """The whitespace-normalised text of a selected element, attribute or text node."""
    if isinstance(node.root, str):
        text = node.root
    else:
        text = " ".join(node.xpath(".//text()").getall())
    text = " ".join(text.split())
    return text or None
