"""The ingest service's command-line tools: `hanport decode` (`decode`) and `hanport simulate`
(`simulate`)."""
