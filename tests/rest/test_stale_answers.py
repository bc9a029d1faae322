"""A stale `/meter` is 503 for every client; Home Assistant (its HTTP session's User-Agent)
gets it as plain text, so integrations that parse the body whatever the status (Cozify's
cozify_han 1.0.7) fail their fetch instead of reading zeros. Everyone else gets the documented
JSON."""

from __future__ import annotations

import json

import pytest

from tests.rest.conftest import RestFactory

HOME_ASSISTANT = "HomeAssistant/2025.4.4 aiohttp/3.11.16 Python/3.13"


@pytest.mark.parametrize("path", ["/meter", "/meter/data"])
async def test_home_assistant_gets_a_stale_answer_it_cannot_parse(
    rest_factory: RestFactory, path: str
) -> None:
    rest = await rest_factory(rest_stale_after=5.0)
    await rest.add(age_s=60)
    answer = await rest.client.get(path, headers={"user-agent": HOME_ASSISTANT})
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.text.startswith("503 stale: no fresh reading: the newest reading is")
    with pytest.raises(json.JSONDecodeError):
        json.loads(answer.text)
    other = await rest.client.get(path, headers={"user-agent": "curl/8.5.0"})
    assert other.status_code == 503
    assert other.headers["content-type"] == "application/json"
    assert other.json()["error"] == "stale"
