"""Core organization behaviour beyond the basic suites: server_config, sequestered bootstrap,
concurrent bootstraps, organization re-creation, administration corner cases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import parsec._parsec as p
import pytest
from client import (
    AC,
    ANC,
    API_VERSION,
    MSGPACK,
    AdminClient,
    AnonymousClient,
    AuthenticatedClient,
    Org,
    build_user_certs,
    now,
)

BOOT = ANC.organization_bootstrap
SC = p.anonymous_server_cmds.latest.server_config


def test_server_config(http: httpx.Client) -> None:
    r = http.post(
        "/anonymous_server",
        content=SC.Req().dump(),
        headers={"Api-Version": API_VERSION, "Content-Type": MSGPACK},
    )
    assert r.status_code == 200
    rep = SC.Rep.load(r.content)
    assert isinstance(rep, SC.RepOk), rep
    # scripts/compat.sh runs both servers with --account-config ENABLED_WITH_VAULT
    assert rep.account == SC.AccountConfig.ENABLED_WITH_VAULT
    assert rep.organization_bootstrap == SC.OrganizationBootstrapConfig.WITH_BOOTSTRAP_TOKEN
    assert isinstance(rep.openbao, SC.OpenBaoConfigDisabled)
    assert isinstance(rep.cryptpad, SC.CryptPadConfigDisabled)
    assert rep.advisory_device_file_protection == []


# --- sequestered organization ---------------------------------------------------------------------


def _sequester_authority(root: p.SigningKey, ts: p.DateTime) -> bytes:
    _signing, verify = p.SequesterSigningKeyDer.generate_pair(1024)
    return p.SequesterAuthorityCertificate(timestamp=ts, verify_key_der=verify).dump_and_sign(root)


def _bootstrap(
    http: httpx.Client,
    org_id: str,
    token: p.AccessToken | None,
    root: p.SigningKey,
    ts: p.DateTime | None = None,
    authority: bytes | None = None,
) -> tuple[object, object]:
    certs = build_user_certs(
        org_id, None, root, name="alice", profile=p.UserProfile.ADMIN, timestamp=ts
    )
    req = BOOT.Req(
        bootstrap_token=token,
        root_verify_key=root.verify_key,
        user_certificate=certs.user_certificate,
        device_certificate=certs.device_certificate,
        redacted_user_certificate=certs.redacted_user_certificate,
        redacted_device_certificate=certs.redacted_device_certificate,
        sequester_authority_certificate=authority,
    )
    return AnonymousClient(http, org_id).send(req), certs


def test_bootstrap_sequestered_organization(http: httpx.Client, admin: AdminClient) -> None:
    org_id, token = admin.create_org()
    root = p.SigningKey.generate()
    ts = now()
    authority = _sequester_authority(root, ts)
    rep, certs = _bootstrap(http, org_id, token, root, ts, authority)
    assert isinstance(rep, BOOT.RepOk), rep
    alice = AuthenticatedClient(http, certs.device)  # type: ignore[attr-defined]
    got = alice.certificates()
    assert got.sequester_certificates == [authority]
    cert = p.SequesterAuthorityCertificate.verify_and_load(
        got.sequester_certificates[0], root.verify_key
    )
    assert cert.timestamp == ts
    assert alice.certificates(sequester_after=ts).sequester_certificates == []
    assert alice.certificates(common_after=ts).common_certificates == []


def test_bootstrap_sequester_authority_timestamp_mismatch(
    http: httpx.Client, admin: AdminClient
) -> None:
    org_id, token = admin.create_org()
    root = p.SigningKey.generate()
    ts = now()
    rep, _ = _bootstrap(
        http, org_id, token, root, ts, _sequester_authority(root, ts.add(seconds=1))
    )
    assert isinstance(rep, BOOT.RepInvalidCertificate), rep


def test_bootstrap_sequester_authority_bad_signature(
    http: httpx.Client, admin: AdminClient
) -> None:
    org_id, token = admin.create_org()
    root = p.SigningKey.generate()
    ts = now()
    rep, _ = _bootstrap(
        http, org_id, token, root, ts, _sequester_authority(p.SigningKey.generate(), ts)
    )
    assert isinstance(rep, BOOT.RepInvalidCertificate), rep
    rep, _ = _bootstrap(http, org_id, token, root, ts, b"garbage")
    assert isinstance(rep, BOOT.RepInvalidCertificate), rep
    rep, _ = _bootstrap(http, org_id, token, root)
    assert isinstance(rep, BOOT.RepOk), rep


def test_bootstrap_sequester_authority_out_of_ballpark(
    http: httpx.Client, admin: AdminClient
) -> None:
    org_id, token = admin.create_org()
    root = p.SigningKey.generate()
    old = now().subtract(seconds=3600)
    rep, _ = _bootstrap(http, org_id, token, root, now(), _sequester_authority(root, old))
    assert isinstance(rep, BOOT.RepTimestampOutOfBallpark), rep
    assert rep.client_timestamp == old


def test_concurrent_bootstraps(http: httpx.Client, admin: AdminClient) -> None:
    org_id, token = admin.create_org()

    def attempt(_: int) -> object:
        return _bootstrap(http, org_id, token, p.SigningKey.generate())[0]

    with ThreadPoolExecutor(4) as pool:
        reps = list(pool.map(attempt, range(4)))
    assert sum(isinstance(r, BOOT.RepOk) for r in reps) == 1, reps
    assert all(isinstance(r, BOOT.RepOk | BOOT.RepOrganizationAlreadyBootstrapped) for r in reps), (
        reps
    )


# --- administration ---------------------------------------------------------------------------


def test_recreate_resets_expiry(admin: AdminClient, http: httpx.Client) -> None:
    org_id, _ = admin.create_org()
    admin.patch_org(org_id, is_expired=True)
    _, token = admin.create_org(org_id)
    assert admin.get_org(org_id)["is_expired"] is False
    rep, _ = _bootstrap(http, org_id, token, p.SigningKey.generate())
    assert isinstance(rep, BOOT.RepOk), rep


def test_patch_not_bootstrapped_organization(admin: AdminClient) -> None:
    org_id, _ = admin.create_org()
    admin.patch_org(org_id, active_users_limit=4, user_profile_outsider_allowed=False)
    info = admin.get_org(org_id)
    assert (
        info["active_users_limit"],
        info["user_profile_outsider_allowed"],
        info["is_bootstrapped"],
    ) == (
        4,
        False,
        False,
    )


def test_freeze_by_email_ignores_revoked_users(admin: AdminClient, org: Org) -> None:
    alice = org.alice
    old_bob = alice.create_user("bob")
    assert isinstance(alice.revoke(old_bob.user_id), AC.user_revoke.RepOk)
    path = f"/organizations/{org.organization_id}/users/freeze"
    r = admin.request("POST", path, json={"user_email": "bob@example.com", "frozen": True})
    assert (r.status_code, r.json()) == (404, {"detail": "User not found"})
    new_bob = alice.create_user("bob")  # the email is free again
    r = admin.request("POST", path, json={"user_email": "bob@example.com", "frozen": True})
    assert r.status_code == 200
    assert r.json()["user_id"] == new_bob.user_id.hex


def test_frozen_users_listed_in_creation_order(admin: AdminClient, org: Org) -> None:
    alice = org.alice
    users = [alice.create_user(name) for name in ("bob", "carol", "dave")]
    for u in reversed(users):
        admin.freeze(org.organization_id, u.user_id)
    rep = alice.send(AC.list_frozen_users.Req())
    assert rep.frozen_users == [u.user_id for u in users]


def test_organization_info_fresh(alice: AuthenticatedClient) -> None:
    rep = alice.send(AC.organization_info.Req())
    assert isinstance(rep, AC.organization_info.RepOk), rep
    assert (rep.total_metadata_bytes, rep.total_block_bytes) == (0, 0)


@pytest.mark.parametrize("limit", [0, 1])
def test_active_users_limit_at_or_below_current(
    http: httpx.Client, admin: AdminClient, limit: int
) -> None:
    org_id, token = admin.create_org(active_users_limit=limit)
    # the limit only applies to user_create, not to bootstrap
    rep, certs = _bootstrap(http, org_id, token, p.SigningKey.generate())
    assert isinstance(rep, BOOT.RepOk), rep
    alice = AuthenticatedClient(http, certs.device)  # type: ignore[attr-defined]
    certs2 = build_user_certs(org_id, alice.device, alice.device.signing_key, name="bob")
    from client import user_create_req

    rep = alice.send(user_create_req(certs2))
    assert isinstance(rep, AC.user_create.RepActiveUsersLimitReached), rep
