"""Clients written for the Cozify HAN reader work unchanged against `/meter`.

- Cozify's Home Assistant integration reads `ic`, `ec`, `p`, `pi`, `pe`, `u`, `i`, `r`, `ts`
  from the meter message (JSON numbers; `p`/`pi`/`pe`/`r` as [total, L1, L2, L3], `u`/`i` as
  [L1, L2, L3]) and needs `type` == HAN_METER_MESSAGE.
- evcc's Cozify template fetches `/meter/data` and evaluates jq expressions: power
  `.pi[0] - .pe[0]`, energy `.ic`, currents `.i[0]`..`.i[2]`, voltages `.u[0]`..`.u[2]`.
  They are run here with the real `jq` binary, as evcc's jq does.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from asyncio.subprocess import PIPE
from typing import Any

import pytest

from tests.rest.conftest import RestUnderTest

HA_KEYS = {
    "ts": (int, None),
    "ic": (float, None),
    "ec": (float, None),
    "p": (list, 4),
    "pi": (list, 4),
    "pe": (list, 4),
    "r": (list, 4),
    "u": (list, 3),
    "i": (list, 3),
}
EVCC_JQ = {
    "power": ".pi[0] - .pe[0]",
    "energy": ".ic",
    "currents": "[.i[0], .i[1], .i[2]]",
    "voltages": "[.u[0], .u[1], .u[2]]",
}


async def test_home_assistant_integration_keys_types_and_lengths(rest: RestUnderTest) -> None:
    await rest.add()
    response = await rest.client.get("/meter")
    assert response.status_code == 200
    message = json.loads(response.content)  # plain json, like aiohttp's response.json()
    assert message["type"] == "HAN_METER_MESSAGE"
    for key, (kind, length) in HA_KEYS.items():
        value = message[key]
        if kind is float:  # a JSON number (int-looking numbers are fine to Python clients)
            assert isinstance(value, int | float) and not isinstance(value, bool), key
        else:
            assert isinstance(value, kind), key
        if length is not None:
            assert len(value) == length, key
            assert all(isinstance(v, int | float) for v in value), (key, value)
    assert message["ts"] > 1_600_000_000_000  # milliseconds, not seconds
    # p is net power: pi - pe, total and per phase
    for n in range(4):
        assert message["p"][n] == pytest.approx(message["pi"][n] - message["pe"][n])


async def jq(expression: str, document: bytes) -> Any:
    process = await asyncio.create_subprocess_exec(
        "jq", "-c", expression, stdin=PIPE, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(document), 10)
    assert process.returncode == 0, err
    return json.loads(out)


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
async def test_evcc_cozify_template_jq_expressions(rest: RestUnderTest) -> None:
    await rest.add()
    body = (await rest.client.get("/meter/data")).content
    latest = rest.state.latest
    assert latest is not None
    reading = latest.reading
    results = {name: await jq(expression, body) for name, expression in EVCC_JQ.items()}
    assert reading.pi[0] is not None and reading.pe[0] is not None
    assert results["power"] == pytest.approx(reading.pi[0] - reading.pe[0])
    assert results["energy"] == pytest.approx(reading.ic)
    assert results["currents"] == pytest.approx(reading.i)
    assert results["voltages"] == pytest.approx(reading.u)
    assert all(isinstance(v, int | float) for v in results["currents"] + results["voltages"])
