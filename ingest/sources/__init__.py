"""Image-source connectors, one module per ``kind`` (see ``base`` and docs/connectors.md)."""
