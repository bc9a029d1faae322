# mypy: ignore-errors
"""Run by the pymodbus 2.5.3 venv's python (tests/clients/venvs.py), not by hanport's: reads an
SDM630 the way openWB 2.x does and prints what openWB would take from it, as JSON.

openWB's SDM630 module is not on the package index, so this is its read sequence and
arithmetic written out again with the pymodbus it pins (2.5.3, openWB/core requirements.txt):
packages/modules/common/sdm.py (openWB/core at 3039a21, August 2026)
- Sdm.__init__ (line 23): holding registers 0xFC00, uint32: the serial number;
- Sdm630_72.get_counter_state, fast mode (lines 74-85): input registers 0x00, 18 registers read
  as three float32 voltages, currents and powers (REG_MAPPING_BULK_1); 0x1E, three float32 power
  factors; 0x46, 6 registers: frequency, imported and exported kWh (REG_MAPPING_BULK_2);
- lines 115-127: frequency > 100 is divided by 10; imported and exported kWh x 1000 (Wh);
  power = sum of the three phase powers (line 121, as get_power does at line 63);
and packages/modules/common/modbus.py: every value big-endian, high word first
(BinaryPayloadDecoder.fromRegisters(registers, Endian.Big, Endian.Big), lines 109 and 241;
a bulk read decodes each mapped register after decoder.reset() and skip_bytes(offset * 2)).

    python openwb_sdm630_read.py HOST PORT UNIT
"""

import json
import sys

from pymodbus.client.sync import ModbusTcpClient
from pymodbus.constants import Endian
from pymodbus.payload import BinaryPayloadDecoder

VOLTAGE_L1, CURRENT_L1, POWER_L1 = 0x00, 0x06, 0x0C
POWER_FACTOR_L1, FREQUENCY, IMPORTED, EXPORTED = 0x1E, 0x46, 0x48, 0x4A


def decoder(response):
    if response.isError():
        raise SystemExit(f"openWB would fail here: {response}")
    return BinaryPayloadDecoder.fromRegisters(response.registers, Endian.Big, Endian.Big)


def bulk(client, start, count, mapping, unit):
    """modbus.py __read_bulk: one read, each mapped register decoded from its offset."""
    read = decoder(client.read_input_registers(start, count, unit=unit))
    values = {}
    for address, how_many in mapping:
        read.reset()
        read.skip_bytes((address - start) * 2)
        floats = [read.decode_32bit_float() for _ in range(how_many)]
        values[address] = floats if how_many > 1 else floats[0]
    return values


def counter_state(host, port, unit):
    client = ModbusTcpClient(host, port=port, timeout=5)
    if not client.connect():
        raise SystemExit(f"cannot connect to {host}:{port}")
    try:
        serial = decoder(client.read_holding_registers(0xFC00, 2, unit=unit)).decode_32bit_uint()
        resp = bulk(client, VOLTAGE_L1, 18, ((VOLTAGE_L1, 3), (CURRENT_L1, 3), (POWER_L1, 3)), unit)
        factors = decoder(client.read_input_registers(POWER_FACTOR_L1, 6, unit=unit))
        power_factors = [factors.decode_32bit_float() for _ in range(3)]
        resp.update(
            bulk(client, FREQUENCY, 6, ((FREQUENCY, 1), (IMPORTED, 1), (EXPORTED, 1)), unit)
        )
    finally:
        client.close()
    frequency = resp[FREQUENCY]
    if frequency > 100:
        frequency = frequency / 10
    return {
        "serial_number": str(serial),
        "imported": resp[IMPORTED] * 1000,
        "exported": resp[EXPORTED] * 1000,
        "power": sum(resp[POWER_L1]),
        "voltages": resp[VOLTAGE_L1],
        "currents": resp[CURRENT_L1],
        "powers": resp[POWER_L1],
        "power_factors": power_factors,
        "frequency": frequency,
    }


if __name__ == "__main__":
    host, port, unit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    json.dump(counter_state(host, port, unit), sys.stdout)  # NaN is written as NaN
