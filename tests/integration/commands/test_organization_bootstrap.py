"""anonymous organization_bootstrap (protocol.md §4.3), spontaneous bootstrap (§1.8), sequester
authority."""

# ruff: noqa: F811  (pytest fixtures imported from core_helpers are redefined as arguments)
from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta

import nacl.signing
import pytest
from core_helpers import (
    Device,
    HttpError,
    NewUserCerts,
    Server,
    device_cert,
    new_user_certs,
    server,  # noqa: F401
    sign,
    user_cert,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from parsec_server.protocol.codec import now
from parsec_server.protocol.ids import HumanHandle

OK = {"status": "ok"}


@dataclasses.dataclass
class Fresh:
    server: Server
    org_id: str
    token: bytes | None
    root: nacl.signing.SigningKey

    def certs(self, **kwargs: object) -> NewUserCerts:
        kwargs.setdefault("profile", "ADMIN")
        kwargs.setdefault("name", "alice")
        return new_user_certs(None, self.root, **kwargs)  # type: ignore[arg-type]

    async def bootstrap(
        self,
        certs: NewUserCerts | None = None,
        token: object = "default",
        root: nacl.signing.SigningKey | None = None,
        sequester: bytes | None = None,
    ) -> dict:
        return await self.server.bootstrap_req(
            self.org_id,
            certs or self.certs(),
            root or self.root,
            self.token if token == "default" else token,  # type: ignore[arg-type]
            sequester_authority_certificate=sequester,
        )

    async def is_bootstrapped(self) -> bool:
        r = await self.server.admin("GET", f"/organizations/{self.org_id}")
        return bool(r.json()["is_bootstrapped"])


@pytest.fixture
async def fresh(server: Server) -> Fresh:
    org_id, token = await server.create_org()
    return Fresh(server, org_id, token, nacl.signing.SigningKey.generate())


async def test_bootstrap_ok(fresh: Fresh) -> None:
    certs = fresh.certs()
    assert await fresh.bootstrap(certs) == OK
    assert await fresh.is_bootstrapped()
    alice = Device(
        fresh.server,
        fresh.org_id,
        certs.user_id,
        certs.device_id,
        certs.signing_key,
        certs.human,
        "ADMIN",
    )
    got = await alice.certificates()
    assert got["common_certificates"] == [certs.user_certificate, certs.device_certificate]
    assert got["sequester_certificates"] == []
    # the admin API lists the new user
    r = await fresh.server.admin("GET", f"/organizations/{fresh.org_id}/users")
    assert r.json() == {
        "users": [
            {
                "user_id": certs.user_id.hex,
                "user_email": "alice@example.com",
                "user_name": "Alice",
                "frozen": False,
            }
        ]
    }


async def test_bootstrap_organization_already_bootstrapped(fresh: Fresh) -> None:
    assert await fresh.bootstrap() == OK
    rep = await fresh.bootstrap(fresh.certs(name="eve"))
    assert rep == {"status": "organization_already_bootstrapped"}
    # checked before the token
    assert await fresh.bootstrap(fresh.certs(), token=b"x" * 16) == {
        "status": "organization_already_bootstrapped"
    }
    assert await fresh.bootstrap(fresh.certs(), token=None) == {
        "status": "organization_already_bootstrapped"
    }


async def test_bootstrap_invalid_bootstrap_token(fresh: Fresh) -> None:
    assert await fresh.bootstrap(token=b"y" * 16) == {"status": "invalid_bootstrap_token"}
    assert await fresh.bootstrap(token=None) == {"status": "invalid_bootstrap_token"}
    assert not await fresh.is_bootstrapped()
    assert await fresh.bootstrap() == OK


async def test_bootstrap_timestamp_out_of_ballpark(fresh: Fresh) -> None:
    for offset in (-330, 310, 3600):
        ts = now() + timedelta(seconds=offset)
        before = now()
        rep = await fresh.bootstrap(fresh.certs(ts=ts))
        assert rep["status"] == "timestamp_out_of_ballpark", rep
        assert rep["client_timestamp"] == ts
        assert rep["ballpark_client_early_offset"] == 300.0
        assert rep["ballpark_client_late_offset"] == 320.0
        assert before <= rep["server_timestamp"] <= now()
    assert not await fresh.is_bootstrapped()
    assert await fresh.bootstrap(fresh.certs(ts=now() - timedelta(seconds=250))) == OK


def _invalid_cases(f: Fresh) -> dict[str, NewUserCerts]:
    c = f.certs()
    other = nacl.signing.SigningKey.generate()
    ts, uid, did = c.timestamp, c.user_id, c.device_id
    pk = b"k" * 32
    vk = bytes(c.signing_key.verify_key)
    repl = lambda **kw: dataclasses.replace(c, **kw)  # noqa: E731
    return {
        "user-signed-by-other-key": repl(
            user_certificate=sign(other, user_cert(None, ts, uid, c.human, pk, "ADMIN"))
        ),
        "device-with-author": repl(
            device_certificate=sign(f.root, device_cert(uuid.uuid4(), ts, uid, did, "d", vk))
        ),
        "not-admin": f.certs(profile="STANDARD"),
        "device-timestamp-differs": repl(
            device_certificate=sign(
                f.root, device_cert(None, ts + timedelta(microseconds=1), uid, did, "d", vk)
            )
        ),
        "device-of-other-user": repl(
            device_certificate=sign(f.root, device_cert(None, ts, uuid.uuid4(), did, "d", vk)),
            redacted_device_certificate=sign(
                f.root, device_cert(None, ts, uuid.uuid4(), did, None, vk)
            ),
        ),
        "redacted-user-not-redacted": repl(redacted_user_certificate=c.user_certificate),
        "redacted-device-not-redacted": repl(redacted_device_certificate=c.device_certificate),
        "redacted-user-differs": repl(
            redacted_user_certificate=sign(f.root, user_cert(None, ts, uid, None, pk, "ADMIN"))
        ),
        "swapped": repl(
            user_certificate=c.device_certificate, device_certificate=c.user_certificate
        ),
        "garbage": repl(user_certificate=b"garbage"),
    }


@pytest.mark.parametrize(
    "case", list(_invalid_cases(Fresh(None, "", None, nacl.signing.SigningKey.generate())))
)  # type: ignore[arg-type]
async def test_bootstrap_invalid_certificate(fresh: Fresh, case: str) -> None:
    rep = await fresh.bootstrap(_invalid_cases(fresh)[case])
    assert rep == {"status": "invalid_certificate"}
    assert not await fresh.is_bootstrapped()


async def test_bootstrap_invalid_certificate_before_token_and_wrong_root_key(fresh: Fresh) -> None:
    rep = await fresh.bootstrap(token=b"z" * 16, root=nacl.signing.SigningKey.generate())
    assert rep == {"status": "invalid_certificate"}


async def test_bootstrap_expired_organization(fresh: Fresh) -> None:
    r = await fresh.server.admin(
        "PATCH", f"/organizations/{fresh.org_id}", json={"is_expired": True}
    )
    assert r.status_code == 200
    with pytest.raises(HttpError) as exc:
        await fresh.bootstrap()
    assert exc.value.status_code == 460


async def test_bootstrap_unknown_organization(server: Server) -> None:
    root = nacl.signing.SigningKey.generate()
    with pytest.raises(HttpError) as exc:
        await server.bootstrap_req(
            "NoSuchOrg", new_user_certs(None, root, profile="ADMIN"), root, None
        )
    assert exc.value.status_code == 404


async def test_concurrent_bootstraps_one_wins(fresh: Fresh) -> None:
    reps = await asyncio.gather(*(fresh.bootstrap(fresh.certs(name=f"user{i}")) for i in range(4)))
    assert sorted(r["status"] for r in reps) == ["ok"] + ["organization_already_bootstrapped"] * 3


async def test_redacted_user_certificate_as_main_one(fresh: Fresh) -> None:
    # accepted like the official server; the user gets the redacted email
    c = fresh.certs()
    rep = await fresh.bootstrap(
        dataclasses.replace(c, user_certificate=c.redacted_user_certificate)
    )
    assert rep == OK
    r = await fresh.server.admin("GET", f"/organizations/{fresh.org_id}/users")
    assert r.json()["users"][0]["user_email"] == f"{c.user_id.hex}@redacted.invalid"


# --- sequester ----------------------------------------------------------------------------------


def _rsa_der() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


async def test_bootstrap_sequestered(fresh: Fresh) -> None:
    c = fresh.certs()
    authority = sign(
        fresh.root,
        {
            "type": "sequester_authority_certificate",
            "timestamp": c.timestamp,
            "verify_key_der": _rsa_der(),
        },
    )
    assert await fresh.bootstrap(c, sequester=authority) == OK
    alice = Device(
        fresh.server, fresh.org_id, c.user_id, c.device_id, c.signing_key, c.human, "ADMIN"
    )
    got = await alice.certificates()
    assert got["sequester_certificates"] == [authority]
    assert (await alice.certificates(sequester_after=c.timestamp))["sequester_certificates"] == []
    async with fresh.server.backend.db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT o.sequester_authority_verify_key_der IS NOT NULL AS seq, t.last_timestamp "
            "FROM organization o "
            "JOIN topic_sequester t ON t.organization = o.id WHERE o.organization_id = $1",
            fresh.org_id,
        )
    assert row["seq"] and row["last_timestamp"] == c.timestamp


@pytest.mark.parametrize("case", ["other-timestamp", "bad-signature", "not-rsa"])
async def test_bootstrap_invalid_sequester_authority(fresh: Fresh, case: str) -> None:
    c = fresh.certs()
    content = {
        "type": "sequester_authority_certificate",
        "timestamp": c.timestamp,
        "verify_key_der": _rsa_der(),
    }
    key = fresh.root
    if case == "other-timestamp":
        content["timestamp"] = c.timestamp + timedelta(seconds=1)
    elif case == "bad-signature":
        key = nacl.signing.SigningKey.generate()
    else:
        content["verify_key_der"] = b"not a key"
    assert await fresh.bootstrap(c, sequester=sign(key, content)) == {
        "status": "invalid_certificate"
    }


async def test_bootstrap_sequester_authority_out_of_ballpark(fresh: Fresh) -> None:
    ts = now() - timedelta(hours=1)
    authority = sign(
        fresh.root,
        {"type": "sequester_authority_certificate", "timestamp": ts, "verify_key_der": _rsa_der()},
    )
    rep = await fresh.bootstrap(fresh.certs(), sequester=authority)
    assert rep["status"] == "timestamp_out_of_ballpark"
    assert rep["client_timestamp"] == ts


# --- spontaneous bootstrap ----------------------------------------------------------------------


async def test_spontaneous_bootstrap(db_url: str) -> None:
    from core_helpers import running_server

    async with running_server(
        db_url,
        spontaneous_organization_bootstrap=True,
        organization_initial_active_users_limit=7,
        organization_initial_tos={"en_US": "https://example.com/tos"},
    ) as srv:
        root = nacl.signing.SigningKey.generate()
        certs = new_user_certs(None, root, profile="ADMIN")
        # the organization does not exist: the anonymous POST creates it, with no token
        assert await srv.bootstrap_req("Spontaneous", certs, root, b"t" * 16) == {
            "status": "invalid_bootstrap_token"
        }
        info = (await srv.admin("GET", "/organizations/Spontaneous")).json()
        assert info["is_bootstrapped"] is False
        assert info["active_users_limit"] == 7
        assert info["tos"]["per_locale_urls"] == {"en_US": "https://example.com/tos"}
        assert await srv.bootstrap_req("Spontaneous", certs, root, None) == OK
        rep = await srv.anonymous("Spontaneous2", "ping", ping="hi")
        assert rep == {"status": "ok", "pong": "hi"}
        assert (await srv.admin("GET", "/organizations/Spontaneous2")).status_code == 200
        # server_config says so
        r = await srv.http.post(
            "/anonymous_server",
            content=_server_config_body(),
            headers={"Api-Version": "5.5", "Content-Type": "application/msgpack"},
        )
        from parsec_server.protocol.registry import decode_rep

        assert decode_rep(r.content)["organization_bootstrap"] == "SPONTANEOUS"


async def test_no_spontaneous_bootstrap_by_default(server: Server) -> None:
    with pytest.raises(HttpError) as exc:
        await server.anonymous("NotCreated", "ping", ping="x")
    assert exc.value.status_code == 404
    assert (await server.admin("GET", "/organizations/NotCreated")).status_code == 404


def _server_config_body() -> bytes:
    from parsec_server.protocol.codec import packb

    return packb({"cmd": "server_config"})


async def test_server_config(server: Server) -> None:
    from parsec_server.protocol.registry import decode_rep

    r = await server.http.post(
        "/anonymous_server",
        content=_server_config_body(),
        headers={"Api-Version": "5.5", "Content-Type": "application/msgpack"},
    )
    assert r.status_code == 200
    assert decode_rep(r.content) == {
        "status": "ok",
        "account": "DISABLED",
        "organization_bootstrap": "WITH_BOOTSTRAP_TOKEN",
        "openbao": {"type": "DISABLED"},
        "cryptpad": {"type": "DISABLED"},
        "advisory_device_file_protection": [],
    }


async def test_bootstrap_reuses_nothing_across_organizations(server: Server) -> None:
    # same user/device ids and email in two organizations: independent
    root = nacl.signing.SigningKey.generate()
    certs = new_user_certs(
        None, root, profile="ADMIN", human=HumanHandle("same@example.com", "Same")
    )
    for _ in range(2):
        org_id, token = await server.create_org()
        assert await server.bootstrap_req(org_id, certs, root, token) == OK
