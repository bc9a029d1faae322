"""The `hanport` command: the front door to every service and tool.

    hanport ingest | rest | mqtt | modbus | licensing   run that service (= python -m services.X)
    hanport accounting                                  run the accounting service
    hanport export                                      run the export service (docs/export.md)
    hanport emulate                                     appear as a Shelly, HomeWizard or SMA meter
    hanport decode FILE...                              decode captures to JSON readings
    hanport doctor                                      say why meter data does or does not arrive
    hanport simulate ...                                write simulated telegrams
    hanport license ...                                 the vendor's license tools

Each subcommand lives with the code it runs; this module only dispatches, so adding a service
means adding one line to COMMANDS.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "ingest": ("services.ingest.__main__", "main", "read the meter, publish readings to Redis"),
    "rest": ("services.rest.__main__", "main", "serve readings over HTTP (REST, SSE, WebSocket)"),
    "mqtt": ("services.mqtt.__main__", "main", "publish readings to an MQTT broker"),
    "modbus": ("services.modbus.__main__", "main", "serve readings over Modbus TCP"),
    "export": ("services.export.__main__", "main", "export readings to InfluxDB and PostgreSQL"),
    "licensing": ("services.licensing.__main__", "main", "decide which interfaces are licensed"),
    "accounting": (
        "services.accounting.__main__",
        "main",
        "energy per interval and capacity-tariff state per meter",
    ),
    "emulate": ("services.emulate.__main__", "main", "appear as a Shelly, HomeWizard or SMA meter"),
    "decode": ("services.ingest.cli.decode", "main", "decode captures to JSON readings"),
    "simulate": ("services.ingest.cli.simulate", "main", "write simulated meter telegrams"),
    "doctor": ("services.ingest.cli.doctor", "main", "say why meter data does or does not arrive"),
    "uplink": ("services.uplink.__main__", "main", "send every reading to the fleet hub (NATS)"),
    "hub": ("services.hub.cli", "main", "fleet hub: init, keys, box-creds, sink"),
    "license": (
        "services.licensing.cli",
        "main",
        "keygen, issue, trial, verify, show, self-activate",
    ),
}


def usage() -> str:
    lines = ["usage: hanport COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_m, _f, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"hanport: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, function, _ = COMMANDS[name]
    module = importlib.import_module(module_name)
    sys.argv = [f"hanport {name}", *rest]
    result = getattr(module, function)(rest)
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
