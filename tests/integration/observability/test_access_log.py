"""`--access-log`: one structured `access` line per request, client values escaped, no secret."""

from __future__ import annotations

import logging

import pytest
from core_helpers import API_HEADERS, running_server

from parsec_server.log import ConsoleFormatter, JsonFormatter


def access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "parsec_server.access"]


async def test_access_log_one_line_per_request(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="parsec_server")
    async with running_server(db_url, access_log=True) as server:
        org = await server.bootstrap_org()
        caplog.clear()
        assert (await org.alice.rpc("ping", ping="hi"))["status"] == "ok"
        r = await server.http.post("/anonymous/Bad%0Aforged%20line", headers=API_HEADERS)
        assert r.status_code == 404
        assert (await server.http.get("/metrics")).status_code == 404  # metrics off
    lines = access_lines(caplog)
    assert len(lines) == 3
    ping, bad, metrics = lines
    fields = {
        k: getattr(ping, k) for k in ("method", "path", "http_status", "family", "cmd", "status")
    }
    assert fields == {
        "method": "POST",
        "path": f"/authenticated/{org.organization_id}",
        "http_status": 200,
        "family": "authenticated",
        "cmd": "ping",
        "status": "ok",
    }
    assert vars(ping)["ms"] >= 0 and vars(ping)["peer"].startswith("127.0.0.1:")
    assert (
        vars(bad)["http_status"],
        vars(bad)["family"],
        vars(bad)["cmd"],
        vars(bad)["status"],
    ) == (404, "anonymous", None, None)
    assert (vars(metrics)["http_status"], vars(metrics)["family"]) == (404, "metrics")
    for formatter in (ConsoleFormatter(), JsonFormatter()):
        text = formatter.format(bad)
        assert "\n" not in text and "forged line" in text
        for record in lines:
            out = formatter.format(record)
            # the device's signature and token travel in headers, never logged
            assert "authorization" not in out.lower() and "signature" not in out.lower()
    assert "Bad\\nforged line" in ConsoleFormatter().format(bad)


async def test_no_access_log_by_default(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="parsec_server")
    async with running_server(db_url) as server:
        org = await server.bootstrap_org()
        assert (await org.alice.rpc("ping", ping="hi"))["status"] == "ok"
    assert access_lines(caplog) == []
