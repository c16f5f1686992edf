"""Client side of the hand-back tests, run with the official client library (`.venv-compat`
python, parsec-cloud 3.9.3), never collected by pytest (no `test_` prefix):

    python handback_driver.py fill  SERVER_URL ADMIN_TOKEN STATE.json
    python handback_driver.py check SERVER_URL ADMIN_TOKEN STATE.json
    python handback_driver.py record SERVER_URL ADMIN_TOKEN STATE.json

`fill` writes representative data through a server (ours) by real requests and records what
every device has seen (certificates, vlob versions, blocks, checkpoints, pending invitation
tokens, statuses) in STATE.json. `check` replays the same reads against another server (the
official one, on the handed-back database) and fails (exit 1, one line per difference) on any
difference; then it writes on it (a new vlob version, a block, a user) to prove the official
server can continue. `record` re-reads what every device sees now (after such writes) into
STATE.json, keeping the devices' old checkpoint and timestamps (the round trip: the state seen on
ours before handing back).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import parsec._parsec as p

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "compat"))

import client as _client
from client import (
    AC,
    IC,
    AdminClient,
    AuthenticatedClient,
    Device,
    InvitedClient,
    RpcError,
    bootstrap_org,
    now,
)
from data_plane import archive, block_create, rename, vlob_create, vlob_update


def _send(self: Any, req: Any, suffix: str = "") -> Any:
    """The compat client's send, accepting any 5.x reply version (ours may answer 5.6)."""
    r = self.post(req.dump(), suffix=suffix)
    if r.status_code != 200:
        raise RpcError(r)
    assert r.headers.get("api-version", "").startswith("5."), r.headers
    return _client.load_rep(req, r.content)


_client._RpcClient.send = _send  # type: ignore[method-assign]

VLOBS = 40  # per realm, 3 versions each (~120 versions), plus late writes
BLOCKS = 6


def dump_device(d: Device) -> dict[str, str]:
    return {
        "organization_id": d.organization_id,
        "user_id": d.user_id.hex,
        "device_id": d.device_id.hex,
        "signing_key": d.signing_key.encode().hex(),
        "private_key": d.private_key.encode().hex(),
        "email": d.human_handle.email.str,
        "label": d.human_handle.label,
        "device_label": d.device_label.str,
        "profile": d.profile.str,
    }


def load_device(x: dict[str, str]) -> Device:
    return Device(
        organization_id=x["organization_id"],
        user_id=p.UserID.from_hex(x["user_id"]),
        device_id=p.DeviceID.from_hex(x["device_id"]),
        signing_key=p.SigningKey(bytes.fromhex(x["signing_key"])),
        private_key=p.PrivateKey(bytes.fromhex(x["private_key"])),
        human_handle=p.HumanHandle(p.EmailAddress(x["email"]), x["label"]),
        device_label=p.DeviceLabel(x["device_label"]),
        profile=p.UserProfile.from_str(x["profile"]),
    )


def ok(rep: Any, cls: Any) -> Any:
    assert isinstance(rep, cls), rep
    return rep


def seen_certificates(c: AuthenticatedClient) -> dict[str, Any]:
    rep = c.certificates()
    return {
        "common": [x.hex() for x in rep.common_certificates],
        "sequester": [x.hex() for x in rep.sequester_certificates],
        "shamir": [x.hex() for x in rep.shamir_recovery_certificates],
        "realms": {r.hex: [x.hex() for x in certs] for r, certs in rep.realm_certificates.items()},
    }


def read_realm(c: AuthenticatedClient, realm: p.VlobID, vlobs: list[p.VlobID]) -> dict[str, Any]:
    items = ok(
        c.send(AC.vlob_read_batch.Req(realm_id=realm, vlobs=vlobs, at=None)),
        AC.vlob_read_batch.RepOk,
    ).items
    latest = {
        i[0].hex: [i[1], i[2].hex, i[3], i[4].as_timestamp_micros(), i[5].hex()] for i in items
    }
    versions = {}
    for v in vlobs:
        n = latest[v.hex][2]
        rep = ok(
            c.send(
                AC.vlob_read_versions.Req(realm_id=realm, items=[(v, k) for k in range(1, n + 1)])
            ),
            AC.vlob_read_versions.RepOk,
        )
        versions[v.hex] = [[i[3], i[5].hex()] for i in rep.items]
    return {"latest": latest, "versions": versions}


def status_of(c: AuthenticatedClient) -> str:
    try:
        rep = c.ping()
    except RpcError as exc:
        return f"http {exc.response.status_code}"
    return type(rep).__name__


def fill(http: httpx.Client, admin: AdminClient) -> dict[str, Any]:
    org = bootstrap_org(http, admin)
    alice = org.alice
    alice2 = alice.create_device("alice-laptop")
    bob = alice.create_user("bob", p.UserProfile.STANDARD)
    mallory = alice.create_user("mallory", p.UserProfile.OUTSIDER)
    carol = alice.create_user("carol", p.UserProfile.STANDARD)
    dave = alice.create_user("dave", p.UserProfile.STANDARD)
    ok(alice.update_profile(bob.user_id, p.UserProfile.ADMIN), AC.user_update.RepOk)
    ok(alice.revoke(carol.user_id), AC.user_revoke.RepOk)
    admin.freeze(org.organization_id, dave.user_id)
    # shamir: bob's recovery shared with alice
    from_shamir = shamir_setup(bob, [alice])

    realm = alice.new_realm()
    ok(rename(alice, realm, initial=True, name=b"encrypted-name"), AC.realm_rename.RepOk)
    ok(alice.share(realm, bob.user_id, p.RealmRole.CONTRIBUTOR), AC.realm_share.RepOk)
    ok(alice.share(realm, mallory.user_id, p.RealmRole.READER), AC.realm_share.RepOk)
    ok(
        alice.rotate_key(realm, 2, [alice.user_id, bob.user_id, mallory.user_id]),
        AC.realm_rotate_key.RepOk,
    )
    ok(alice.share(realm, mallory.user_id, None), AC.realm_unshare.RepOk)
    archived = alice.new_realm()
    ok(
        archive(alice, archived, p.RealmArchivingConfiguration.ARCHIVED),
        AC.realm_update_archiving.RepOk,
    )

    vlobs = [p.VlobID.new() for _ in range(VLOBS)]
    for i, v in enumerate(vlobs):
        writer = alice if i % 2 else bob
        ok(vlob_create(writer, realm, v, blob=b"v1-" + v.bytes, key_index=2), AC.vlob_create.RepOk)
        for version in (2, 3):
            ok(
                vlob_update(
                    alice2, realm, v, version, blob=b"v%d-" % version + v.bytes, key_index=2
                ),
                AC.vlob_update.RepOk,
            )
    checkpoint = ok(
        bob.send(AC.vlob_poll_changes.Req(realm_id=realm, last_checkpoint=0)),
        AC.vlob_poll_changes.RepOk,
    ).current_checkpoint
    bob_certs_then = seen_certificates(bob)
    # written after bob's last sync: what his old checkpoint must return
    late = vlobs[:5]
    for v in late:
        ok(
            vlob_update(alice, realm, v, 4, blob=b"late-" + v.bytes, key_index=2),
            AC.vlob_update.RepOk,
        )
    ok(rename(alice, realm, key_index=2, name=b"renamed"), AC.realm_rename.RepOk)
    changes = ok(
        bob.send(AC.vlob_poll_changes.Req(realm_id=realm, last_checkpoint=checkpoint)),
        AC.vlob_poll_changes.RepOk,
    )

    blocks = {}
    for i in range(BLOCKS):
        bid = p.BlockID.new()
        data = bytes([i]) * (100 + i) + bid.bytes
        ok(block_create(bob, realm, data, block_id=bid, key_index=2), AC.block_create.RepOk)
        blocks[bid.hex] = data.hex()

    user_token = ok(
        alice.send(
            AC.invite_new_user.Req(
                claimer_email=p.EmailAddress("zack@example.com"), send_email=False
            )
        ),
        AC.invite_new_user.RepOk,
    ).token
    device_token = ok(
        bob.send(AC.invite_new_device.Req(send_email=False)), AC.invite_new_device.RepOk
    ).token

    # a second organization, expired
    other = bootstrap_org(http, admin)
    other_realm = other.alice.new_realm()
    ok(vlob_create(other.alice, other_realm, blob=b"other"), AC.vlob_create.RepOk)
    admin.patch_org(other.organization_id, is_expired=True)

    devices = {
        "alice": alice,
        "alice2": alice2,
        "bob": bob,
        "mallory": mallory,
        "carol": carol,
        "dave": dave,
    }
    state: dict[str, Any] = {
        "organization_id": org.organization_id,
        "devices": {k: dump_device(c.device) for k, c in devices.items()},
        "other_device": dump_device(other.alice.device),
        "status": {k: status_of(c) for k, c in devices.items()},
        "other_status": status_of(other.alice),
        "certificates": {
            k: seen_certificates(c) for k, c in devices.items() if k in ("alice", "bob", "mallory")
        },
        "bob_certs_then": bob_certs_then,
        "realm": realm.hex,
        "archived_realm": archived.hex,
        "vlobs": [v.hex for v in vlobs],
        "read": read_realm(bob, realm, vlobs),
        "checkpoint": checkpoint,
        "changes_since": [[v.hex, n] for v, n in changes.changes],
        "current_checkpoint": changes.current_checkpoint,
        "blocks": blocks,
        "user_token": user_token.hex,
        "device_token": device_token.hex,
        "invite_info": {
            "user": repr(
                InvitedClient(http, org.organization_id, user_token).send(IC.invite_info.Req())
            ),
            "device": repr(
                InvitedClient(http, org.organization_id, device_token).send(IC.invite_info.Req())
            ),
        },
        "shamir": from_shamir,
    }
    return state


def shamir_setup(
    author: AuthenticatedClient, recipients: list[AuthenticatedClient]
) -> dict[str, Any]:
    ts = now()
    brief = author.sign(
        p.ShamirRecoveryBriefCertificate(
            author=author.device_id,
            user_id=author.user_id,
            timestamp=ts,
            threshold=1,
            per_recipient_shares={r.user_id: 1 for r in recipients},
        )
    )
    shares = [
        author.sign(
            p.ShamirRecoveryShareCertificate(
                author=author.device_id,
                user_id=author.user_id,
                timestamp=ts,
                recipient=r.user_id,
                ciphered_share=b"share-for-" + r.user_id.bytes,
            )
        )
        for r in recipients
    ]
    token = p.AccessToken.new()
    ok(
        author.send(
            AC.shamir_recovery_setup.Req(
                ciphered_data=b"ciphered-device-keys",
                reveal_token=token,
                shamir_recovery_brief_certificate=brief,
                shamir_recovery_share_certificates=shares,
            )
        ),
        AC.shamir_recovery_setup.RepOk,
    )
    return {"reveal_token": token.hex}


def check(http: httpx.Client, admin: AdminClient, state: dict[str, Any]) -> list[str]:
    problems: list[str] = []

    def expect(what: str, got: Any, wanted: Any) -> None:
        if got != wanted:
            problems.append(f"{what}: got {str(got)[:300]} wanted {str(wanted)[:300]}")

    devices = {k: AuthenticatedClient(http, load_device(v)) for k, v in state["devices"].items()}
    other = AuthenticatedClient(http, load_device(state["other_device"]))
    for k, c in devices.items():
        expect(f"authentication of {k}", status_of(c), state["status"][k])
    expect("expired organization", status_of(other), state["other_status"])
    for k, seen in state["certificates"].items():
        expect(f"certificate_get of {k}", seen_certificates(devices[k]), seen)
    bob = devices["bob"]
    # bob's last timestamps: only what he has not seen
    then = state["bob_certs_then"]
    realm = p.VlobID.from_hex(state["realm"])
    realm_then = then["realms"][state["realm"]]
    after = certificate_timestamp(bytes.fromhex(realm_then[-1]))
    rep = bob.certificates(realm_after={realm: after})
    now_seen = state["certificates"]["bob"]["realms"][state["realm"]]
    expect(
        "certificate_get after bob's last realm timestamp",
        [x.hex() for x in rep.realm_certificates.get(realm, [])],
        now_seen[len(realm_then) :],
    )
    vlobs = [p.VlobID.from_hex(v) for v in state["vlobs"]]
    expect("vlob reads", read_realm(bob, realm, vlobs), state["read"])
    rep = bob.send(AC.vlob_poll_changes.Req(realm_id=realm, last_checkpoint=state["checkpoint"]))
    expect(
        "vlob_poll_changes from bob's old checkpoint",
        ([[v.hex, n] for v, n in rep.changes], rep.current_checkpoint),
        (state["changes_since"], state["current_checkpoint"]),
    )
    for bid, data in state["blocks"].items():
        rep = bob.send(AC.block_read.Req(block_id=p.BlockID.from_hex(bid), realm_id=realm))
        expect(f"block {bid}", getattr(rep, "block", rep), bytes.fromhex(data))
    org_id = state["organization_id"]
    for kind in ("user", "device"):
        token = p.AccessToken.from_hex(state[f"{kind}_token"])
        got = repr(InvitedClient(http, org_id, token).send(IC.invite_info.Req()))
        expect(f"pending {kind} invitation", got, state["invite_info"][kind])
    # the official server continues from here: new version, new vlob, block, user, realm
    v = vlobs[0]
    latest = state["read"]["latest"][v.hex][2]
    expect(
        "vlob_update on the official server",
        type(vlob_update(bob, realm, v, latest + 1, blob=b"after", key_index=2)).__name__,
        "RepOk",
    )
    expect(
        "vlob_create on the official server",
        type(vlob_create(bob, realm, blob=b"new", key_index=2)).__name__,
        "RepOk",
    )
    expect(
        "block_create on the official server",
        type(block_create(bob, realm, b"new-block", key_index=2)).__name__,
        "RepOk",
    )
    alice = devices["alice"]
    try:
        alice.create_user(f"erin{p.UserID.new().hex[:8]}", p.UserProfile.STANDARD)
        alice.new_realm()
    except AssertionError as exc:
        problems.append(f"writes on the official server: {exc}")
    return problems


def record(http: httpx.Client, state: dict[str, Any]) -> dict[str, Any]:
    """What every device sees now (after writes made since `fill`), keeping the old checkpoint
    and last timestamps of `fill` as the devices' local state."""
    devices = {k: AuthenticatedClient(http, load_device(v)) for k, v in state["devices"].items()}
    bob = devices["bob"]
    realm = p.VlobID.from_hex(state["realm"])
    vlobs = [p.VlobID.from_hex(v) for v in state["vlobs"]]
    changes = ok(
        bob.send(AC.vlob_poll_changes.Req(realm_id=realm, last_checkpoint=state["checkpoint"])),
        AC.vlob_poll_changes.RepOk,
    )
    org_id = state["organization_id"]
    state.update(
        status={k: status_of(c) for k, c in devices.items()},
        other_status=status_of(AuthenticatedClient(http, load_device(state["other_device"]))),
        certificates={k: seen_certificates(devices[k]) for k in state["certificates"]},
        read=read_realm(bob, realm, vlobs),
        changes_since=[[v.hex, n] for v, n in changes.changes],
        current_checkpoint=changes.current_checkpoint,
        invite_info={
            kind: repr(
                InvitedClient(http, org_id, p.AccessToken.from_hex(state[f"{kind}_token"])).send(
                    IC.invite_info.Req()
                )
            )
            for kind in ("user", "device")
        },
    )
    return state


def certificate_timestamp(raw: bytes) -> p.DateTime:
    for cls in (
        p.RealmRoleCertificate,
        p.RealmNameCertificate,
        p.RealmKeyRotationCertificate,
        p.RealmArchivingCertificate,
    ):
        try:
            return cls.unsecure_load(raw).timestamp
        except Exception:
            continue
    raise AssertionError("not a realm certificate")


def main() -> int:
    action, url, token, state_path = sys.argv[1:5]
    with httpx.Client(base_url=url.rstrip("/"), timeout=30.0) as http:
        admin = AdminClient(http, token)
        if action == "fill":
            Path(state_path).write_text(json.dumps(fill(http, admin)))
            return 0
        if action == "record":
            state = json.loads(Path(state_path).read_text())
            Path(state_path).write_text(json.dumps(record(http, state)))
            return 0
        problems = check(http, admin, json.loads(Path(state_path).read_text()))
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
