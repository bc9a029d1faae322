"""schemathesis against `/openapi.json` of `hanport rest` running as a real process (the same
entry point as production) on a real redis-server with readings: no 500s, every response
matches the documented status codes, content types, headers and schemas.

Twice: through schemathesis' Python API (positive and negative data, hypothesis' search;
`/events` and `/ws` left out: endless streams, tested in test_push.py), and through its command
line exactly as a user runs it (`st run --checks all`: every phase, including the coverage
phase's missing-header and undeclared-method probes, every operation, event streams read for a
few events and checked event by event against the documented `itemSchema`). Examples are
limited per operation to keep this fast. Then the answers those checks once caught, one by one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from redis import Redis
from schemathesis.generation.modes import GenerationMode

from services.rest.models import MeterMessage
from shared.fields import BY_KEY
from shared.reading import COZIFY_KEYS, encode_reading
from tests.rest.readings import sample_readings
from tests.servers import RedisServer, free_port, running

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rest_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    redis_server = RedisServer(tmp_path_factory.mktemp("redis"))
    redis_server.start()
    client = Redis.from_url(redis_server.url)
    now = int(time.time() * 1000)
    for k, reading in enumerate(sample_readings(20)):
        reading = msgspec.structs.replace(reading, ts=now - 20_000 + k * 1000, received=now)
        client.xadd("hanport:readings", {"reading": encode_reading(reading)})
    client.xadd(
        "hanport:raw",
        {"result": "ok", "raw": b"/TST5\r\n\r\n1-0:1.8.0(000001.000*kWh)\r\n!0000\r\n"},
    )
    client.close()
    port = free_port()
    env = {
        **os.environ,
        "HANPORT_REDIS_URL": redis_server.url,
        "HANPORT_REST_HOST": "127.0.0.1",
        "HANPORT_REST_PORT": str(port),
        "HANPORT_REST_STALE_AFTER": "3600",
        "HANPORT_LOG_FORMAT": "text",
    }
    log = tmp_path_factory.mktemp("rest") / "rest.log"
    try:
        with running([sys.executable, "-m", "services.rest"], log, port, env=env, cwd=ROOT):
            yield f"http://127.0.0.1:{port}"
    finally:
        redis_server.stop()


# examples per operation and mode; raise it for a deeper run: HANPORT_SCHEMATHESIS_EXAMPLES=500
EXAMPLES = int(os.environ.get("HANPORT_SCHEMATHESIS_EXAMPLES", "15"))
EXCLUDED = re.compile(r"^/(events|ws)$")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_matches_the_openapi_document(
    rest_process: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{rest_process}/openapi.json")
    failures: list[str] = []
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        if EXCLUDED.match(operation.path):
            continue
        tested.append(f"{operation.method.upper()} {operation.path}")

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate()

        try:
            check()
        except Unsatisfiable:  # no parameters: nothing invalid to send (negative mode)
            continue
        except Exception as error:  # every operation is tried; all failures are reported
            failures.append(f"{operation.method.upper()} {operation.path}: {error}")
    assert len(tested) >= 10, tested
    assert not failures, "\n\n".join(failures)


def test_the_reading_models_are_the_field_catalogue() -> None:
    """MeterMessage has exactly the Cozify keys, each with the catalogue's description and
    as many positions as the catalogue's row."""
    schema = MeterMessage.model_json_schema()
    assert list(schema["properties"]) == ["type", *COZIFY_KEYS]
    for key in COZIFY_KEYS:
        field, described = BY_KEY[key], schema["properties"][key]
        assert described["description"] == field.description, key
        if field.positions:
            assert described["minItems"] == described["maxItems"] == len(field.positions), key


# Schemathesis' own configuration for the command-line run: an event stream is read for two
# events (the newest reading and the status that follows it); `/ws` over plain HTTP always
# answers 426 (schemathesis speaks no WebSocket), so that is its accepted answer.
SCHEMATHESIS_CONFIG = """
max-stream-events = 2

[[operations]]
include-path = "/ws"
checks.positive_data_acceptance.expected-statuses = [426]
"""


def test_schemathesis_command_line_with_every_check_finds_nothing(
    rest_process: str, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run"),
        f"{rest_process}/openapi.json",
        *("--checks", "all", "--max-examples", str(EXAMPLES)),
        *("--request-timeout", "5", "--workers", "1", "--no-color"),
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    tested = re.search(r"Tested: (\d+)", report)
    assert tested is not None and int(tested.group(1)) >= 12, report[-2000:]


def test_events_document_each_event_not_a_string(rest_process: str) -> None:
    document = httpx.get(f"{rest_process}/openapi.json").json()
    content = document["paths"]["/events"]["get"]["responses"]["200"]["content"]
    stream = content["text/event-stream"]
    assert "schema" not in stream  # before OpenAPI 3.2 `schema` would describe one event
    events = {
        branch["properties"]["event"]["const"]: branch for branch in stream["itemSchema"]["oneOf"]
    }
    assert set(events) == {"HAN_METER_MESSAGE", "HAN_STATUS"}
    meter = events["HAN_METER_MESSAGE"]["properties"]["data"]
    assert meter["contentMediaType"] == "application/json"
    assert meter["contentSchema"] == {"$ref": "#/components/schemas/MeterMessage"}


def test_ws_without_upgrade_is_426_as_documented(rest_process: str) -> None:
    answer = httpx.get(f"{rest_process}/ws")
    assert answer.status_code == 426
    assert answer.headers["upgrade"] == "websocket"
    assert answer.json()["error"] == "upgrade_required"
    assert "Upgrade: websocket" in answer.json()["message"]
    document = httpx.get(f"{rest_process}/openapi.json").json()
    assert "426" in document["paths"]["/ws"]["get"]["responses"]


@pytest.mark.parametrize("method", ["TRACE", "DELETE", "PUT"])
def test_an_undeclared_method_is_405_with_allow(rest_process: str, method: str) -> None:
    for path in ("/ws", "/meter/history", "/admin/reload-tokens"):
        answer = httpx.request(method, f"{rest_process}{path}")
        assert answer.status_code == 405, (method, path)
        assert answer.headers["allow"], (method, path)
        body = answer.json()
        assert body["error"] == "method_not_allowed", body
        assert f"{method} is not allowed on {path}" in body["message"]


def test_admin_without_a_token_is_401_with_www_authenticate(rest_process: str) -> None:
    answer = httpx.post(f"{rest_process}/admin/reload-tokens")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="hanport"'
    assert answer.json()["error"] == "unauthorized"
    assert "HANPORT_REST_TOKENS" in answer.json()["message"]


@pytest.mark.parametrize("path", ["/nope", "/meter/nope", "/static/nope.js", "/docs/assets/x"])
def test_an_unknown_path_answers_the_documented_error_body(rest_process: str, path: str) -> None:
    answer = httpx.get(f"{rest_process}{path}")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "error": "not_found",
        "message": f"nothing at {path}: the endpoints are listed at /docs",
    }


def test_no_parameter_is_documented_as_nullable(rest_process: str) -> None:
    """A header or query value is text: an optional one is left out, never sent as `null`."""
    document = httpx.get(f"{rest_process}/openapi.json").json()
    parameters = [
        (path, parameter["name"], parameter["schema"])
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
    ]
    assert len(parameters) >= 6
    for path, name, schema in parameters:
        assert "null" not in str(schema.get("type")), (path, name, schema)
        assert {"type": "null"} not in schema.get("anyOf", []), (path, name, schema)
    since = next(s for p, n, s in parameters if (p, n) == ("/meter/history", "since"))
    assert since["type"] == "string" and since["pattern"].startswith("^")
