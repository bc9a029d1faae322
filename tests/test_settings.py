"""Every documented setting can be set from its environment variable.

The cases are generated from the settings classes, walked as `services/config_doc.py` walks
them to write docs/configuration.md and .env.example: each class, each field, each variable it
is read from. For each, the variable alone is set, as text, to a valid example value and the
class is loaded as a service loads it; the field must hold that value afterwards.

Example values: every choice of a `Literal`, `true` and `false` for a flag, the documented
default when there is one, and EXAMPLES below. A field with none of these fails with a message
saying to add one to EXAMPLES.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from services.config_doc import DOC, env_name, settings_classes
from shared.settings import ENV_PREFIX, CommonSettings, load_settings
from tests.conftest import FIXTURES

# Valid values, as they would be written in .env, for settings whose default does not serve
# (none, or empty). `{tmp}` is a folder holding FILES; `{fixtures}` is tests/fixtures.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "HANPORT_DEFAULT_METER": ("main", "E0044007382246019"),
    "HANPORT_METER_NAME": ("heatpump", "flat-2.main_meter"),
    "HANPORT_MODBUS_UNITS": ("1=main,2=heatpump", " 3=E0044007382246019 "),
    "HANPORT_SERIAL": ("HP0A1B2C3D4E",),
    "HANPORT_UPLINK_URL": ("tls://hub1.example.net:4222,tls://hub2.example.net:4222",),
    "HANPORT_UPLINK_CREDS_FILE": ("{tmp}/box.creds",),
    "HANPORT_UPLINK_NKEY_FILE": ("{tmp}/box.nk",),
    "HANPORT_UPLINK_CA_FILE": ("{tmp}/ca.pem",),
    "HANPORT_UPLINK_SPOOL_URL": ("nats://127.0.0.1:4223",),
    "HANPORT_UPLINK_BOX": ("HP0A1B2C3D4E",),
    "HANPORT_HUB_CREDS_FILE": ("{tmp}/sink.creds",),
    "HANPORT_HUB_CA_FILE": ("{tmp}/ca.pem",),
    "HANPORT_HUB_SINK_NAME": ("sink-1",),
    "HANPORT_HUB_VICTORIAMETRICS_URL": ("http://victoriametrics:8428",),
    "HANPORT_HUB_POSTGRES_DSN": ("postgresql://hub:secret@db/hanport",),
    "HANPORT_HUB_POSTGRES_DSN_FILE": ("{tmp}/dsn",),
    "HANPORT_LICENSE_PUBLIC_KEYS": ("{tmp}/public_keys",),
    "HANPORT_LOG_LEVEL": ("debug", "WARNING"),
    "HANPORT_SOURCE": (
        "serial:///dev/ttyUSB0?baud=115200&parity=N&bytesize=8&stopbits=1",
        "serial:///dev/ttyAMA0?baud=auto",
        "/dev/ttyUSB0",
        "tcp://192.168.1.50:2000",
        "file://{fixtures}/p1/ell5_se.txt?pace=fast",
    ),
    "HANPORT_METER_TIMEZONE": ("Europe/Stockholm",),
    "HANPORT_EMULATE_CLIENTS": ("192.168.1.40=garage,10.0.0.0/24=house",),
    "HANPORT_SHELLY_METER": ("garage",),
    "HANPORT_HOMEWIZARD_METER": ("house",),
    "HANPORT_SMA_UNICAST": ("192.168.1.20,192.168.1.21:9523",),
    "HANPORT_SMA_INTERFACE": ("192.168.1.5",),
    "HANPORT_SMA_SERIAL": ("1900123456",),
    "HANPORT_SMA_METER": ("house",),
    "HANPORT_METER_KEY": ("000102030405060708090A0B0C0D0E0F",),
    "HANPORT_METER_KEY_FILE": ("{tmp}/meter.key",),
    "HANPORT_METER_AUTH_KEY": ("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF",),
    "HANPORT_METER_AUTH_KEY_FILE": ("{tmp}/meter.key",),
    "HANPORT_REST_TOKENS": ("ops-token:admin;ha-token:read",),
    "HANPORT_REST_TOKENS_FILE": ("{tmp}/tokens",),
    "HANPORT_REST_CORS_ORIGINS": ("*", "http://ha.lan:8123,http://localhost:3000"),
    "HANPORT_MQTT_URL": ("mqtt://broker.lan:1883", "mqtts://broker.lan:8883"),
    "HANPORT_MQTT_USERNAME": ("hanport",),
    "HANPORT_MQTT_PASSWORD": ("s3cret-Pass",),
    "HANPORT_MQTT_PASSWORD_FILE": ("{tmp}/mqtt.password",),
    "HANPORT_MQTT_CLIENT_ID": ("hanport-kitchen",),
    "HANPORT_MQTT_CA_FILE": ("{tmp}/ca.pem",),
    "HANPORT_MQTT_CERT_FILE": ("{tmp}/client.pem",),
    "HANPORT_MQTT_KEY_FILE": ("{tmp}/client.key",),
    "HANPORT_MQTT_TOPIC": ("Cozify/HAN123/Data",),
    "HANPORT_MQTT_TOPIC_PREFIX": ("home/meter",),
    "HANPORT_MQTT_RAW_TOPIC": ("hanport/raw",),
    "HANPORT_MQTT_CONSUMER": ("replica-1",),
    "HANPORT_ACCOUNTING_CONSUMER": ("accounting-1",),
    "HANPORT_MODBUS_UNIT_ID": ("1", "247"),
    "HANPORT_ADMIN_TOKEN": ("s3cret-token",),
    "HANPORT_LICENSING_ADMIN_TOKEN": ("s3cret-token",),
    "HANPORT_ADMIN_TOKEN_FILE": ("{tmp}/admin.token",),
    "HANPORT_LICENSING_ADMIN_TOKEN_FILE": ("{tmp}/admin.token",),
    "HANPORT_EXPORT_INFLUX_URL": (
        "http://victoria.lan:8428",
        "https://eu-central-1-1.aws.cloud2.influxdata.com",
    ),
    "HANPORT_EXPORT_INFLUX_ORG": ("home",),
    "HANPORT_EXPORT_INFLUX_BUCKET": ("hanport",),
    "HANPORT_EXPORT_INFLUX_TOKEN": ("s3cret-token",),
    "HANPORT_EXPORT_INFLUX_TOKEN_FILE": ("{tmp}/admin.token",),
    "HANPORT_EXPORT_POSTGRES_DSN": ("postgresql://hanport:s3cret@db.lan:5432/hanport",),
    "HANPORT_EXPORT_POSTGRES_DSN_FILE": ("{tmp}/admin.token",),
    "HANPORT_EXPORT_CONSUMER": ("replica-1",),
}

# The files `{tmp}` holds (only the meter key is read while the settings load).
FILES = {
    "meter.key": "C0C1C2C3 C4C5C6C7 C8C9CACB CCCDCECF\n",
    "tokens": "ops-token admin\n",
    "mqtt.password": "s3cret-Pass\n",
    "admin.token": "s3cret-token\n",
    "ca.pem": "",
    "client.pem": "",
    "client.key": "",
}


def variables(name: str, field: FieldInfo) -> list[str]:
    """Every variable the field is read from (a field with alias choices has several)."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [choice.upper() for choice in alias.choices if isinstance(choice, str)]
    return [env_name(name, field)]


def examples(field: FieldInfo, variable: str) -> list[str]:
    found = list(EXAMPLES.get(variable, ()))
    annotation = field.annotation
    choices = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        found += [str(choice) for choice in choices]
    elif annotation is bool or set(choices) == {bool, type(None)}:
        found += ["true", "false"]
    elif field.default_factory is None and field.default not in (None, PydanticUndefined, ""):
        found.append(str(field.default))
    return list(dict.fromkeys(found))


def as_text(value: Any) -> str:
    """A loaded value written back as it is in .env."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


def cases() -> Iterator[Any]:
    for service, cls in settings_classes().items():
        for name, field in cls.model_fields.items():
            for variable in variables(name, field):
                values: list[str | None] = [*examples(field, variable)] or [None]
                for value in values:
                    yield pytest.param(
                        cls, name, variable, value, id=f"{service}-{variable}={value}"
                    )


def test_the_walk_finds_every_service() -> None:
    assert list(settings_classes()) == [
        "common", "ingest", "rest", "mqtt", "modbus", "licensing", "accounting", "export",
        "uplink", "hub", "emulate",
    ]  # fmt: skip


@pytest.mark.parametrize(("cls", "name", "variable", "value"), list(cases()))
def test_a_documented_setting_loads_from_the_environment(
    cls: type[CommonSettings],
    name: str,
    variable: str,
    value: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if value is None:
        pytest.fail(
            f"no example value for {variable} ({cls.__name__}.{name}): add a valid one to "
            "EXAMPLES in tests/test_settings.py"
        )
    assert variable in DOC.read_text(), f"{variable} is not in docs/configuration.md"
    for file, content in FILES.items():
        (tmp_path / file).write_text(content)
    monkeypatch.chdir(tmp_path)  # no developer's .env
    for other in [v for v in os.environ if v.upper().startswith(ENV_PREFIX)]:
        monkeypatch.delenv(other)
    text = value.format(tmp=tmp_path, fixtures=FIXTURES)
    monkeypatch.setenv(variable, text)

    settings = load_settings(cls)

    assert name in settings.model_fields_set, f"{variable} was not read"
    assert as_text(getattr(settings, name)) == text
