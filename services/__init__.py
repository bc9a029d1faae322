"""hanport's services, one package each: ingest, rest, mqtt, modbus, licensing."""
