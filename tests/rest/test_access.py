"""Bearer tokens (env or file; scopes read/admin), CORS, and the REST license in commercial use."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.rest.auth import TokenError, Tokens
from tests.licensing_helpers import grant, revoke
from tests.rest.conftest import TIMEOUT, RestFactory
from tests.servers import RedisServer


async def test_reads_are_open_by_default_and_admin_always_needs_a_token(
    rest_factory: RestFactory,
) -> None:
    rest = await rest_factory()
    await rest.add()
    assert (await rest.client.get("/meter")).status_code == 200
    refused = await rest.client.post("/admin/reload-tokens")
    assert refused.status_code == 401  # no token sent (none is configured either)
    assert refused.headers["www-authenticate"] == 'Bearer realm="hanport"'
    assert refused.json()["error"] == "unauthorized"
    assert "HANPORT_REST_TOKENS" in refused.json()["message"]


async def test_tokens_from_env_with_scopes(rest_factory: RestFactory) -> None:
    rest = await rest_factory(rest_tokens="reader-1:read boss-2:admin", rest_read_auth=True)
    await rest.add()
    for path in ("/meter", "/meter/data", "/meter/history", "/meter/telegram"):
        missing = await rest.client.get(path)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert missing.json()["error"] == "unauthorized"
    wrong = await rest.client.get("/meter", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["message"] == "unknown bearer token"
    read = {"Authorization": "Bearer reader-1"}
    admin = {"Authorization": "Bearer boss-2"}
    assert (await rest.client.get("/meter", headers=read)).status_code == 200
    assert (await rest.client.get("/meter", headers=admin)).status_code == 200  # admin implies read
    assert (await rest.client.get("/meter?access_token=reader-1")).status_code == 200
    low = await rest.client.post("/admin/reload-tokens", headers=read)
    assert low.status_code == 403 and "'admin' scope" in low.json()["message"]
    ok = await rest.client.post("/admin/reload-tokens", headers=admin)
    assert ok.status_code == 200 and ok.json() == {"tokens": 2}
    # health, state and the page stay open so a person can see what is wrong
    for path in ("/healthz", "/han", "/"):
        assert (await rest.client.get(path)).status_code == 200


async def test_tokens_from_a_file_and_reload(rest_factory: RestFactory, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# hanport tokens\nops-token admin\nha-token read  # Home Assistant\n")
    rest = await rest_factory(rest_tokens_file=str(tokens), rest_read_auth=True)
    await rest.add()
    assert (
        await rest.client.get("/meter", headers={"Authorization": "Bearer ha-token"})
    ).status_code == 200
    tokens.write_text("ops-token admin\nnew-token read\n")
    admin = {"Authorization": "Bearer ops-token"}
    assert (await rest.client.post("/admin/reload-tokens", headers=admin)).json() == {"tokens": 2}
    assert (
        await rest.client.get("/meter", headers={"Authorization": "Bearer ha-token"})
    ).status_code == 401
    assert (
        await rest.client.get("/meter", headers={"Authorization": "Bearer new-token"})
    ).status_code == 200
    tokens.write_text("ops-token superuser\n")
    bad = await rest.client.post("/admin/reload-tokens", headers=admin)
    assert bad.status_code == 409 and "line 1" in bad.json()["message"]
    assert "superuser" in bad.json()["message"] and "ops-token" not in bad.json()["message"]


def test_token_definitions_are_checked_without_echoing_tokens(tmp_path: Path) -> None:
    assert Tokens.load("a:read;b:read,admin", None).granted("b") == {"read", "admin"}
    with pytest.raises(TokenError, match="entry 1") as error:
        Tokens.load("s3cret", None)
    assert "s3cret" not in str(error.value)
    with pytest.raises(TokenError, match="No such file"):
        Tokens.load(None, str(tmp_path / "missing"))


async def test_cors_is_off_by_default_and_configurable(rest_factory: RestFactory) -> None:
    plain = await rest_factory()
    await plain.add()
    response = await plain.client.get("/meter", headers={"Origin": "http://ha.local"})
    assert "access-control-allow-origin" not in response.headers
    cors = await rest_factory(rest_cors_origins="http://ha.local, http://other.local")
    await cors.add()
    response = await cors.client.get("/meter", headers={"Origin": "http://ha.local"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://ha.local"
    preflight = await cors.client.options(
        "/meter/history",
        headers={"Origin": "http://other.local", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://other.local"
    foreign = await cors.client.get("/meter", headers={"Origin": "http://evil.example"})
    assert foreign.headers.get("access-control-allow-origin") != "http://evil.example"


async def test_commercial_use_without_a_license_is_403_naming_the_license(
    rest_factory: RestFactory,
) -> None:
    rest = await rest_factory(use="commercial", rest_startup_wait=0.2)
    await rest.add()
    for path in ("/meter", "/meter/data", "/meter/history", "/events"):
        response = await rest.client.get(path)
        assert response.status_code == 403, path
        body = response.json()
        assert body["error"] == "unlicensed"
        assert body["feature"] == "rest" and body["use"] == "commercial"
        assert "license" in body["message"] and "'rest'" in body["message"]
    han = (await rest.client.get("/han")).json()
    assert han["licensed"]["rest"] is False


async def test_commercial_use_with_a_rest_license_serves_until_revoked(
    rest_factory: RestFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = await grant(redis_server.url, tmp_path, "HPTESTREST1", ["rest"], use="commercial")
    rest = await rest_factory(
        use="commercial",
        serial=env["HANPORT_SERIAL"],
        license_public_keys=env["HANPORT_LICENSE_PUBLIC_KEYS"],
    )
    assert rest.guard is not None and rest.guard.entitlements is not None
    entitlements = rest.guard.entitlements
    await asyncio.wait_for(entitlements.wait_until("rest", granted=True), TIMEOUT)
    await rest.add()
    assert (await rest.client.get("/meter")).status_code == 200
    assert (await rest.client.get("/han")).json()["licensed"]["rest"] is True
    await revoke(redis_server.url, ["rest"])
    await asyncio.wait_for(entitlements.wait_until("rest", granted=False), TIMEOUT)
    refused = await rest.client.get("/meter")
    assert refused.status_code == 403 and refused.json()["error"] == "unlicensed"
