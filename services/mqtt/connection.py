"""Connecting to the broker: an `aiomqtt.Client` built from the settings, and failures explained.

Consumes `MqttSettings` and the topics; produces a configured (not yet connected) client with
TLS, credentials, the retained `offline` last will and TCP_NODELAY (paho leaves Nagle on, which
adds ~40 ms to a lone message), and `explain(error)`: a failure reason (the metric label) and one
line saying what is wrong and how to fix it. The failure table `FAILURES` is walked by `explain`.
"""

from __future__ import annotations

import re
import socket
import ssl
from urllib.parse import unquote, urlsplit

import aiomqtt
from aiomqtt.client import ProtocolVersion

from .settings import MqttSettings
from .topics import Topics

ONLINE = b"online"
OFFLINE = b"offline"
NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class ConfigError(Exception):
    """A setting that cannot work as given (missing file, bad key); retried, never fatal."""


def broker_address(settings: MqttSettings) -> tuple[str, int, bool]:
    """(host, port, tls) from HANPORT_MQTT_URL."""
    assert settings.mqtt_url is not None
    parts = urlsplit(settings.mqtt_url)
    tls = parts.scheme == "mqtts"
    return parts.hostname or "localhost", parts.port or (8883 if tls else 1883), tls


def credentials(settings: MqttSettings) -> tuple[str | None, str | None]:
    """User name and password: the settings, else the URL's user info."""
    parts = urlsplit(settings.mqtt_url or "")
    username = settings.mqtt_username or (unquote(parts.username) if parts.username else None)
    try:
        password = settings.password()
    except OSError as error:
        raise ConfigError(
            f"cannot read HANPORT_MQTT_PASSWORD_FILE {settings.mqtt_password_file}: "
            f"{error.strerror}; point it at a readable file holding the password"
        ) from None
    if password is None and parts.password:
        password = unquote(parts.password)
    return username, password


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """Verifies the broker against HANPORT_MQTT_CA_FILE (else the system CAs), unless insecure."""
    try:
        context = ssl.create_default_context(
            cafile=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None
        )
        if settings.mqtt_cert_file:
            context.load_cert_chain(
                str(settings.mqtt_cert_file),
                str(settings.mqtt_key_file) if settings.mqtt_key_file else None,
            )
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f"cannot load the TLS files (HANPORT_MQTT_CA_FILE={settings.mqtt_ca_file}, "
            f"HANPORT_MQTT_CERT_FILE={settings.mqtt_cert_file}, "
            f"HANPORT_MQTT_KEY_FILE={settings.mqtt_key_file}): {error}; check paths and PEM format"
        ) from None
    if settings.mqtt_tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def make_client(settings: MqttSettings, topics: Topics) -> aiomqtt.Client:
    host, port, tls = broker_address(settings)
    username, password = credentials(settings)
    return aiomqtt.Client(
        host,
        port,
        username=username,
        password=password,
        identifier=settings.mqtt_client_id or f"hanport-{settings.mqtt_consumer}",
        protocol=ProtocolVersion.V5 if settings.mqtt_protocol == "5" else ProtocolVersion.V311,
        will=aiomqtt.Will(topics.availability, OFFLINE, qos=1, retain=True),
        keepalive=settings.mqtt_keepalive,
        timeout=settings.mqtt_publish_timeout,
        max_inflight_messages=0,  # no paho window: Confirmations keeps HANPORT_MQTT_INFLIGHT
        tls_context=tls_context(settings) if tls else None,
        socket_options=[NODELAY],
    )


# (reason, pattern matched against the error text, applies with a user name set: True/False,
#  None for both, what is wrong and how to fix it). Mosquitto answers a wrong password to an
# MQTT 3.1.1 client with "not authorised", so that row names both causes.
FAILURES: tuple[tuple[str, str, bool | None, str], ...] = (
    ("config", r"^HANPORT_|cannot (read|load)", None, "{error}"),
    ("bad_credentials", r"bad user ?name or password|\[code:(4|134)\]", None,
     "the broker {broker} refused user {user!r}: wrong user name or password; fix "
     "HANPORT_MQTT_USERNAME and HANPORT_MQTT_PASSWORD (or HANPORT_MQTT_PASSWORD_FILE)"),
    ("not_authorised", r"not authori[sz]ed|\[code:(5|135)\]", True,
     "the broker {broker} refused user {user!r} (not authorised): wrong user name or password, "
     "or the user may not connect; fix HANPORT_MQTT_USERNAME and HANPORT_MQTT_PASSWORD (or "
     "HANPORT_MQTT_PASSWORD_FILE), or allow the user in the broker's configuration"),
    ("not_authorised", r"not authori[sz]ed|\[code:(5|135)\]", False,
     "the broker {broker} refused an anonymous connection: set HANPORT_MQTT_USERNAME and "
     "HANPORT_MQTT_PASSWORD (or HANPORT_MQTT_PASSWORD_FILE)"),
    ("untrusted_certificate", r"certificate verify failed|CERTIFICATE_VERIFY_FAILED", None,
     "the TLS certificate of {broker} is not trusted ({error}): set HANPORT_MQTT_CA_FILE to the "
     "CA that signed it, or HANPORT_MQTT_TLS_INSECURE=true for a self-signed broker you trust"),
    ("tls", r"SSL|TLS|WRONG_VERSION_NUMBER", None,
     "TLS with {broker} failed ({error}): check that the port speaks TLS (mqtts://, usually "
     "8883) or use mqtt:// for a plain port"),
    ("refused", r"Connection refused|Errno 111", None,
     "nothing accepts connections at {broker}: is the broker running, and are host and port in "
     "HANPORT_MQTT_URL right?"),
    ("dns", r"Name or service not known|Temporary failure in name resolution|Errno -[23]", None,
     "the broker host in HANPORT_MQTT_URL ({broker}) does not resolve: check the name"),
    ("unreachable", r"timed out|No route to host|Network is unreachable|Errno 11[03]", None,
     "{broker} does not answer (network or firewall): check HANPORT_MQTT_URL and the network"),
    ("identifier_rejected", r"client identifier|\[code:(2|133)\]", None,
     "the broker {broker} rejected client id {client_id!r}: set HANPORT_MQTT_CLIENT_ID"),
    ("server_unavailable", r"server unavailable|\[code:(3|136)\]", None,
     "the broker {broker} says it is unavailable; it is retried"),
)  # fmt: skip


# A connection the broker ends this soon after it was accepted, or with MQTT 5's "session taken
# over" (code 142), is most likely another client connecting with the same client id: brokers
# drop the older one. Mosquitto 2.0 tells an MQTT 3.1.1 client nothing more than that it was
# disconnected, so the time is the only clue.
TAKEN_OVER = re.compile(r"session taken over|\[code:142\]", re.IGNORECASE)
TAKEN_OVER_WITHIN_S = 10.0


def lost_hint(error: BaseException, connected_for_s: float, client_id: str) -> str:
    """What to add to "lost the broker connection" when the cause may be a duplicate client id
    ("" otherwise)."""
    if TAKEN_OVER.search(str(error)) or connected_for_s < TAKEN_OVER_WITHIN_S:
        return (
            f"; the broker dropped it {connected_for_s:.1f} s after connecting: if another "
            f"client uses client id {client_id!r}, give each bridge its own "
            "HANPORT_MQTT_CLIENT_ID (or leave it unset for a unique one)"
        )
    return ""


def explain(error: BaseException, settings: MqttSettings) -> tuple[str, str]:
    """(reason, one clear line) for a failed connection; never contains the password."""
    host, port, tls = broker_address(settings)
    text = str(error) or type(error).__name__
    fields = {
        "broker": f"{'mqtts' if tls else 'mqtt'}://{host}:{port}",
        "user": settings.mqtt_username or urlsplit(settings.mqtt_url or "").username,
        "client_id": settings.mqtt_client_id or f"hanport-{settings.mqtt_consumer}",
        "error": text,
    }
    has_user = fields["user"] is not None
    for reason, pattern, with_user, message in FAILURES:
        if with_user not in (None, has_user):
            continue
        if re.search(pattern, text, re.IGNORECASE):
            return reason, message.format(**fields)
    return "other", f"cannot connect to {fields['broker']}: {text}"
