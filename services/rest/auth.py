"""Bearer tokens and their scopes, from `HANPORT_REST_TOKENS` and/or `HANPORT_REST_TOKENS_FILE`.

Formats: env `TOKEN:read,admin TOKEN2:read` (separated by spaces or `;`); file: one
`TOKEN read,admin` (or `TOKEN:read,admin`) per line, `#` starts a comment. `admin` implies
`read`. Tokens are kept only as SHA-256 digests and never logged; a bad line is reported by its
line number, never its text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Scope = Literal["read", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "admin")
IMPLIES: dict[str, frozenset[str]] = {"read": frozenset({"read"}), "admin": frozenset(SCOPES)}


class TokenError(ValueError):
    """A token definition is malformed (says where, never the token itself)."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_entry(text: str, where: str) -> tuple[bytes, frozenset[str]]:
    """`TOKEN:scope,scope` or `TOKEN scope,scope` -> (digest, granted scopes)."""
    parts = re.split(r"[:\s]+", text.strip(), maxsplit=1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise TokenError(f"{where}: expected 'TOKEN scope[,scope]' (scopes: {', '.join(SCOPES)})")
    token, scopes_text = parts
    granted: set[str] = set()
    for scope in filter(None, (s.strip() for s in scopes_text.split(","))):
        if scope not in IMPLIES:
            raise TokenError(f"{where}: unknown scope {scope!r} (known: {', '.join(SCOPES)})")
        granted |= IMPLIES[scope]
    if not granted:
        raise TokenError(f"{where}: no scope given (known: {', '.join(SCOPES)})")
    return _digest(token), frozenset(granted)


@dataclass
class Tokens:
    """Known tokens (as digests) and their scopes."""

    scopes: dict[bytes, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, env: str | None, path: str | None) -> Tokens:
        tokens = cls()
        if env:
            for n, item in enumerate(filter(None, re.split(r"[;\s]+", env.strip())), 1):
                tokens.add(*parse_entry(item, f"HANPORT_REST_TOKENS entry {n}"))
        if path:
            try:
                lines = Path(path).read_text().splitlines()
            except OSError as error:
                raise TokenError(f"HANPORT_REST_TOKENS_FILE {path}: {error.strerror}") from None
            for n, line in enumerate(lines, 1):
                line = line.split("#", 1)[0].strip()
                if line:
                    tokens.add(*parse_entry(line, f"{path} line {n}"))
        return tokens

    def add(self, digest: bytes, scopes: frozenset[str]) -> None:
        self.scopes[digest] = self.scopes.get(digest, frozenset()) | scopes

    def __bool__(self) -> bool:
        return bool(self.scopes)

    def granted(self, token: str) -> frozenset[str] | None:
        """The scopes of `token`, None when it is unknown. (Lookup by digest: no timing oracle
        on the token's characters.)"""
        return self.scopes.get(_digest(token))


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, if that is what it holds."""
    if not authorization:
        return None
    kind, _, token = authorization.partition(" ")
    return token.strip() or None if kind.lower() == "bearer" else None
