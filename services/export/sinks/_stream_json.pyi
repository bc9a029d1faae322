# The C module services/export/sinks/_stream_json.c (see there; entries.py and lineprotocol.py)
def canonical(payloads: list[bytes], fields: tuple[tuple[bytes, bytes, bool], ...], /) -> bool: ...
def lines(
    payloads: list[bytes],
    head: bytes,
    plan: tuple[tuple[bytes, tuple[bytes, ...] | None], ...],
    time_key: bytes,
    meter_key: bytes,
    meter: bytes,
    /,
) -> bytes | None: ...
