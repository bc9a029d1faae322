"""TLS and authentication against a real mosquitto: a test CA and server certificate made in
the test; a password file on the broker; clear errors (one log line, a metric, retries) for an
untrusted certificate and a wrong password, never showing the password."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from services.mqtt import metrics
from shared.reading import encode_cozify
from tests.servers import MosquittoServer, RedisServer

from .certs import client_context, make_ca, make_client_cert, make_server_cert
from .support import SERIAL, Subscriber, eventually, reading, running_bridge, settings, writer

DATA = f"hanport/{SERIAL}/data"
# mosquitto started as root drops to user `mosquitto`, which cannot read the test's 0700 folders
KEEP_ROOT = ["user root"] if os.geteuid() == 0 else []


def failures(reason: str) -> float:
    return metrics.CONNECT_FAILURES.labels(reason)._value.get()


@pytest.fixture
def tls_broker(mosquitto_server: MosquittoServer, tmp_path: Path) -> tuple[MosquittoServer, Path]:
    """mosquitto speaking only TLS with a certificate from a fresh test CA; (server, CA path)."""
    folder = tmp_path / "pki"
    ca, ca_key, ca_cert = make_ca(folder, "hanport-test-ca")
    cert, key = make_server_cert(folder, ca_key, ca_cert)
    mosquitto_server.extra_config = [
        *KEEP_ROOT,
        f"cafile {ca}",
        f"certfile {cert}",
        f"keyfile {key}",
    ]
    mosquitto_server.restart()
    return mosquitto_server, ca


async def test_tls_with_the_test_ca(
    redis_server: RedisServer, tls_broker: tuple[MosquittoServer, Path], license_keys: str
) -> None:
    broker, ca = tls_broker
    url = f"mqtts://127.0.0.1:{broker.port}"
    stream = await writer(redis_server)
    config = settings(redis_server, url, license_keys, mqtt_ca_file=ca)
    async with (
        Subscriber(broker, [DATA], tls=client_context(ca)) as sub,
        running_bridge(config),
    ):
        await stream.add(reading(1))
        got = await sub.wait_count(DATA, 1)
    assert got[0].payload == encode_cozify(reading(1))


async def test_untrusted_certificate_is_a_clear_error(
    redis_server: RedisServer,
    tls_broker: tuple[MosquittoServer, Path],
    license_keys: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, ca = tls_broker
    other_ca, _key, _cert = make_ca(tmp_path / "other", "some-other-ca")
    url = f"mqtts://127.0.0.1:{broker.port}"
    before = failures("untrusted_certificate")
    config = settings(redis_server, url, license_keys, mqtt_ca_file=other_ca)
    with caplog.at_level(logging.INFO, logger="services.mqtt"):
        async with running_bridge(config):
            await eventually(lambda: failures("untrusted_certificate") >= before + 2)  # retried
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1  # one line per cause, not one per retry
    line = errors[0].getMessage()
    assert f"the TLS certificate of mqtts://127.0.0.1:{broker.port} is not trusted" in line
    assert "set HANPORT_MQTT_CA_FILE to the CA that signed it" in line
    assert "HANPORT_MQTT_TLS_INSECURE=true" in line
    assert metrics.CONNECTED._value.get() == 0

    # the explicit insecure switch accepts it (for self-signed brokers)
    stream = await writer(redis_server)
    insecure = settings(redis_server, url, license_keys, mqtt_tls_insecure=True)
    async with (
        Subscriber(broker, [DATA], tls=client_context(ca)) as sub,
        running_bridge(insecure),
    ):
        await stream.add(reading(2))
        got = await sub.wait_count(DATA, 1)
    assert got[0].payload == encode_cozify(reading(2))


@pytest.fixture
def auth_broker(mosquitto_server: MosquittoServer, tmp_path: Path) -> MosquittoServer:
    """mosquitto refusing anonymous clients, with user `meter` / `s3cret-Pass` in a password file."""
    binary = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    passwords = tmp_path / "passwd"
    subprocess.run([binary, "-c", "-b", str(passwords), "meter", "s3cret-Pass"], check=True)
    mosquitto_server.extra_config = [*KEEP_ROOT, f"password_file {passwords}"]
    mosquitto_server.anonymous = False
    mosquitto_server.restart()
    return mosquitto_server


async def test_password_file_on_the_broker(
    redis_server: RedisServer, auth_broker: MosquittoServer, license_keys: str, tmp_path: Path
) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret-Pass\n")
    stream = await writer(redis_server)
    config = settings(
        redis_server, auth_broker, license_keys, mqtt_username="meter", mqtt_password_file=secret
    )
    async with (
        Subscriber(auth_broker, [DATA], username="meter", password="s3cret-Pass") as sub,
        running_bridge(config),
    ):
        await stream.add(reading(1))
        got = await sub.wait_count(DATA, 1)
    assert got[0].payload == encode_cozify(reading(1))


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_wrong_password_is_a_clear_error(
    redis_server: RedisServer,
    auth_broker: MosquittoServer,
    license_keys: str,
    caplog: pytest.LogCaptureFixture,
    protocol: str,
) -> None:
    # mosquitto 2.0 answers a wrong password with "not authorised" (5; 135 in MQTT 5), never
    # with "bad user name or password" (4/134), so the line names both possible causes
    reason = "not_authorised"
    before = failures(reason)
    config = settings(
        redis_server,
        auth_broker,
        license_keys,
        mqtt_username="meter",
        mqtt_password="WrongPw-42",
        mqtt_protocol=protocol,
    )
    with caplog.at_level(logging.DEBUG):
        async with running_bridge(config):
            await eventually(lambda: failures(reason) >= before + 2)  # retried with backoff
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1  # one line per cause, not one per retry
    line = errors[0].getMessage()
    assert line.startswith(f"the broker mqtt://127.0.0.1:{auth_broker.port} refused user 'meter'")
    assert "wrong user name or password" in line
    assert "fix HANPORT_MQTT_USERNAME and HANPORT_MQTT_PASSWORD" in line
    assert errors[0].reason == reason  # type: ignore[attr-defined]
    assert all("WrongPw-42" not in r.getMessage() for r in caplog.records)


async def test_client_certificate_for_a_broker_that_requires_one(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str, tmp_path: Path
) -> None:
    folder = tmp_path / "pki"
    ca, ca_key, ca_cert = make_ca(folder, "hanport-test-ca")
    cert, key = make_server_cert(folder, ca_key, ca_cert)
    client_cert, client_key = make_client_cert(folder, ca_key, ca_cert, "hanport-bridge")
    mosquitto_server.extra_config = [
        *KEEP_ROOT,
        f"cafile {ca}",
        f"certfile {cert}",
        f"keyfile {key}",
        "require_certificate true",
    ]
    mosquitto_server.restart()
    url = f"mqtts://127.0.0.1:{mosquitto_server.port}"
    stream = await writer(redis_server)
    config = settings(
        redis_server,
        url,
        license_keys,
        mqtt_ca_file=ca,
        mqtt_cert_file=client_cert,
        mqtt_key_file=client_key,
    )
    subscriber_tls = client_context(ca)
    subscriber_tls.load_cert_chain(str(client_cert), str(client_key))
    async with (
        Subscriber(mosquitto_server, [DATA], tls=subscriber_tls) as sub,
        running_bridge(config),
    ):
        await stream.add(reading(1))
        got = await sub.wait_count(DATA, 1)
    assert got[0].payload == encode_cozify(reading(1))
