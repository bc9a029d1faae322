"""Settings, topics and the failure table without servers: bad values stop with one clear line,
every known broker failure maps to its reason and fix, and no line shows the password."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiomqtt import MqttCodeError, MqttError
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from services.mqtt.connection import ConfigError, broker_address, credentials, explain
from services.mqtt.settings import MqttSettings
from services.mqtt.topics import Topics, split_messages

from .support import reading

ROOT = Path(__file__).resolve().parents[2]


def make(**values: Any) -> MqttSettings:
    return MqttSettings.model_validate(
        {"mqtt_url": "mqtt://broker.lan:1884", "mqtt_consumer": "c", **values}
    )


def test_defaults_and_topics() -> None:
    settings = make()
    assert (settings.mqtt_qos, settings.mqtt_retain, settings.metrics_port) == (1, False, 9102)
    assert settings.mqtt_tls_insecure is False
    topics = Topics.from_settings(settings, "HP0123456789")
    assert topics.data == "hanport/HP0123456789/data"
    assert topics.availability == "hanport/HP0123456789/availability"
    cozify = Topics.from_settings(make(mqtt_topic="Cozify/HAN123/Data"), "HPX")
    assert cozify.data == "Cozify/HAN123/Data" and cozify.prefix == "hanport/HPX"
    assert broker_address(make(mqtt_url="mqtts://b.example")) == ("b.example", 8883, True)
    assert broker_address(make(mqtt_url="mqtt://b.example")) == ("b.example", 1883, False)


def test_split_values_leave_out_what_the_meter_did_not_send() -> None:
    values = dict(split_messages(reading(1), "p"))
    assert values["p/energy/import"] == b"1001" and values["p/voltage/l2"] == b"231.2"
    assert "p/energy/reactive_import" not in values and "p/frequency" not in values


def test_password_file_wins_and_url_user_info_is_used(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    assert credentials(make(mqtt_username="u", mqtt_password="x", mqtt_password_file=secret)) == (
        "u",
        "from-file",
    )
    assert credentials(make(mqtt_url="mqtt://bob:p%40ss@h:1883")) == ("bob", "p@ss")
    with pytest.raises(ConfigError, match="cannot read HANPORT_MQTT_PASSWORD_FILE"):
        credentials(make(mqtt_password_file=tmp_path / "missing"))


@pytest.mark.parametrize(
    ("error", "reason", "says"),
    [
        (MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=134)), "bad_credentials",
         "wrong user name or password"),
        (MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=135)), "not_authorised",
         "wrong user name or password, or the user may not connect"),
        (MqttError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get "
                   "local issuer certificate (_ssl.c:1006)"), "untrusted_certificate",
         "set HANPORT_MQTT_CA_FILE"),
        (MqttError("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"), "tls",
         "check that the port speaks TLS"),
        (MqttError("[Errno 111] Connection refused"), "refused", "is the broker running"),
        (MqttError("[Errno -2] Name or service not known"), "dns", "does not resolve"),
        (MqttError("timed out"), "unreachable", "network or firewall"),
        (MqttError("Operation timed out"), "unreachable", "network or firewall"),
        (MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=133)),
         "identifier_rejected", "HANPORT_MQTT_CLIENT_ID"),
        (MqttCodeError(7, "Unexpected disconnection"), "other", "cannot connect"),
    ],
)  # fmt: skip
def test_failures_name_the_cause_and_the_fix(error: Exception, reason: str, says: str) -> None:
    settings = make(mqtt_username="meter", mqtt_password="Top-Secret-1")
    got_reason, line = explain(error, settings)
    assert got_reason == reason
    assert says in line
    assert "Top-Secret-1" not in line


def test_anonymous_refusal_asks_for_credentials() -> None:
    error = MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=135))
    reason, line = explain(error, make())
    assert reason == "not_authorised"
    assert "refused an anonymous connection: set HANPORT_MQTT_USERNAME" in line


def test_a_bad_setting_stops_with_one_clear_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.mqtt"],
        cwd=ROOT,
        env={"HANPORT_MQTT_URL": "http://broker:1883", "HANPORT_MQTT_QOS": "3", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "bad setting HANPORT_MQTT_URL='http://broker:1883'" in result.stderr
    assert "mqtt://host[:port] or mqtts://host[:port]" in result.stderr
    assert "HANPORT_MQTT_QOS='3'" in result.stderr
    assert "Traceback" not in result.stderr


def test_tls_insecure_turns_off_verification_only_when_asked(tmp_path: Path) -> None:
    from services.mqtt.connection import tls_context

    assert tls_context(make()).verify_mode == ssl.CERT_REQUIRED
    insecure = tls_context(make(mqtt_tls_insecure=True))
    assert insecure.verify_mode == ssl.CERT_NONE and not insecure.check_hostname
    with pytest.raises(ConfigError, match="cannot load the TLS files"):
        tls_context(make(mqtt_ca_file=tmp_path / "nope.pem"))


def test_suback_failure_codes_are_recognised() -> None:
    from services.mqtt.bridge import _is_failure

    # mosquitto 2.0.11 grants even ACL-denied subscriptions, so the refusal path is checked here
    assert _is_failure(ReasonCode(PacketTypes.SUBACK, identifier=0x80))  # 3.1.1 failure
    assert _is_failure(ReasonCode(PacketTypes.SUBACK, identifier=0x87))  # 5: not authorised
    assert not _is_failure(ReasonCode(PacketTypes.SUBACK, identifier=1))  # granted QoS 1
    assert _is_failure(0x80) and not _is_failure(0)


@pytest.mark.parametrize("prefix", ["home/#", "ha+", ""])
def test_discovery_prefix_must_be_a_plain_topic(prefix: str) -> None:
    with pytest.raises(ValueError, match="mqtt_discovery_prefix"):
        make(mqtt_discovery_prefix=prefix)
