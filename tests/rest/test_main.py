"""`hanport rest` refuses bad configuration at start: one clear line, exit code 2."""

from __future__ import annotations

import pytest

from services.rest.__main__ import main


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HANPORT_REST_PORT": "eighty"}, "HANPORT_REST_PORT='eighty'"),
        ({"HANPORT_REST_STALE_AFTER": "0"}, "HANPORT_REST_STALE_AFTER='0'"),
        ({"HANPORT_REST_READ_AUTH": "true"}, "no token has the 'read' scope"),
        ({"HANPORT_REST_TOKENS": "secret-token"}, "HANPORT_REST_TOKENS entry 1"),
    ],
)
def test_bad_settings_stop_with_one_line(
    env: dict[str, str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        code = main([])
    except SystemExit as stop:
        code = int(stop.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert "secret-token" not in err
