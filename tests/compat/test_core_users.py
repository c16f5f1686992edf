"""Core user/device behaviour beyond the basic suites: races between concurrent certificate
commands, state changes seen by devices that already authenticated, checks read from the current
state."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import parsec._parsec as p
from client import (
    AC,
    AdminClient,
    AuthenticatedClient,
    Org,
    build_user_certs,
    device_cert,
    human,
    now,
    user_create_req,
)

UC = AC.user_create
PING = AC.ping.Req(ping="x").dump()


def parallel(n: int, fn: Callable[[int], object]) -> list[object]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, range(n)))


def eventually_http(client: AuthenticatedClient, status: int, timeout: float = 5.0) -> None:
    """The official server drops its per-device handshake cache asynchronously (NOTIFY)."""
    deadline = time.monotonic() + timeout
    while True:
        got = client.post(PING).status_code
        if got == status:
            return
        assert time.monotonic() < deadline, f"still HTTP {got}, expected {status}"
        time.sleep(0.05)


def test_concurrent_user_create_same_email(alice: AuthenticatedClient) -> None:
    base = now()

    def attempt(i: int) -> object:
        certs = build_user_certs(
            alice.organization_id,
            alice.device,
            alice.device.signing_key,
            name=f"u{i}",
            human_handle=human("zack"),
            timestamp=base.add(microseconds=i),
        )
        return alice.send(user_create_req(certs))

    reps = parallel(4, attempt)
    assert sum(isinstance(r, UC.RepOk) for r in reps) == 1, reps
    assert all(
        isinstance(r, UC.RepOk | UC.RepHumanHandleAlreadyTaken | UC.RepRequireGreaterTimestamp)
        for r in reps
    ), reps
    assert len(alice.certificates().common_certificates) == 4


def test_concurrent_user_create_same_user_id(alice: AuthenticatedClient) -> None:
    user_id = p.UserID.new()
    base = now()

    def attempt(i: int) -> object:
        certs = build_user_certs(
            alice.organization_id,
            alice.device,
            alice.device.signing_key,
            name=f"u{i}",
            user_id=user_id,
            timestamp=base.add(microseconds=10 - i),
        )
        return alice.send(user_create_req(certs))

    reps = parallel(4, attempt)
    assert sum(isinstance(r, UC.RepOk) for r in reps) == 1, reps
    assert all(
        isinstance(r, UC.RepOk | UC.RepUserAlreadyExists | UC.RepRequireGreaterTimestamp)
        for r in reps
    ), reps


def test_concurrent_device_create_same_id(alice: AuthenticatedClient) -> None:
    device_id = p.DeviceID.new()
    base = now()
    d = alice.device

    def attempt(i: int) -> object:
        key = p.SigningKey.generate()
        ts = base.add(microseconds=i)
        cert = device_cert(
            d.device_id, ts, d.user_id, device_id, p.DeviceLabel("dup"), key.verify_key
        )
        redacted = device_cert(d.device_id, ts, d.user_id, device_id, None, key.verify_key)
        return alice.send(
            AC.device_create.Req(
                device_certificate=alice.sign(cert),
                redacted_device_certificate=alice.sign(redacted),
            )
        )

    reps = parallel(4, attempt)
    assert sum(isinstance(r, AC.device_create.RepOk) for r in reps) == 1, reps
    assert all(
        isinstance(
            r,
            AC.device_create.RepOk
            | AC.device_create.RepDeviceAlreadyExists
            | AC.device_create.RepRequireGreaterTimestamp,
        )
        for r in reps
    ), reps


def test_concurrent_revocations(alice: AuthenticatedClient) -> None:
    bob = alice.create_user("bob")
    admins = [alice] + [alice.create_user(f"admin{i}", p.UserProfile.ADMIN) for i in range(2)]
    base = now()
    reps = parallel(3, lambda i: admins[i].revoke(bob.user_id, base.add(microseconds=i)))
    assert sum(isinstance(r, AC.user_revoke.RepOk) for r in reps) == 1, reps
    assert all(
        isinstance(
            r,
            AC.user_revoke.RepOk
            | AC.user_revoke.RepUserAlreadyRevoked
            | AC.user_revoke.RepRequireGreaterTimestamp,
        )
        for r in reps
    ), reps


def test_revoked_user_that_already_authenticated(alice: AuthenticatedClient) -> None:
    bob = alice.create_user("bob")
    assert bob.ping().pong == "hello"
    assert isinstance(alice.revoke(bob.user_id), AC.user_revoke.RepOk)
    eventually_http(bob, 461)
    # and none of its commands goes through in the meantime
    certs = build_user_certs(bob.organization_id, bob.device, bob.device.signing_key, name="x")
    r = bob.post(user_create_req(certs).dump())
    assert r.status_code == 461


def test_frozen_user_that_already_authenticated(admin: AdminClient, org: Org) -> None:
    bob = org.alice.create_user("bob")
    assert bob.ping().pong == "hello"
    admin.freeze(org.organization_id, bob.user_id)
    eventually_http(bob, 462)
    admin.freeze(org.organization_id, bob.user_id, frozen=False)
    eventually_http(bob, 200)


def test_demoted_admin_immediately_refused(alice: AuthenticatedClient) -> None:
    admin2 = alice.create_user("admin2", p.UserProfile.ADMIN)
    assert isinstance(admin2.send(AC.list_frozen_users.Req()), AC.list_frozen_users.RepOk)
    assert isinstance(
        alice.update_profile(admin2.user_id, p.UserProfile.STANDARD), AC.user_update.RepOk
    )
    # the profile is read from the current state, not from a cached authentication
    carol = alice.create_user("carol")
    assert isinstance(admin2.revoke(carol.user_id), AC.user_revoke.RepAuthorNotAllowed)
    assert isinstance(
        admin2.update_profile(carol.user_id, p.UserProfile.ADMIN),
        AC.user_update.RepAuthorNotAllowed,
    )
    certs = build_user_certs(
        admin2.organization_id, admin2.device, admin2.device.signing_key, name="dave"
    )
    assert isinstance(admin2.send(user_create_req(certs)), UC.RepAuthorNotAllowed)


def test_update_profile_back_and_forth(alice: AuthenticatedClient) -> None:
    bob = alice.create_user("bob")
    for profile in (p.UserProfile.ADMIN, p.UserProfile.OUTSIDER, p.UserProfile.STANDARD):
        assert isinstance(alice.update_profile(bob.user_id, profile), AC.user_update.RepOk)
    assert isinstance(
        alice.update_profile(bob.user_id, p.UserProfile.STANDARD), AC.user_update.RepUserNoChanges
    )
    updates = [c for c in alice.certificates().common_certificates[-3:]]
    profiles = [p.UserUpdateCertificate.unsecure_load(c).new_profile for c in updates]
    assert profiles == [p.UserProfile.ADMIN, p.UserProfile.OUTSIDER, p.UserProfile.STANDARD]


def test_revoked_user_devices_all_refused(alice: AuthenticatedClient) -> None:
    bob = alice.create_user("bob")
    bob2 = bob.create_device("second")
    assert isinstance(alice.revoke(bob.user_id), AC.user_revoke.RepOk)
    eventually_http(bob2, 461)
    eventually_http(bob, 461)


def test_device_created_by_second_device(alice: AuthenticatedClient) -> None:
    dev2 = alice.create_device("second")
    dev3 = dev2.create_device("third")
    got = alice.certificates().common_certificates
    authors = [p.DeviceCertificate.unsecure_load(c).author for c in got[-2:]]
    assert authors == [alice.device_id, dev2.device_id]
    assert dev3.ping().pong == "hello"


def test_revocation_same_timestamp_as_common_topic_refused(alice: AuthenticatedClient) -> None:
    ts = now()
    certs = build_user_certs(
        alice.organization_id, alice.device, alice.device.signing_key, name="bob", timestamp=ts
    )
    assert isinstance(alice.send(user_create_req(certs)), UC.RepOk)
    rep = alice.revoke(certs.device.user_id, ts)
    assert isinstance(rep, AC.user_revoke.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == ts
    assert isinstance(
        alice.revoke(certs.device.user_id, ts.add(microseconds=1)), AC.user_revoke.RepOk
    )
