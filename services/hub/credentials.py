"""Fleet credentials: NATS operator mode (decentralized JWT auth), made without `nsc`.

Consumes nothing but keys; produces the JWTs and `.creds` files nats-server 2.9 verifies.

- One **operator** (its key signs accounts) and two accounts: `SYS` (the server's system account)
  and `HANPORT` (every box and the hub's own workers). The hub's configuration names the operator
  and preloads the two account JWTs (`server_config`); it never lists a box.
- The `HANPORT` account has a **signing key**. Whoever holds it (the provisioning tool,
  `hanport hub box-creds`) issues a box its own user JWT: publish only `hanport.<box>.>`, receive
  only its own reply inbox `_INBOX_<box>.>`. The server checks the chain operator -> account ->
  signing key -> user at connect, so a new box needs no change to the hub.
- A JWT is `base64url(header).base64url(claims).base64url(ed25519 signature)`, the header
  `{"typ":"JWT","alg":"ed25519-nkey"}`, the claims those of the NATS JWT v2 format.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import nkeys

HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
UNLIMITED = -1
# What a box may do: publish under its own subjects, receive replies on its own inbox.
BOX_PUBLISH = "hanport.{box}.>"
BOX_INBOX = "_INBOX_{box}"


def new_seed(prefix: int) -> bytes:
    """A new nkey seed (`S...`) of the kind `prefix` (nkeys.PREFIX_BYTE_*)."""
    return bytes(nkeys.encode_seed(os.urandom(32), prefix))


def public_key(seed: bytes) -> str:
    return str(nkeys.from_seed(bytearray(seed)).public_key.decode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def encode_jwt(claims: dict[str, Any], signer_seed: bytes) -> str:
    """Sign `claims` (jti and iat filled in) with the nkey seed `signer_seed`."""
    claims = {**claims, "iat": int(time.time()), "jti": ""}
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    body = _b64(json.dumps(HEADER).encode()) + "." + _b64(json.dumps(claims).encode())
    signature = nkeys.from_seed(bytearray(signer_seed)).sign(body.encode())
    return body + "." + _b64(bytes(signature))


def decode_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT (unverified: for display and tests)."""
    body = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def operator_jwt(seed: bytes, name: str, system_account: str) -> str:
    pub = public_key(seed)
    nats = {"type": "operator", "version": 2, "system_account": system_account}
    return encode_jwt({"iss": pub, "sub": pub, "name": name, "nats": nats}, seed)


def account_jwt(
    operator_seed: bytes, seed: bytes, name: str, *, jetstream: bool, signing_keys: list[str]
) -> str:
    limits: dict[str, Any] = {
        "subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED, "imports": UNLIMITED,
        "exports": UNLIMITED, "wildcards": True, "conn": UNLIMITED, "leaf": UNLIMITED,
    }  # fmt: skip
    if jetstream:
        limits.update(mem_storage=UNLIMITED, disk_storage=UNLIMITED, streams=UNLIMITED,
                      consumer=UNLIMITED)  # fmt: skip
    nats = {"type": "account", "version": 2, "limits": limits, "signing_keys": signing_keys,
            "default_permissions": {"pub": {}, "sub": {}}}  # fmt: skip
    claims = {"iss": public_key(operator_seed), "sub": public_key(seed), "name": name, "nats": nats}
    return encode_jwt(claims, operator_seed)


def user_jwt(
    signer_seed: bytes,
    account: str,
    user_public: str,
    name: str,
    *,
    publish: list[str] | None = None,
    subscribe: list[str] | None = None,
) -> str:
    """A user of `account`, signed by the account or one of its signing keys; `publish` and
    `subscribe` None: no restriction."""
    nats: dict[str, Any] = {"type": "user", "version": 2, "subs": UNLIMITED, "data": UNLIMITED,
                            "payload": UNLIMITED, "pub": {}, "sub": {}}  # fmt: skip
    if publish is not None:
        nats["pub"] = {"allow": publish}
    if subscribe is not None:
        nats["sub"] = {"allow": subscribe}
    if public_key(signer_seed) != account:
        nats["issuer_account"] = account
    claims = {"iss": public_key(signer_seed), "sub": user_public, "name": name, "nats": nats}
    return encode_jwt(claims, signer_seed)


def creds_text(jwt: str, seed: bytes) -> str:
    """A `.creds` file as nsc writes it (nats-py's `user_credentials` reads it)."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed.decode()}\n"
        "------END USER NKEY SEED------\n"
    )


def box_inbox(box: str) -> str:
    """The reply-inbox prefix a box's client uses (nats-py `inbox_prefix`)."""
    return BOX_INBOX.format(box=box)


@dataclass(frozen=True)
class Fleet:
    """The keys of a fleet: operator, system account, the hanport account and its signing key."""

    operator: bytes
    system: bytes
    account: bytes
    signing: bytes

    @classmethod
    def new(cls) -> Fleet:
        return cls(
            operator=new_seed(nkeys.PREFIX_BYTE_OPERATOR),
            system=new_seed(nkeys.PREFIX_BYTE_ACCOUNT),
            account=new_seed(nkeys.PREFIX_BYTE_ACCOUNT),
            signing=new_seed(nkeys.PREFIX_BYTE_ACCOUNT),
        )

    def to_json(self) -> str:
        return json.dumps({k: getattr(self, k).decode() for k in ("operator", "system", "account",
                                                                   "signing")})  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> Fleet:
        data = json.loads(text)
        return cls(**{k: data[k].encode() for k in ("operator", "system", "account", "signing")})

    def server_config(self) -> str:
        """The operator-mode lines of a hub node's nats-server configuration."""
        system = public_key(self.system)
        op = operator_jwt(self.operator, "hanport", system)
        sys_jwt = account_jwt(self.operator, self.system, "SYS", jetstream=False, signing_keys=[])
        acc_jwt = account_jwt(
            self.operator, self.account, "HANPORT", jetstream=True,
            signing_keys=[public_key(self.signing)],
        )  # fmt: skip
        return (
            f"operator: {op}\n"
            f"system_account: {system}\n"
            "resolver: MEMORY\n"
            "resolver_preload: {\n"
            f"  {system}: {sys_jwt}\n"
            f"  {public_key(self.account)}: {acc_jwt}\n"
            "}\n"
        )

    def box_creds(self, box: str) -> str:
        """A new box's `.creds`: publish only under `hanport.<box>.>`."""
        seed = new_seed(nkeys.PREFIX_BYTE_USER)
        token = user_jwt(
            self.signing, public_key(self.account), public_key(seed), box,
            publish=[BOX_PUBLISH.format(box=box)], subscribe=[box_inbox(box) + ".>"],
        )  # fmt: skip
        return creds_text(token, seed)

    def service_creds(self, name: str) -> str:
        """Credentials of the hub's own workers (`hub init`, sinks): no restriction."""
        seed = new_seed(nkeys.PREFIX_BYTE_USER)
        return creds_text(user_jwt(self.signing, public_key(self.account), public_key(seed), name),
                          seed)  # fmt: skip
