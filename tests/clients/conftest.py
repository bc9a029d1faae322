"""The Modbus service fixture of tests/modbus, for client code that reads it."""

from tests.modbus.conftest import start_modbus

__all__ = ["start_modbus"]
