"""authenticated certificate_get (protocol.md §4.9): topics, ordering, `*_after` filters,
redaction, and who may read realm and shamir recovery certificates (stored here the way the
realm/shamir commands store them)."""

# ruff: noqa: F811  (pytest fixtures imported from core_helpers are redefined as arguments)
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from core_helpers import Device, Org, Server, org, server  # noqa: F401

from parsec_server.crypto import certificates as certs
from parsec_server.protocol.codec import now

OK = {"status": "ok"}


def kinds(raw: list[bytes]) -> list[tuple[str, bool | None]]:
    out: list[tuple[str, bool | None]] = []
    for cert in raw:
        for cls in (
            certs.UserCertificate,
            certs.DeviceCertificate,
            certs.RevokedUserCertificate,
            certs.UserUpdateCertificate,
        ):
            try:
                loaded = certs.unsecure_load(cls, cert)
            except certs.InvalidCertificate:
                continue
            redacted = (
                certs.is_redacted(loaded)
                if cls in (certs.UserCertificate, certs.DeviceCertificate)
                else None
            )
            out.append((cls.TYPE, redacted))  # type: ignore[arg-type]
            break
        else:
            raise AssertionError(cert[:80])
    return out


async def test_certificate_get_common_order(org: Org) -> None:
    t0 = now()
    bob = await org.alice.create_user("bob", ts=t0 + timedelta(seconds=1))
    carol = await org.alice.create_user("carol", ts=t0 + timedelta(seconds=2))
    assert await org.alice.update_profile(bob.user_id, "ADMIN", t0 + timedelta(seconds=3)) == OK
    assert await org.alice.revoke(carol.user_id, t0 + timedelta(seconds=4)) == OK
    rep = await bob.certificates()
    assert kinds(rep["common_certificates"]) == [
        ("user_certificate", False),
        ("device_certificate", False),
        ("user_certificate", False),
        ("device_certificate", False),
        ("user_certificate", False),
        ("device_certificate", False),
        ("user_update_certificate", None),
        ("revoked_user_certificate", None),
    ]
    assert rep["sequester_certificates"] == [] and rep["shamir_recovery_certificates"] == []
    assert rep["realm_certificates"] == {}


async def test_certificate_get_common_after(org: Org) -> None:
    t0 = now()
    await org.alice.create_user("bob", ts=t0 + timedelta(seconds=1))
    await org.alice.create_user("carol", ts=t0 + timedelta(seconds=2))
    everything = (await org.alice.certificates())["common_certificates"]
    assert (await org.alice.certificates(common_after=t0 + timedelta(seconds=1)))[
        "common_certificates"
    ] == everything[4:]
    assert (await org.alice.certificates(common_after=t0 + timedelta(seconds=2)))[
        "common_certificates"
    ] == []
    old = datetime(2000, 1, 1, tzinfo=t0.tzinfo)
    assert (await org.alice.certificates(common_after=old))["common_certificates"] == everything


async def test_certificate_get_outsider_gets_redacted(org: Org) -> None:
    bob = await org.alice.create_user("bob")
    mallory = await org.alice.create_user("mallory", "OUTSIDER")
    got = (await mallory.certificates())["common_certificates"]
    assert [r for _, r in kinds(got)] == [True] * 6
    assert [r for _, r in kinds((await bob.certificates())["common_certificates"])] == [False] * 6
    # the redacted ones are the certificates sent at creation, still verifiable
    cert = certs.verify_and_load(certs.UserCertificate, got[2], org.alice.verify_key)
    assert cert.user_id == bob.user_id and cert.human_handle is None


async def test_certificate_get_redaction_follows_current_profile(org: Org) -> None:
    bob = await org.alice.create_user("bob")
    await bob.certificates()  # cached handshake with profile STANDARD
    assert await org.alice.update_profile(bob.user_id, "OUTSIDER") == OK
    got = kinds((await bob.certificates())["common_certificates"])
    assert all(r for _, r in got if r is not None)
    assert await org.alice.update_profile(bob.user_id, "STANDARD") == OK
    got = kinds((await bob.certificates())["common_certificates"])
    assert not any(r for _, r in got if r is not None)


# --- realm & shamir topics (rows written directly, as their commands do) ------------------------


class Store:
    def __init__(self, server: Server, org: Org) -> None:
        self.server, self.org = server, org

    async def ids(self, conn: object, device: Device) -> tuple[int, int, int]:
        row = await conn.fetchrow(  # type: ignore[attr-defined]
            "SELECT o.id, u.id, d.id FROM organization o JOIN user_ u ON u.organization = o.id "
            "JOIN device d ON d.user_ = u.id WHERE o.organization_id = $1 AND d.device_id = $2",
            self.org.organization_id,
            device.device_id,
        )
        return tuple(row)  # type: ignore[return-value]

    async def realm(self, owner: Device, ts: datetime) -> tuple[uuid.UUID, int]:
        realm_id = uuid.uuid4()
        async with self.server.backend.db.transaction() as conn:
            org_i, _, dev_i = await self.ids(conn, owner)
            realm = await conn.fetchval(
                "INSERT INTO realm (organization, realm_id, created_on, created_by) VALUES ($1, "
                "$2, $3, $4) "
                "RETURNING id",
                org_i,
                realm_id,
                ts,
                dev_i,
            )
            await conn.execute(
                "INSERT INTO topic_realm (realm, last_timestamp) VALUES ($1, $2)", realm, ts
            )
        await self.role(realm, owner, "OWNER", ts, f"role-owner-{ts}".encode())
        return realm_id, realm

    async def role(
        self, realm: int, user: Device, role: str | None, ts: datetime, cert: bytes
    ) -> None:
        async with self.server.backend.db.transaction() as conn:
            org_i, user_i, _ = await self.ids(conn, user)
            await conn.execute(
                "INSERT INTO realm_member (realm, user_, role, role_certified_on) VALUES ($1, $2, "
                "$3, $4) "
                "ON CONFLICT (realm, user_) DO UPDATE SET role = EXCLUDED.role, role_certified_on "
                "= $4",
                realm,
                user_i,
                role,
                ts,
            )
            await self.cert(conn, org_i, realm, ts, "realm_role_certificate", cert)

    async def cert(
        self, conn: object, org_i: int, realm: int, ts: datetime, kind: str, cert: bytes
    ) -> None:
        await conn.execute(  # type: ignore[attr-defined]
            "INSERT INTO certificate (organization, topic, realm, certified_on, kind, certificate) "
            "VALUES ($1, 'realm', $2, $3, $4, $5)",
            org_i,
            realm,
            ts,
            kind,
            cert,
        )

    async def realm_cert(self, realm: int, ts: datetime, cert: bytes) -> None:
        async with self.server.backend.db.transaction() as conn:
            org_i, _, _ = await self.ids(conn, self.org.alice)
            await self.cert(conn, org_i, realm, ts, "realm_name_certificate", cert)


async def test_certificate_get_realms(server: Server, org: Org) -> None:
    s = Store(server, org)
    bob = await org.alice.create_user("bob")
    carol = await org.alice.create_user("carol")
    t0 = now()
    r1, r1_i = await s.realm(org.alice, t0)
    r2, _ = await s.realm(org.alice, t0 + timedelta(seconds=1))
    await s.realm_cert(r1_i, t0 + timedelta(seconds=2), b"name-1")
    await s.role(r1_i, bob, "READER", t0 + timedelta(seconds=3), b"share-bob")
    await s.role(r1_i, carol, "READER", t0 + timedelta(seconds=4), b"share-carol")
    await s.role(r1_i, bob, None, t0 + timedelta(seconds=5), b"unshare-bob")
    await s.realm_cert(r1_i, t0 + timedelta(seconds=6), b"name-2")

    alice_view = (await org.alice.certificates())["realm_certificates"]
    assert alice_view == {
        r1: [
            f"role-owner-{t0}".encode(),
            b"name-1",
            b"share-bob",
            b"share-carol",
            b"unshare-bob",
            b"name-2",
        ],
        r2: [f"role-owner-{t0 + timedelta(seconds=1)}".encode()],
    }
    # bob left r1: its history up to his unsharing; never in r2
    assert (await bob.certificates())["realm_certificates"] == {r1: alice_view[r1][:5]}
    assert (await carol.certificates())["realm_certificates"] == {r1: alice_view[r1]}
    # realm_after: strictly after, per realm; other realms unfiltered; unknown realms ignored
    rep = await org.alice.certificates(
        realm_after={r1: t0 + timedelta(seconds=4), uuid.uuid4(): t0}
    )
    assert rep["realm_certificates"] == {r1: [b"unshare-bob", b"name-2"], r2: alice_view[r2]}
    rep = await org.alice.certificates(
        realm_after={r1: t0 + timedelta(seconds=6), r2: t0 + timedelta(seconds=1)}
    )
    assert rep["realm_certificates"] == {}
    # the common topic is independent
    rep = await org.alice.certificates(common_after=now() + timedelta(seconds=60))
    assert rep["common_certificates"] == [] and set(rep["realm_certificates"]) == {r1, r2}


async def test_certificate_get_shamir(server: Server, org: Org) -> None:
    s = Store(server, org)
    bob = await org.alice.create_user("bob")
    carol = await org.alice.create_user("carol")
    dave = await org.alice.create_user("dave")
    ts = now()
    async with server.backend.db.transaction() as conn:
        org_i, bob_i, bob_dev = await s.ids(conn, bob)
        _, carol_i, _ = await s.ids(conn, carol)
        _, dave_i, _ = await s.ids(conn, dave)
        setup = await conn.fetchval(
            "INSERT INTO shamir_recovery_setup (organization, user_, created_on, created_by, "
            "threshold, total_shares,"
            " ciphered_data, reveal_token) VALUES ($1, $2, $3, $4, 1, 2, 'x', $5) RETURNING id",
            org_i,
            bob_i,
            ts,
            bob_dev,
            b"r" * 16,
        )
        for recipient in (carol_i, dave_i):
            await conn.execute(
                "INSERT INTO shamir_recovery_share (setup, recipient, shares) VALUES ($1, $2, 1)",
                setup,
                recipient,
            )
        insert = (
            "INSERT INTO certificate (organization, topic, certified_on, priority, kind, "
            "certificate, "
            "shamir_recovery_setup, shamir_recipient) VALUES ($1, 'shamir_recovery', $2, $3, $4, "
            "$5, $6, $7)"
        )
        await conn.execute(
            insert, org_i, ts, 0, "shamir_recovery_brief_certificate", b"brief", setup, None
        )
        await conn.execute(
            insert,
            org_i,
            ts,
            1,
            "shamir_recovery_share_certificate",
            b"share-carol",
            setup,
            carol_i,
        )
        await conn.execute(
            insert, org_i, ts, 1, "shamir_recovery_share_certificate", b"share-dave", setup, dave_i
        )
        await conn.execute(
            insert,
            org_i,
            ts + timedelta(seconds=1),
            0,
            "shamir_recovery_deletion_certificate",
            b"deletion",
            setup,
            None,
        )
    assert (await bob.certificates())["shamir_recovery_certificates"] == [b"brief", b"deletion"]
    assert (await carol.certificates())["shamir_recovery_certificates"] == [
        b"brief",
        b"share-carol",
        b"deletion",
    ]
    assert (await dave.certificates())["shamir_recovery_certificates"] == [
        b"brief",
        b"share-dave",
        b"deletion",
    ]
    assert (await org.alice.certificates())["shamir_recovery_certificates"] == []
    rep = await carol.certificates(shamir_recovery_after=ts)
    assert rep["shamir_recovery_certificates"] == [b"deletion"]
