"""Logging set-up: one line per record on stderr with the service name, as JSON or plain text
(`auto`: text when stderr is a terminal, JSON otherwise), secrets in URLs redacted.

Never log secrets: keys, passwords and tokens are not passed to the logger anywhere, and every
line written (the message, its extra fields, a traceback, uvicorn's access log) goes through
`redact`, which hides a URL's password and the value of every query parameter named like a
secret (`token`, `access_token`, `api_key`, `password`, ...).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import TextIO

import msgspec

# LogRecord's own attributes, and uvicorn's ANSI-coloured duplicate of the message.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}

HIDDEN = "***"

# A query parameter whose name contains one of these (any case) holds a secret.
SECRET_WORDS = ("token", "key", "pass", "pwd", "secret", "auth", "signature", "credential")
# `?name=value` (or after `&`/`;`); the value ends where the URL or a JSON string does.
_SECRET_PARAMETER = re.compile(
    r"(?P<name>[?&;][^=&#?;\s\"'\\]*(?:" + "|".join(SECRET_WORDS) + r")[^=&#?;\s\"'\\]*=)"
    r"[^&#;\s\"'\\]*",
    re.IGNORECASE,
)
# `scheme://user:password@host` (the password may hold `@`: the last one ends it, as in urlsplit)
_PASSWORD = re.compile(r"(?P<user>://[^/?#@:\s\"'\\]*:)[^/?#\s\"'\\]*@")


def redact(text: str) -> str:
    """`text` with every URL password and secret query value replaced by `***`; the rest is
    kept byte for byte."""
    if "=" not in text and "://" not in text:
        return text
    text = _PASSWORD.sub(rf"\g<user>{HIDDEN}@", text)
    return _SECRET_PARAMETER.sub(rf"\g<name>{HIDDEN}", text)


def redact_url(url: str) -> str:
    """`redis://user:secret@host:6379/0` -> `redis://user:***@host:6379/0`;
    `/meter?access_token=abc&x=1` -> `/meter?access_token=***&x=1`."""
    return redact(url)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(msgspec.json.encode(entry, enc_hook=str).decode())


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s {service} %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


FORMATTERS: dict[str, type[JsonFormatter] | type[TextFormatter]] = {
    "json": JsonFormatter,
    "text": TextFormatter,
}


def resolve_format(fmt: str, stream: TextIO) -> str:
    """`json` or `text`; `auto` is text for a person at a terminal, JSON for a log collector."""
    if fmt != "auto":
        return fmt
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # a replaced or closed stream
        return "json"


def setup_logging(service: str, level: str = "INFO", fmt: str = "auto") -> None:
    """Log to stderr as `fmt` (`json`, `text` or `auto`) at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FORMATTERS[resolve_format(fmt, sys.stderr)](service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
