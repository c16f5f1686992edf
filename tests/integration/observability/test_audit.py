"""Every administration action logs one `admin_action` line: who and what, never a secret
(administration API and operator commands)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid

import pytest
from core_helpers import ADMIN_TOKEN, bootstrap_token_from_url, running_server
from test_realm import new_realm, sql

from parsec_server.log import ConsoleFormatter, JsonFormatter

EXE = [sys.executable, "-m", "parsec_server.cli.main"]


def audit_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "parsec_server.audit"]


async def test_administration_api_actions_are_audited(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="parsec_server")
    async with running_server(db_url) as server:
        org_id = f"Aud{uuid.uuid4().hex[:8]}"
        r = await server.admin("POST", "/organizations", json={"organization_id": org_id})
        assert r.status_code == 200
        bootstrap_url = r.json()["bootstrap_url"]
        token = bootstrap_token_from_url(bootstrap_url)
        assert token
        r = await server.admin("POST", "/organizations", json={"organization_id": org_id})
        assert r.status_code == 200  # not bootstrapped yet: replaced (a new token)
        org = await server.bootstrap_org()
        caplog.clear()
        r = await server.admin(
            "PATCH", f"/organizations/{org.organization_id}", json={"active_users_limit": 7}
        )
        assert r.status_code == 200
        r = await server.admin(
            "PATCH", f"/organizations/Nope{uuid.uuid4().hex[:6]}", json={"is_expired": True}
        )
        assert r.status_code == 404
        freeze = f"/organizations/{org.organization_id}/users/freeze"
        user_id = org.alice.user_id
        for frozen in (True, False):
            r = await server.admin("POST", freeze, json={"user_id": str(user_id), "frozen": frozen})
            assert r.status_code == 200, r.text
        r = await server.admin("GET", f"/organizations/{org.organization_id}")  # not an action
        assert r.status_code == 200
        r = await server.admin(
            "POST", freeze, json={"user_email": "nobody@x.invalid", "frozen": True}
        )
        assert r.status_code == 404
    records = audit_records(caplog)
    got = [(vars(r)["action"], vars(r)["outcome"], vars(r)["organization"]) for r in records]
    assert got == [
        ("organization_update", "ok", org.organization_id),
        ("organization_update", "not_found", got[1][2]),
        ("user_freeze", "ok", org.organization_id),
        ("user_unfreeze", "ok", org.organization_id),
        ("user_freeze", "not_found", org.organization_id),
    ]
    assert vars(records[0])["settings"] == {"active_users_limit": 7}
    assert vars(records[2])["user_id"] == user_id.hex
    assert all(vars(r)["actor"] == "administration_token" for r in records)
    assert all(vars(r)["peer"].startswith("127.0.0.1:") for r in records)
    everything = [
        f.format(r) for f in (ConsoleFormatter(), JsonFormatter()) for r in caplog.records
    ]
    text = "\n".join(everything)
    assert ADMIN_TOKEN not in text
    assert token.hex() not in text and bootstrap_url not in text


async def test_organization_creation_is_audited_without_its_token(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="parsec_server.audit")
    async with running_server(db_url) as server:
        org_id = f"Aud{uuid.uuid4().hex[:8]}"
        r = await server.admin(
            "POST", "/organizations", json={"organization_id": org_id, "active_users_limit": 3}
        )
        assert r.status_code == 200
        token = bootstrap_token_from_url(r.json()["bootstrap_url"])
    (record,) = audit_records(caplog)
    assert (vars(record)["action"], vars(record)["outcome"], vars(record)["organization"]) == (
        "organization_create",
        "ok",
        org_id,
    )
    assert vars(record)["settings"] == {"active_users_limit": 3}
    assert token is not None
    for f in (ConsoleFormatter(), JsonFormatter()):
        line = f.format(record)
        assert token.hex() not in line and ADMIN_TOKEN not in line and "bootstrap" not in line


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    env["PARSEC_LOG_FORMAT"] = "json"
    return subprocess.run(
        [*EXE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def audit_lines(stderr: str) -> list[dict[str, object]]:
    docs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [d for d in docs if d.get("event") == "admin_action"]


def test_operator_commands_are_audited(db_url: str) -> None:
    org_id = f"Cli{uuid.uuid4().hex[:8]}"
    created = cli(
        "organization",
        "create",
        org_id,
        "--server-addr",
        "parsec3://parsec.example.com",
        "--db",
        db_url,
    )
    assert created.returncode == 0, created.stderr
    url = created.stdout.strip()
    token = bootstrap_token_from_url(url)
    assert token is not None
    (line,) = audit_lines(created.stderr)
    assert line["action"] == "organization_create" and line["outcome"] == "ok"
    assert line["organization"] == org_id and str(line["actor"]).startswith("cli:")
    assert token.hex() not in created.stderr and url not in created.stderr
    assert created.stdout.strip() == url  # stdout stays the command's output alone

    frozen = cli(
        "user", "freeze", "--organization", org_id, "--email", "a@b.invalid", "--db", db_url
    )
    assert frozen.returncode != 0
    (line,) = audit_lines(frozen.stderr)
    assert (line["action"], line["outcome"], line["organization"]) == (
        "user_freeze",
        "not_found",
        org_id,
    )

    deleted = cli("organization", "delete", org_id, "--yes", "--db", db_url)
    assert deleted.returncode == 0, deleted.stderr
    (line,) = audit_lines(deleted.stderr)
    assert (line["action"], line["outcome"], line["organization"]) == (
        "organization_delete",
        "ok",
        org_id,
    )
    assert line["blocks_removed"] == 0 and line["blocks_left"] == 0


async def test_delete_realm_is_audited(db_url: str) -> None:
    async with running_server(db_url) as server:
        org = await server.bootstrap_org()
        realm_id = await new_realm(org.alice)
        rep = await org.alice.rpc(
            "block_create", block_id=uuid.uuid4(), realm_id=realm_id, key_index=1, block=b"x"
        )
        assert rep == {"status": "ok"}
        await sql(
            server,
            "UPDATE realm SET status = 'DELETION_PLANNED', deletion_date = now() - interval '1 s' "
            "WHERE realm_id = $1",
            realm_id,
        )
        args = ["--organization", org.organization_id, "--realm", realm_id.hex, "--db", db_url]
        dry = cli("delete_realm", *args, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert audit_lines(dry.stderr) == []  # a dry run acts on nothing
        done = cli("delete_realm", *args, "--yes")
        assert done.returncode == 0, done.stderr
    (line,) = audit_lines(done.stderr)
    assert (line["action"], line["outcome"], line["organization"]) == (
        "realm_delete",
        "ok",
        org.organization_id,
    )
    assert line["realm_id"] == realm_id.hex
    assert (line["blocks_removed"], line["blocks_left"]) == (1, 0)
