"""Modbus TCP server: serves the newest reading through the SunSpec, Eastron SDM630 and hanport
native register maps (see docs/modbus.md)."""
