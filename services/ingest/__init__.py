"""The ingest service: reads the meter's HAN/P1 port and publishes readings to Redis."""
