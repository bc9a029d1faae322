"""The export service: every reading to time-series and SQL stores (docs/export.md)."""
