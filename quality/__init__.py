"""Data quality: Great Expectations suites per table, layer gates, quarantine, Data Docs and reports."""
