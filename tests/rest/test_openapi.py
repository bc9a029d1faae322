"""schemathesis against `/openapi.json` of `hanport rest` running as a real process (the same
entry point as production) on a real redis-server with readings: no 500s, every response
matches the documented status codes, content types, headers and schemas.

Positive and negative (invalid) data, with every check schemathesis has. `/events` and `/ws` are left out: they are endless streams (their behaviour is tested in
test_push.py). Examples are limited per operation to keep this fast.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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
