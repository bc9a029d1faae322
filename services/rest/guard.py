"""The one gate every reading endpoint passes: bearer-token scope, then the REST license.

Consumes the request's `Authorization` header (or `access_token` query parameter, for browsers'
EventSource and WebSocket, which cannot set headers); produces None (go ahead) or a `Refusal`
(status, JSON body). `Entitlements.decide("rest")` is called here and nowhere else.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from shared.entitlements import FEATURES, Entitlements, MeterFilter

from .auth import Tokens, bearer
from .metrics import REFUSED

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Refusal:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


def _refusal(status: int, error: str, message: str, **extra: object) -> Refusal:
    REFUSED.labels(error).inc()
    body = _encoder.encode({"error": error, "message": message, **extra})
    headers: tuple[tuple[bytes, bytes], ...] = ()
    if status == 401:
        headers = ((b"www-authenticate", b'Bearer realm="hanport"'),)
    return Refusal(status, body, headers)


def token_from(authorization: str | None, query_string: bytes) -> str | None:
    token = bearer(authorization)
    if token is None and b"access_token=" in query_string:
        for key, value in parse_qsl(query_string.decode("latin-1")):
            if key == "access_token" and value:
                return value
    return token


@dataclass
class Guard:
    tokens: Tokens
    entitlements: Entitlements | None
    read_auth: bool = False
    meter_filter: MeterFilter = field(default_factory=lambda: MeterFilter("rest"))

    def serves(self, name: str | None, meter_id: str | None = None) -> bool:
        """Whether the REST license serves meter `name` (a license may name the meters it
        serves; without such a license, or before any meter is known, every one)."""
        if self.entitlements is None or name is None:
            return True
        decision = self.entitlements.decide("rest")
        if not decision.granted or decision.meters is None:
            return True  # not granted at all: `check` refuses, naming the license
        return self.meter_filter.serves(decision, name, meter_id)

    def meter_refusal(self, name: str | None, meter_id: str | None = None) -> Refusal | None:
        """403 `unlicensed` when the REST license does not serve meter `name`, else None."""
        if self.serves(name, meter_id):
            return None
        assert self.entitlements is not None and name is not None
        decision = self.entitlements.decide("rest")
        named = ", ".join(sorted(decision.meters or ()))
        return _refusal(
            403,
            "unlicensed",
            f"the license for 'rest' serves only the meters {named}, not meter {name!r}: "
            "install a license that names it",
            feature="rest",
            meter=name,
        )

    def check(
        self, scope: str, authorization: str | None, query_string: bytes = b""
    ) -> Refusal | None:
        """May this request use an endpoint needing `scope` (`read` or `admin`)?"""
        if scope != "read" or self.read_auth:
            refusal = self._check_token(scope, token_from(authorization, query_string))
            if refusal is not None:
                return refusal
        if scope == "read":
            return self._check_license()
        return None

    def check_asgi(self, scope_needed: str, scope: MutableMapping[str, Any]) -> Refusal | None:
        """`check` for a raw ASGI request; reads headers only when a token is needed."""
        authorization = None
        if scope_needed != "read" or self.read_auth:
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value.decode("latin-1")
                    break
        return self.check(scope_needed, authorization, scope.get("query_string", b""))

    def _check_token(self, scope: str, token: str | None) -> Refusal | None:
        """No valid token: 401 (with `WWW-Authenticate`); a valid one lacking `scope`: 403."""
        if not self.tokens:
            return _refusal(
                401,
                "unauthorized",
                f"this needs a token with the '{scope}' scope and none is configured: "
                "set HANPORT_REST_TOKENS or HANPORT_REST_TOKENS_FILE",
            )
        if token is None:
            return _refusal(
                401,
                "unauthorized",
                f"send 'Authorization: Bearer <token>' with a token that has the '{scope}' scope",
            )
        granted = self.tokens.granted(token)
        if granted is None:
            return _refusal(401, "unauthorized", "unknown bearer token")
        if scope not in granted:
            return _refusal(403, "forbidden", f"this token lacks the '{scope}' scope")
        return None

    def _check_license(self) -> Refusal | None:
        if self.entitlements is None:
            return None
        decision = self.entitlements.decide("rest")
        if decision.granted:
            return None
        return _refusal(
            403,
            "unlicensed",
            f"the REST interface needs a license for the 'rest' feature: {decision.reason}",
            feature="rest",
            use=self.entitlements.settings.use,
        )

    def licensed(self) -> dict[str, bool]:
        """Which interfaces are licensed now (for `/han`)."""
        if self.entitlements is None:
            return {feature: feature == "rest" for feature in FEATURES}
        return {feature: self.entitlements.decide(feature).granted for feature in FEATURES}
