"""Client side of the adoption round trip, run with the official client library (`.venv-compat`
python, parsec-cloud 3.9.3), never collected by pytest (no `test_` prefix):

    python adoption_driver.py fill   SERVER_URL ADMIN_TOKEN STATE.json  # on the official server
    python adoption_driver.py status SERVER_URL ADMIN_TOKEN STATE.json  # official, restarted
    python adoption_driver.py check  SERVER_URL ADMIN_TOKEN STATE.json  # on ours, after adoption

The main organization's data and checks are those of the hand-back's driver (handback_driver.py:
every profile, revoked and frozen users, a second device, profile update, shares/unshare, key
rotations, renames, an archived realm, shamir, pending user and device invitations, an expired
organization, what every device saw), with 350 vlobs of 3 versions (1,050+ versions). Added here:
a sequestered organization (authority certificate at bootstrap, a storage sequester service created
through the administration API), an organization with terms of service, accepted by one user
and not by another, and the last event id a device received on the official event stream. The
check also claims the pending user invitation on ours with its token (whole greeting), and
reconnects the event stream with the official Last-Event-ID (ours answers `missed_events`, the
client resyncs).

`status` records again how the server answers each device: the official server caches an
organization's state per process, so an organization expired by the administration API still
answers its devices until the server restarts; a restarted official server (and ours) refuses
them (460), which is what the check then expects.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import parsec._parsec as p

sys.path.insert(0, str(Path(__file__).resolve().parent))

import handback_driver as base
from client import AC, ANC, IC, AnonymousClient, InvitedClient, build_user_certs, user_create_req
from test_inv_greeting import Greeting, start_claimer, start_greeter

base.VLOBS = 350
base.BLOCKS = 16  # RAID0 over two nodes: blocks on both
TOS = p.tos_cmds.latest
TOS_URLS = {"en_US": "https://example.com/tos_en", "fr_FR": "https://example.com/tos_fr"}


def _sequestered(http: httpx.Client, admin: base.AdminClient) -> dict[str, Any]:
    org_id, token = admin.create_org()
    root = p.SigningKey.generate()
    ts = base.now()
    authority_signing, authority_verify = p.SequesterSigningKeyDer.generate_pair(1024)
    authority = p.SequesterAuthorityCertificate(
        timestamp=ts, verify_key_der=authority_verify
    ).dump_and_sign(root)
    certs = build_user_certs(
        org_id, None, root, name="alice", profile=p.UserProfile.ADMIN, timestamp=ts
    )
    rep = AnonymousClient(http, org_id).send(
        ANC.organization_bootstrap.Req(
            bootstrap_token=token,
            root_verify_key=root.verify_key,
            user_certificate=certs.user_certificate,
            device_certificate=certs.device_certificate,
            redacted_user_certificate=certs.redacted_user_certificate,
            redacted_device_certificate=certs.redacted_device_certificate,
            sequester_authority_certificate=authority,
        )
    )
    assert isinstance(rep, ANC.organization_bootstrap.RepOk), rep
    _private, public = p.SequesterPrivateKeyDer.generate_pair(1024)
    service = p.SequesterServiceCertificate(
        timestamp=base.now(),
        service_id=p.SequesterServiceID.new(),
        service_label="Archives",
        encryption_key_der=public,
    )
    signed = authority_signing.sign(service.dump())
    r = admin.request(
        "POST",
        f"/organizations/{org_id}/sequester/services",
        json={
            "service_certificate": base64.b64encode(signed).decode(),
            "config": {"type": "storage"},
        },
    )
    assert r.status_code == 200, (r.status_code, r.text)
    alice = base.AuthenticatedClient(http, certs.device)
    return {
        "device": base.dump_device(certs.device),
        "certificates": base.seen_certificates(alice),
        "encryption_key_der": public.dump().hex(),
    }


def _with_tos(http: httpx.Client, admin: base.AdminClient) -> dict[str, Any]:
    org = base.bootstrap_org(http, admin)
    alice = org.alice
    bob = alice.create_user("bob", p.UserProfile.STANDARD)
    admin.patch_org(org.organization_id, tos=TOS_URLS)
    rep = alice.tos(TOS.tos_get.Req())
    assert isinstance(rep, TOS.tos_get.RepOk), rep
    assert isinstance(
        alice.tos(TOS.tos_accept.Req(tos_updated_on=rep.updated_on)), TOS.tos_accept.RepOk
    )
    return {
        "devices": {"alice": base.dump_device(alice.device), "bob": base.dump_device(bob.device)},
        "updated_on": rep.updated_on.to_rfc3339(),
    }


def _sse(http: httpx.Client, admin: base.AdminClient) -> dict[str, Any]:
    """bob listens to the event stream while alice shares a realm with him: the last event id he
    saw from the official server is what his client sends (Last-Event-ID) when it reconnects."""
    org = base.bootstrap_org(http, admin)
    bob = org.alice.create_user("bob", p.UserProfile.STANDARD)
    with bob.events() as stream:
        stream.next_data()  # the organization config (no id)
        realm = org.alice.new_realm()
        base.ok(org.alice.share(realm, bob.user_id, p.RealmRole.READER), AC.realm_share.RepOk)
        event = stream.next_data()
        assert event.id, event.fields
    return {"device": base.dump_device(bob.device), "last_event_id": event.id}


_COMMON = (
    "UserCertificate",
    "DeviceCertificate",
    "RevokedUserCertificate",
    "UserUpdateCertificate",
)
_SHAMIR = (
    "ShamirRecoveryBriefCertificate",
    "ShamirRecoveryShareCertificate",
    "ShamirRecoveryDeletionCertificate",
)


def _timestamp(raw_hex: str, kinds: tuple[str, ...]) -> p.DateTime:
    raw = bytes.fromhex(raw_hex)
    for kind in kinds:
        try:
            return getattr(p, kind).unsecure_load(raw).timestamp
        except Exception:
            continue
    raise AssertionError(f"no {kinds} certificate")


def _check_after(http: httpx.Client, state: dict[str, Any]) -> list[str]:
    """certificate_get from a device's last timestamps (common, shamir, sequester topics): exactly
    the certificates it had not seen (the check's own writes may follow them)."""
    problems: list[str] = []
    bob = base.AuthenticatedClient(http, base.load_device(state["devices"]["bob"]))
    seen = state["certificates"]["bob"]
    for topic, kinds, arg, field in (
        ("common", _COMMON, "common_after", "common_certificates"),
        ("shamir", _SHAMIR, "shamir_recovery_after", "shamir_recovery_certificates"),
    ):
        full = seen[topic]
        stamps = [_timestamp(c, kinds) for c in full]
        # from before the first one (all), from a timestamp in the middle, from the last (none)
        cuts = [(stamps[0].subtract(microseconds=1), 0)]
        cuts += [(stamps[k - 1], k) for k in range(1, len(full)) if stamps[k - 1] < stamps[k]][:1]
        cuts += [(stamps[-1], len(full))]
        for after, k in cuts:
            got = [c.hex() for c in getattr(bob.certificates(**{arg: after}), field)]
            if got[: len(full) - k] != full[k:]:
                problems.append(f"certificate_get {arg} of bob from #{k}: got {len(got)} certs")
    seq = state["sequestered"]
    alice = base.AuthenticatedClient(http, base.load_device(seq["device"]))
    _authority, *services = seq["certificates"]["sequester"]
    # the authority certificate's timestamp is the bootstrap user's (the bootstrap checks it)
    after = _timestamp(seq["certificates"]["common"][0], _COMMON)
    got = [c.hex() for c in alice.certificates(sequester_after=after).sequester_certificates]
    if got != services or not services:
        problems.append(f"certificate_get sequester_after: got {got}, wanted {services}")
    return problems


def _check_sse(http: httpx.Client, state: dict[str, Any]) -> list[str]:
    """On ours, that id is unknown: the stream says `missed_events` (the client then resyncs by
    polling), as the official server does for an id it no longer has."""
    bob = base.AuthenticatedClient(http, base.load_device(state["sse"]["device"]))
    with bob.events(**{"Last-Event-ID": state["sse"]["last_event_id"]}) as stream:
        if stream.response.status_code != 200:
            return [f"event stream with Last-Event-ID: http {stream.response.status_code}"]
        stream.next_data()  # the organization config
        event = stream.next_data()
    if event.event != "missed_events":
        return [f"event stream with an official Last-Event-ID: {event.fields}"]
    return []


def _greeting_started(http: httpx.Client, state: dict[str, Any]) -> dict[str, Any]:
    """A greeting of the pending device invitation in progress at the switch: both sides joined
    the attempt, bob (greeter) posted step 0, the claimer has not answered yet."""
    token = p.AccessToken.from_hex(state["device_token"])
    bob = base.AuthenticatedClient(http, base.load_device(state["devices"]["bob"]))
    claimer = InvitedClient(http, state["organization_id"], token)
    attempt = start_greeter(bob, token)
    assert start_claimer(claimer, bob.user_id) == attempt
    key = p.PrivateKey.generate()
    step = AC.invite_greeter_step.GreeterStepNumber0WaitPeer(public_key=key.public_key)
    rep = bob.send(AC.invite_greeter_step.Req(greeting_attempt=attempt, greeter_step=step))
    assert isinstance(rep, AC.invite_greeter_step.RepNotReady), rep
    return {"attempt": attempt.hex, "greeter_key": key.public_key.encode().hex()}


def _check_greeting_continues(http: httpx.Client, state: dict[str, Any]) -> list[str]:
    """On ours, the claimer answers step 0 of the same attempt and gets bob's step 0, and bob then
    gets the claimer's: the greeting goes on across the switch."""
    g = state["greeting"]
    attempt = p.GreetingAttemptID.from_hex(g["attempt"])
    token = p.AccessToken.from_hex(state["device_token"])
    claimer = InvitedClient(http, state["organization_id"], token)
    bob = base.AuthenticatedClient(http, base.load_device(state["devices"]["bob"]))
    key = p.PrivateKey.generate()
    c_step = IC.invite_claimer_step.ClaimerStepNumber0WaitPeer(public_key=key.public_key)
    rep = claimer.send(IC.invite_claimer_step.Req(greeting_attempt=attempt, claimer_step=c_step))
    if not isinstance(rep, IC.invite_claimer_step.RepOk):
        return [f"greeting in progress: claimer step 0 on ours: {rep}"]
    if rep.greeter_step.public_key.encode().hex() != g["greeter_key"]:
        return ["greeting in progress: the claimer got another greeter step 0"]
    g_step = AC.invite_greeter_step.GreeterStepNumber0WaitPeer(
        public_key=p.PublicKey(bytes.fromhex(g["greeter_key"]))
    )
    rep = bob.send(AC.invite_greeter_step.Req(greeting_attempt=attempt, greeter_step=g_step))
    if not isinstance(rep, AC.invite_greeter_step.RepOk):
        return [f"greeting in progress: greeter step 0 on ours: {rep}"]
    if rep.claimer_step.public_key.encode() != key.public_key.encode():
        return ["greeting in progress: the greeter got another claimer step 0"]
    return []


def _status(http: httpx.Client, dev: dict[str, str]) -> str:
    return base.status_of(base.AuthenticatedClient(http, base.load_device(dev)))


def _record_status(http: httpx.Client, state: dict[str, Any]) -> None:
    state["status"] = {k: _status(http, v) for k, v in state["devices"].items()}
    state["other_status"] = _status(http, state["other_device"])
    state["tos"]["status"] = {k: _status(http, v) for k, v in state["tos"]["devices"].items()}


def _check_extra(http: httpx.Client, state: dict[str, Any]) -> list[str]:
    problems: list[str] = []

    def expect(what: str, got: Any, wanted: Any) -> None:
        if got != wanted:
            problems.append(f"{what}: got {str(got)[:300]} wanted {str(wanted)[:300]}")

    seq = state["sequestered"]
    alice = base.AuthenticatedClient(http, base.load_device(seq["device"]))
    expect(
        "sequestered organization: certificate_get",
        base.seen_certificates(alice),
        seq["certificates"],
    )
    tos = state["tos"]
    for k, v in tos["devices"].items():
        expect(f"terms of service: status of {k}", _status(http, v), tos["status"][k])
    bob = base.AuthenticatedClient(http, base.load_device(tos["devices"]["bob"]))
    rep = bob.tos(TOS.tos_get.Req())
    expect(
        "terms of service: tos_get",
        (rep.per_locale_urls, rep.updated_on.to_rfc3339())
        if isinstance(rep, TOS.tos_get.RepOk)
        else rep,
        (TOS_URLS, tos["updated_on"]),
    )
    return problems


def _claim_pending_user_invitation(http: httpx.Client, state: dict[str, Any]) -> list[str]:
    """The user invitation created on the official server (zack@example.com), claimed on ours with
    the same token: the whole greeting (steps 0-8), user_create, invite_complete, zack signs in."""
    org_id = state["organization_id"]
    alice = base.AuthenticatedClient(http, base.load_device(state["devices"]["alice"]))
    token = p.AccessToken.from_hex(state["user_token"])
    claimer = InvitedClient(http, org_id, token)
    try:
        greeting = Greeting.start(alice, claimer, claimer_first=True)
        got, _ = greeting.run(b"zack's public keys", b"welcome")
        if got != b"zack's public keys":
            return [f"pending invitation: the greeter decrypted {got!r}"]
        certs = build_user_certs(
            org_id,
            alice.device,
            alice.device.signing_key,
            name="zack",
            profile=p.UserProfile.STANDARD,
        )
        rep = alice.send(user_create_req(certs))
        if not isinstance(rep, AC.user_create.RepOk):
            return [f"pending invitation: user_create {rep}"]
        rep = alice.send(AC.invite_complete.Req(token=token))
        if not isinstance(rep, AC.invite_complete.RepOk):
            return [f"pending invitation: invite_complete {rep}"]
        new = base.AuthenticatedClient(http, certs.device)
        if base.status_of(new) != "RepOk":
            return [f"pending invitation: the new user signs in: {base.status_of(new)}"]
    except (AssertionError, base.RpcError) as exc:
        return [f"pending invitation not claimable on ours: {exc!r}"[:500]]
    return []


def main() -> int:
    action, url, token, state_path = sys.argv[1:5]
    path = Path(state_path)
    with httpx.Client(base_url=url.rstrip("/"), timeout=60.0) as http:
        admin = base.AdminClient(http, token)
        if action == "fill":
            state: dict[str, Any] = base.fill(http, admin)
            state["sequestered"] = _sequestered(http, admin)
            state["tos"] = _with_tos(http, admin)
            state["sse"] = _sse(http, admin)
            state["greeting"] = _greeting_started(http, state)
            path.write_text(json.dumps(state))
            return 0
        state = json.loads(path.read_text())
        if action == "status":
            _record_status(http, state)
            path.write_text(json.dumps(state))
            return 0
        problems = base.check(http, admin, state) + _check_extra(http, state)
        problems += _claim_pending_user_invitation(http, state)
        problems += _check_sse(http, state)
        problems += _check_after(http, state)
        problems += _check_greeting_continues(http, state)
        for problem in problems:
            print(problem)
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
