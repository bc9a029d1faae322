"""The meter's AES keys read from settings or command-line options (text or key files): the one
place key material is read from outside; `codec.dlms.ciphering.Keys` holds what it read."""

from __future__ import annotations

from .codec.dlms.ciphering import Keys


def read_key(name: str, value: str | None, file: str | None) -> bytes | None:
    """A 16-byte key from hex text `value` or from the file `file` names (hex inside);
    `ValueError` naming the setting, never showing the key, when it is not 32 hex digits."""
    if value and file:
        raise ValueError(f"set either {name} or {name}_FILE, not both")
    source = name
    if file:
        source = f"{name}_FILE ({file})"
        try:
            with open(file, encoding="ascii", errors="replace") as handle:
                value = handle.read()
        except OSError as error:
            raise ValueError(f"{source}: cannot read the key file: {error.strerror}") from None
    if not value:
        return None
    text = "".join(value.split()).removeprefix("0x").removeprefix("0X")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{source}: not hexadecimal; expected 32 hex digits") from None
    if len(key) != 16:
        raise ValueError(f"{source}: {len(key)} bytes; expected 16 (32 hex digits)")
    return key


def load_keys(
    key: str | None = None,
    key_file: str | None = None,
    auth_key: str | None = None,
    auth_key_file: str | None = None,
) -> Keys:
    """The meter's keys from the HANPORT_METER_KEY / _AUTH_KEY settings or their _FILE forms."""
    return Keys(
        read_key("HANPORT_METER_KEY", key, key_file),
        read_key("HANPORT_METER_AUTH_KEY", auth_key, auth_key_file),
    )
