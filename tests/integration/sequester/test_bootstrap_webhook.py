"""`--organization-bootstrap-webhook` (docs/sequester.md): told of each bootstrap with the official
JSON payload, on a webhook HTTP server on loopback; a failing, dead or hanging webhook is logged and
the bootstrap still succeeds (within `--webhook-timeout`)."""

from __future__ import annotations

import json
import logging

import pytest
from core_helpers import running_server
from sequester_support import Webhook, free_port_url, webhook_server


async def test_bootstrap_payload(db_url: str) -> None:
    async with (
        webhook_server() as hook,
        running_server(db_url, organization_bootstrap_webhook=hook.url) as server,
    ):
        org = await server.bootstrap_org()
        assert len(hook.calls) == 1
        call = hook.calls[0]
        assert call.content_type == "application/json; charset=utf-8"
        assert json.loads(call.body) == {
            "organization_id": org.organization_id,
            "device_id": org.alice.device_id.hex,
            "device_label": "alice-dev1",
            "human_email": org.alice.human.email,
            "human_label": org.alice.human.label,
        }
        # a refused bootstrap (already bootstrapped) is not told
        rep = await server.bootstrap_req(
            org.organization_id, org.bootstrap_certs, org.root_key, None
        )
        assert rep["status"] != "ok"
        assert len(hook.calls) == 1


@pytest.mark.parametrize("failure", ["500", "down", "slow"])
async def test_bootstrap_webhook_failure(
    db_url: str, failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="parsec_server.webhooks")
    async with webhook_server() as hook:
        url = free_port_url() if failure == "down" else hook.url
        hook.status = 500 if failure == "500" else 200
        hook.delay = 30 if failure == "slow" else 0  # far beyond --webhook-timeout
        async with running_server(
            db_url, organization_bootstrap_webhook=url, webhook_timeout=0.5
        ) as server:
            org = await server.bootstrap_org()  # asserts the bootstrap is ok
            r = await server.admin("GET", f"/organizations/{org.organization_id}")
            assert r.json()["is_bootstrapped"] is True
    events = [r.getMessage() for r in caplog.records if r.name == "parsec_server.webhooks"]
    expected = {
        "500": "bootstrap_webhook_bad_status",
        "down": "bootstrap_webhook_unreachable",
        "slow": "bootstrap_webhook_timeout",
    }[failure]
    assert events == [expected]


async def test_no_webhook_configured(db_url: str) -> None:
    async with webhook_server() as hook, running_server(db_url) as server:
        await server.bootstrap_org()
    assert hook.calls == []
    assert isinstance(hook, Webhook)
