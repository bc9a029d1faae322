"""Generate docs/modbus.md from the register tables, so the docs never drift from the code.

Consumes `services.modbus.register_map`; produces the Markdown. A test checks the file is
current.

    python -m services.modbus.docs           rewrite docs/modbus.md
    python -m services.modbus.docs --check   exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .accounting import ACCOUNTING_BASE
from .accounting import SIZE as ACCOUNTING_SIZE
from .register_map import DERIVED, LIVE, METER_MODELS, NATIVE_BASE, SUNSPEC_BASE, Block, Point
from .register_map import blocks as all_blocks

DOC = Path(__file__).resolve().parents[2] / "docs" / "modbus.md"

IDENTITY = {
    "manufacturer": "`hanport`",
    "model": "`hanport HAN/P1 gateway`",
    "version": "hanport's version",
    "serial": "the reader's serial (HANPORT_SERIAL or generated)",
    "serial32": "the reader's serial as uint32 (its last 8 hex digits, else its CRC-32)",
    "unit": "HANPORT_MODBUS_UNIT_ID, or 1",
    "meter_model": "`meter_model`, the meter's own type",
}

_SDM_END = all_blocks()[1].end
_NATIVE_END = all_blocks()[3].end

INTRO = f"""# Modbus TCP

`hanport modbus` serves the newest reading over Modbus TCP on `HANPORT_MODBUS_PORT` (default
5020; 502 inside the container) through three register maps at once, so EV chargers, inverters,
home batteries and building automation read it with the settings they already have for a
SunSpec meter or an Eastron SDM630:

| map | function | addresses | for |
|---|---|---|---|
| SunSpec | 03 read holding registers | {SUNSPEC_BASE}- | SunSpec scanners (pysunspec2, gosunspec, evcc `sunspec`), inverters |
| Eastron SDM630 | 04 read input registers | 0-{_SDM_END - 1} (0x0000-0x{_SDM_END - 1:04X}) | evcc/openWB/chargers configured for an SDM630 |
| SDM630 serial | 03 read holding registers | 64512-64513 (0xFC00) | openWB reads the meter serial |
| hanport native | 03 read holding registers | {NATIVE_BASE}-{_NATIVE_END - 1} | anything else: every value of the Cozify message |
| energy accounting | 03 read holding registers | {ACCOUNTING_BASE}-{ACCOUNTING_BASE + ACCOUNTING_SIZE - 1} | a charger under a capacity tariff: headroom, window average, month value ([accounting.md](accounting.md)) |

This file is generated from `services/modbus/register_map.py` (`python -m services.modbus.docs`);
a test fails when it is out of date.

## Conventions

- Registers are 16 bit; multi-register values are big-endian, high word first (SDM630 and SunSpec
  order; `mbpoll -B`, pymodbus `word_order="big"`).
- Power is import-positive everywhere: importing from the grid is > 0, exporting is < 0 (what
  evcc expects of a grid meter). Energies are totals since the meter was installed.
- A value the meter does not send is the "not implemented" value of its type: float NaN
  (0x7FC0 0x0000), int16 0x8000, uint16 0xFFFF, uint32 0xFFFFFFFF, acc32 0, strings all zero.
  Addresses inside a map that name no value (gaps of the SDM630 map) answer float NaN too, so
  every range is contiguous and clients can read it in blocks.
- Every block answers reads of up to 125 registers inside it; a read that leaves the block
  (or spans two blocks) is an illegal address.
- Registers always hold the newest reading. At meter rates (a reading every second or more) it is
  readable as soon as the service's stream read returns it; when readings arrive hundreds a
  second, the service reads the stream at most every 10 ms and serves the newest of each batch
  (readings superseded in between are never encoded: a block is encoded on the first read after
  a new reading).

## Meters that send only a total

Many meters (Kamstrup, Aidon, Kaifa lists without phase powers) send the total active power but
no power per phase, and a single-phase meter sends only L1. The SDM630 map then serves each
missing phase power as an estimate so that the three add up to the total: what the total leaves
after the phases the meter sent, shared among the missing phases in proportion to their U x I
(their voltage times current, as sent), or in equal shares when no missing phase has both (a
single-phase meter's L2 and L3 get 0 W). Without a total nothing is estimated (NaN stays NaN).
Clients that add the phase powers up (openWB takes its power as the sum of 0x0C, 0x0E, 0x10)
thus get the meter's total instead of NaN; the shares themselves are estimates (U x I is the
apparent power, and a meter's currents carry no sign), so do not balance phases on them. The
native map's register 1070 ("phase powers estimated") is 1 while the SDM630 phase powers are
estimated, 0 while they are the meter's. The native map and SunSpec serve only what the meter
sends (NaN per phase).

## Values the meter does not send: what clients do

Power factor, phase angle and frequency are NaN unless the meter sends them (most HAN meters
send none of them):

- **openWB 2.x** (SDM630 module, openWB/core `packages/modules/common/sdm.py`) reads the power
  factors (0x1E-0x22) and the frequency (0x46) and passes NaN on as is (its check `frequency >
  100` is false for NaN); neither enters its power or energy arithmetic, and its meter check
  looks only at the voltages.
- **evcc** (template `eastron-sdm72v2_630`, `meter/mbmd.go`) reads the total power 0x34 (not the
  sum of the phases), import and export energy, currents, voltages and phase powers, and no power
  factor or frequency; it turns a NaN register into 0 (`meter/mbmd.go` "silence NaN reading
  errors by assuming zero", and `util/modbus/register.go` for its generic Modbus plugin).

## Clients tried

| client | version | what was checked |
|---|---|---|
| openWB SDM630 module | openWB/core 2.x (commit 3039a21, August 2026) with the pymodbus it pins, 2.5.3 | its read sequence and arithmetic (serial at 0xFC00; 0x00 x 18, 0x1E x 6, 0x46 x 6; power = sum of the phase powers; frequency > 100 divided by 10; kWh x 1000), written out again in `tests/clients/openwb_sdm630_read.py` as openWB's module is not on the package index, against the service fed real Kamstrup and Aidon captures without phase powers: its power is the meter's total (it was NaN), voltages, currents, energies and serial as sent, power factors and frequency NaN |
| evcc | source of August 2026 (commit b29b49e) | read, not run: how its SDM630 template and Modbus code treat NaN (above) |
| pymodbus | 3.16 (hanport's test dependency) | every map (`tests/modbus/test_server.py`) |
| pysunspec2 (SunSpec Alliance) | 1.3 (hanport's test dependency) | a SunSpec scan finds the models and computes the values |
| mbpoll | 1.0 (Debian) | reads the SDM630 floats |

## Unit id

By default every unit id is answered (SunSpec scanners probe 1, 126, 200, 240). With
`HANPORT_MODBUS_UNIT_ID=n` only unit id n is answered; any other id gets exception 0x0A
(gateway path unavailable).

**Several meters.** `HANPORT_MODBUS_UNITS=1=main,2=heatpump` gives each meter a unit id of its
own (1-247; a meter by its name on the box or its equipment id): that unit answers every map for
its meter (the SunSpec `DA` register says its unit id). Unit ids not listed answer for the
default meter exactly as on a one-meter box (`HANPORT_DEFAULT_METER`, else the meter on the
classic stream, else the first by name), or only `HANPORT_MODBUS_UNIT_ID` when that is set
(which may not also be in the list). Each meter's data goes stale on its own: a meter that
stopped sending answers 0x0B on its unit only, and the others keep serving. A bad list stops the
service at start with one line naming HANPORT_MODBUS_UNITS and what is wrong. A license naming
meters (`docs/licensing.md`) serves only those: another meter's unit answers 0x0A, logged once
and counted in `hanport_entitlement_meter_refused_total{{feature="modbus",meter}}`.

**M-Bus sub-meters** (DSMR gas, water, heat behind the meter) are in the native map from 1100:
each value (float64: gas and water in m³, heat in kWh, GJ converted) and its own time (uint64,
ms since the epoch), of the lowest M-Bus channel of that kind; not implemented while the meter
has none.

## Exceptions

| code | name | when |
|---|---|---|
| 0x01 | illegal function | any function other than 03 and 04: every write (05, 06, 0F, 10, 16, 17) is refused, nothing is ever written |
| 0x02 | illegal data address | a read outside every block, or spanning two blocks |
| 0x03 | illegal data value | a read of 0 or more than 125 registers, or a read PDU of the wrong length |
| 0x0A | gateway path unavailable | a unit id other than HANPORT_MODBUS_UNIT_ID (when set) and not in HANPORT_MODBUS_UNITS; the unit of a meter the license does not name |
| 0x0B | gateway target device failed to respond | **stale data**: the read touches a measurement register and the newest reading is older than HANPORT_MODBUS_STALE_AFTER (default 30 s), or there is no reading yet |

Stale data: a charger must never balance load on old values, so measurement registers answer
0x0B until a fresh reading arrives. Status registers still answer: the SunSpec marker, the common
model, model headers and the end model, the SDM630 serial, and the native map's version,
data-valid flag, age and timestamp. The column "stale" below says which registers answer 0x0B.
Age is measured from when the gateway received the reading (its own clock), not the meter clock.

A malformed MBAP header (protocol id other than 0, or a length outside 2..254) closes that
connection only; other clients are not affected. A packet may carry several requests; each is
answered in order.

## Connections

Each connection's requests are answered one at a time, in order. A client that does not read its
answers is not read from either (its answers wait in a 16 KiB buffer) until it does, so a client
that pipelines requests costs the server a bounded amount of memory. At most
HANPORT_MODBUS_MAX_CLIENTS (128) clients are connected at once: further connections are closed as
soon as they are accepted. A connection that completes no request for HANPORT_MODBUS_IDLE_TIMEOUT
seconds (60; silent, sending a frame too slowly, or not reading its answers) is dropped. Raise it
for a master that polls less often than once a minute. Both are counted and logged at most once a
minute; docs/security.md has the measurements.

## License

Modbus needs an activation license (`docs/licensing.md`). Without one the port is **closed**:
connections are refused, the log says why (`Modbus TCP port ... stays closed: <reason>`), and
`hanport_modbus_licensed` is 0. The port opens within seconds of a license arriving, without a
restart, and closes (dropping connected clients) when the license is removed or expires.

## Metrics

On `127.0.0.1:9103/metrics` (HANPORT_METRICS_HOST, HANPORT_METRICS_PORT; compose listens on its
private network for Prometheus):
`hanport_modbus_requests_total{{function,result}}` (result `ok` or the exception name),
`hanport_modbus_exceptions_total{{code}}`, `hanport_modbus_clients`,
`hanport_modbus_data_age_seconds`, `hanport_modbus_licensed`,
`hanport_modbus_malformed_frames_total`, `hanport_modbus_encode_errors_total`,
`hanport_modbus_connections_refused_total` (over HANPORT_MODBUS_MAX_CLIENTS),
`hanport_modbus_connections_timed_out_total` (HANPORT_MODBUS_IDLE_TIMEOUT), plus the shared
Redis/stream metrics.
"""


def describe(point: Point) -> str:
    source = point.source
    if point.exponent is not None:
        return f"scale factor of its group, chosen per reading (finest 10^{point.exponent})"
    if source is None:
        return "not implemented (the meter does not send it)"
    if isinstance(source, int):
        return f"constant {source}" if source < 256 else f"constant 0x{source:X}"
    if source in IDENTITY:
        return IDENTITY[source]
    if source in LIVE:
        return LIVE[source]
    text = DERIVED[source][2] if source in DERIVED else f"`{source}`"
    return f"{text} × {point.factor:g}" if point.factor != 1 else text


def table(block: Block) -> str:
    lines = [
        "| address | hex | regs | name | type | unit | value | stale |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for address, point in block.layout():
        stale = "0x0B" if point.measurement else "answers"
        lines.append(
            f"| {address} | 0x{address:04X} | {point.type.size} | {point.name} | "
            f"{point.type.name} | {point.unit} | {describe(point)} | {stale} |"
        )
    return "\n".join(lines)


def render() -> str:
    parts = [INTRO]
    sunspec = {model: all_blocks(model)[0] for model in METER_MODELS}
    others = all_blocks()[1:]
    parts.append(
        "## SunSpec (holding registers)\n\n"
        "`SunS`, model 1 (common, L = 66), then the meter model chosen by "
        "HANPORT_MODBUS_SUNSPEC_MODEL: 213 (three-phase wye meter, float32; the default) or 203 "
        "(integers with scale factors), then the end model 0xFFFF with length 0. Energies are Wh. "
        "In model 203 each scale factor is chosen per reading as the finest that fits every "
        "value of its group (e.g. W_SF becomes 1 above 32767 W).\n"
    )
    for model, block in sunspec.items():
        parts.append(f"### With model {model}\n\n{table(block)}\n")
    for block in others:
        parts.append(
            f"## {block.name} ({block.space} registers)\n\n{block.doc}\n\n{table(block)}\n"
        )
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.modbus.docs")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/modbus.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DOC.read_text() if DOC.exists() else ""
        if current != text:
            print(f"{DOC} is out of date: run python -m services.modbus.docs", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
