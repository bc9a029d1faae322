"""Prometheus metrics of the SMA Energy Meter personality (served by the emulation service)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DATAGRAMS = Counter(
    "hanport_emulate_sma_datagrams_total",
    "SMA Energy Meter datagrams handed to the network, by destination (multicast, unicast).",
    ["destination"],
)
ERRORS = Counter(
    "hanport_emulate_sma_errors_total",
    "SMA Energy Meter datagrams not sent, by kind (send: the network refused it; backlog: the "
    "socket's queue was full, the datagram was dropped instead of queued; encode: the reading had "
    "the wrong shape and was skipped).",
    ["kind"],
)
SILENT = Gauge(
    "hanport_emulate_sma_silent",
    "1 while the emulated SMA Energy Meter sends nothing because its meter's newest reading is "
    "stale or missing (SMA devices then treat the meter as unavailable), else 0.",
)
