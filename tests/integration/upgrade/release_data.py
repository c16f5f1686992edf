"""The representative data of a schema release: what its fixture holds and how to check it is
served.

`Dataset(N)` describes the data release N wrote (fixtures/release_NNNN.sql). Ids and device keys are
derived from the release number, so the tests know them without reading the fixture:

* organization `ReleaseNNNN` (bootstrapped, terms of service set): alice ADMIN (bootstrap), bob
  STANDARD then promoted ADMIN, with a second device, carol OUTSIDER (frozen), dave revoked;
* realm "shared" (alice OWNER, bob CONTRIBUTOR, carol READER): two keys, renamed, a vlob with 3
  versions (written by alice and bob, across the key rotation), a vlob with all 256 byte values,
  two blocks (one of 16 KiB);
* realm "archived" (bob OWNER): a vlob, a block, then archived;
* invitations: zoe (USER, pending, a greeting attempt started by alice), yann (USER, cancelled), a
  DEVICE invitation for bob (pending);
* organization `ReleaseNNNNPending`: created, never bootstrapped, users limit 5, expired.

`write(server)` writes it through the HTTP API of a running server (make_fixture.py, and tests
writing "after the upgrade"); `check_served(server)` reads all of it back through the administration
API and the authenticated API.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import nacl.signing
from upgrade_support import (
    RpcHttpError,
    ServerProcess,
    anonymous,
    authenticated,
    bootstrap_token,
    sign,
    signing_key,
    uid,
)

from parsec_server.protocol.codec import now

OK = {"status": "ok"}


@dataclass(frozen=True)
class Person:
    name: str
    user_id: uuid.UUID
    device_id: uuid.UUID
    key: nacl.signing.SigningKey
    profile: str  # initial profile

    @property
    def email(self) -> str:
        return f"{self.name}@example.com"

    @property
    def label(self) -> str:
        return self.name.capitalize()


@dataclass(frozen=True)
class Vlob:
    realm: str
    vlob_id: uuid.UUID
    versions: tuple[tuple[str, int, bytes], ...]  # (writer, key_index, blob) per version


@dataclass(frozen=True)
class Block:
    realm: str
    block_id: uuid.UUID
    writer: str
    key_index: int
    data: bytes


def _bytes(seed: str, size: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


class Dataset:
    def __init__(self, number: int, tag: str | None = None) -> None:
        """`tag`: another organization id (at most 25 characters), for more data of the same
        shape."""
        self.number = number
        p = tag or f"release{number:04d}"
        self.prefix = p
        self.org_id = f"Release{number:04d}" if tag is None else tag
        self.pending_org_id = f"{self.org_id}Pending"
        self.root_key = signing_key(p, "root")
        self.tos = {
            "en_US": f"https://example.com/{p}/tos-en",
            "fr_FR": f"https://example.com/{p}/tos-fr",
        }

        def person(name: str, profile: str) -> Person:
            return Person(
                name, uid(p, name), uid(p, name, "dev1"), signing_key(p, name, "dev1"), profile
            )

        self.alice = person("alice", "ADMIN")
        self.bob = person("bob", "STANDARD")  # promoted ADMIN by alice
        self.carol = person("carol", "OUTSIDER")  # frozen by the administration API
        self.dave = person("dave", "STANDARD")  # revoked by alice
        self.bob_laptop = Person(
            "bob",
            self.bob.user_id,
            uid(p, "bob", "laptop"),
            signing_key(p, "bob", "laptop"),
            "STANDARD",
        )
        self.people = {x.name: x for x in (self.alice, self.bob, self.carol, self.dave)}
        self.realms = {"shared": uid(p, "realm", "shared"), "archived": uid(p, "realm", "archived")}
        self.vlobs = {
            "doc": Vlob(
                "shared",
                uid(p, "vlob", "doc"),
                (
                    ("alice", 1, f"{p} doc v1".encode()),
                    ("bob", 1, f"{p} doc v2 by bob".encode()),
                    ("alice", 2, f"{p} doc v3, after the key rotation".encode() * 40),
                ),
            ),
            "binary": Vlob(
                "shared", uid(p, "vlob", "binary"), (("bob_laptop", 1, bytes(range(256))),)
            ),
            "old": Vlob("archived", uid(p, "vlob", "old"), (("bob", 1, f"{p} archived".encode()),)),
        }
        self.blocks = {
            "small": Block(
                "shared", uid(p, "block", "small"), "alice", 1, f"{p} block".encode() * 30
            ),
            "large": Block(
                "shared", uid(p, "block", "large"), "bob", 2, _bytes(f"{p}/large", 16 * 1024)
            ),
            "archived": Block(
                "archived", uid(p, "block", "archived"), "bob", 1, _bytes(f"{p}/archived", 1000)
            ),
        }
        self.invited_emails = {"zoe": "zoe@example.com", "yann": "yann@example.com"}

    # --- helpers ----------------------------------------------------------------------------------

    def device(self, who: str) -> Person:
        return self.bob_laptop if who == "bob_laptop" else self.people[who]

    def rpc(
        self, server: ServerProcess, who: str, cmd: str, *, tos: bool = False, **fields: Any
    ) -> dict[str, Any]:
        d = self.device(who)
        return authenticated(server.http, self.org_id, d.device_id, d.key, cmd, tos=tos, **fields)

    def rpc_ok(self, server: ServerProcess, who: str, cmd: str, **fields: Any) -> dict[str, Any]:
        rep = self.rpc(server, who, cmd, **fields)
        assert rep["status"] == "ok", (cmd, rep)
        return rep

    @property
    def data_size(self) -> int:
        return sum(len(b.data) for b in self.blocks.values())

    @property
    def metadata_size(self) -> int:
        return sum(len(blob) for v in self.vlobs.values() for _, _, blob in v.versions)

    # --- writing ----------------------------------------------------------------------------------

    def write(self, server: ServerProcess) -> None:
        """Write the whole dataset through the API of `server` (a fresh organization id)."""
        last = [now()]

        def ts() -> datetime.datetime:  # strictly increasing certificate timestamps
            t = max(now(), last[0] + datetime.timedelta(microseconds=1))
            last[0] = t
            return t

        alice, bob, carol, dave = self.alice, self.bob, self.carol, self.dave
        created = server.admin_json("POST", "/organizations", json={"organization_id": self.org_id})
        token = bootstrap_token(created["bootstrap_url"])
        rep = anonymous(
            server.http,
            self.org_id,
            "organization_bootstrap",
            bootstrap_token=token,
            root_verify_key=bytes(self.root_key.verify_key),
            sequester_authority_certificate=None,
            **self._user_certs(self.root_key, None, alice, ts()),
        )
        assert rep == OK, rep
        for who in (bob, carol, dave):
            self.rpc_ok(
                server,
                "alice",
                "user_create",
                **self._user_certs(alice.key, alice.device_id, who, ts()),
            )
        t = ts()
        laptop = self.bob_laptop
        self.rpc_ok(
            server,
            "bob",
            "device_create",
            device_certificate=sign(
                bob.key,
                _device_cert(
                    bob.device_id, t, bob.user_id, laptop.device_id, "bob-laptop", laptop.key
                ),
            ),
            redacted_device_certificate=sign(
                bob.key,
                _device_cert(bob.device_id, t, bob.user_id, laptop.device_id, None, laptop.key),
            ),
        )
        self.rpc_ok(
            server,
            "alice",
            "user_update",
            user_update_certificate=sign(
                alice.key,
                {
                    "type": "user_update_certificate",
                    "author": alice.device_id,
                    "timestamp": ts(),
                    "user_id": bob.user_id,
                    "new_profile": "ADMIN",
                },
            ),
        )
        self.rpc_ok(
            server,
            "alice",
            "user_revoke",
            revoked_user_certificate=sign(
                alice.key,
                {
                    "type": "revoked_user_certificate",
                    "author": alice.device_id,
                    "timestamp": ts(),
                    "user_id": dave.user_id,
                },
            ),
        )

        shared, archived = self.realms["shared"], self.realms["archived"]
        self._realm_create(server, "alice", shared, ts())
        self._rotate(server, "alice", shared, 1, [alice.user_id], ts())
        self.rpc_ok(
            server,
            "alice",
            "realm_rename",
            initial_name_or_fail=True,
            realm_name_certificate=sign(
                alice.key,
                {
                    "type": "realm_name_certificate",
                    "author": alice.device_id,
                    "timestamp": ts(),
                    "realm_id": shared,
                    "key_index": 1,
                    "encrypted_name": f"{self.prefix} shared".encode(),
                },
            ),
        )
        for who, role in ((bob, "CONTRIBUTOR"), (carol, "READER")):
            self.rpc_ok(
                server,
                "alice",
                "realm_share",
                key_index=1,
                recipient_keys_bundle_access=b"share-" + who.user_id.bytes,
                realm_role_certificate=sign(
                    alice.key, _role_cert(alice.device_id, ts(), shared, who.user_id, role)
                ),
            )

        doc, binary, old = self.vlobs["doc"], self.vlobs["binary"], self.vlobs["old"]
        self._vlob(server, doc, 0)
        self._vlob(server, binary, 0)
        self._vlob(server, doc, 1)
        self._block(server, self.blocks["small"])
        self._rotate(server, "alice", shared, 2, [alice.user_id, bob.user_id, carol.user_id], ts())
        self._vlob(server, doc, 2)
        self._block(server, self.blocks["large"])

        self._realm_create(server, "bob", archived, ts())
        self._rotate(server, "bob", archived, 1, [bob.user_id], ts())
        self._vlob(server, old, 0)
        self._block(server, self.blocks["archived"])
        self.rpc_ok(
            server,
            "bob",
            "realm_update_archiving",
            archiving_certificate=sign(
                bob.key,
                {
                    "type": "realm_archiving_certificate",
                    "author": bob.device_id,
                    "timestamp": ts(),
                    "realm_id": archived,
                    "configuration": {"type": "ARCHIVED"},
                },
            ),
        )

        zoe = self.rpc_ok(
            server,
            "alice",
            "invite_new_user",
            claimer_email=self.invited_emails["zoe"],
            send_email=False,
        )
        yann = self.rpc_ok(
            server,
            "alice",
            "invite_new_user",
            claimer_email=self.invited_emails["yann"],
            send_email=False,
        )
        self.rpc_ok(server, "alice", "invite_cancel", token=yann["token"])
        self.rpc_ok(server, "bob", "invite_new_device", send_email=False)
        self.rpc_ok(server, "alice", "invite_greeter_start_greeting_attempt", token=zoe["token"])

        server.admin_json("PATCH", f"/organizations/{self.org_id}", json={"tos": self.tos})
        for who in ("alice", "bob"):  # carol (frozen) and dave (revoked) never accept them
            tos = self.rpc(server, who, "tos_get", tos=True)
            assert (
                self.rpc(server, who, "tos_accept", tos=True, tos_updated_on=tos["updated_on"])
                == OK
            )
        server.admin_json(
            "POST",
            f"/organizations/{self.org_id}/users/freeze",
            json={"user_email": carol.email, "frozen": True},
        )
        server.admin_json(
            "POST",
            "/organizations",
            json={"organization_id": self.pending_org_id, "active_users_limit": 5},
        )
        server.admin_json(
            "PATCH", f"/organizations/{self.pending_org_id}", json={"is_expired": True}
        )

    def _user_certs(
        self,
        key: nacl.signing.SigningKey,
        author: uuid.UUID | None,
        who: Person,
        t: datetime.datetime,
    ) -> dict[str, bytes]:
        public_key = hashlib.sha256(f"{self.prefix}/{who.name}/public".encode()).digest()

        def user(human: bool) -> dict[str, Any]:
            return {
                "type": "user_certificate",
                "author": author,
                "timestamp": t,
                "user_id": who.user_id,
                "human_handle": [who.email, who.label] if human else None,
                "public_key": public_key,
                "algorithm": "X25519_XSALSA20_POLY1305",
                "profile": who.profile,
            }

        return {
            "user_certificate": sign(key, user(True)),
            "redacted_user_certificate": sign(key, user(False)),
            "device_certificate": sign(
                key,
                _device_cert(author, t, who.user_id, who.device_id, f"{who.name}-dev1", who.key),
            ),
            "redacted_device_certificate": sign(
                key, _device_cert(author, t, who.user_id, who.device_id, None, who.key)
            ),
        }

    def _realm_create(
        self, server: ServerProcess, who: str, realm_id: uuid.UUID, t: datetime.datetime
    ) -> None:
        d = self.device(who)
        self.rpc_ok(
            server,
            who,
            "realm_create",
            realm_role_certificate=sign(
                d.key, _role_cert(d.device_id, t, realm_id, d.user_id, "OWNER")
            ),
        )

    def _rotate(
        self,
        server: ServerProcess,
        who: str,
        realm_id: uuid.UUID,
        key_index: int,
        participants: list[uuid.UUID],
        t: datetime.datetime,
    ) -> None:
        d = self.device(who)
        self.rpc_ok(
            server,
            who,
            "realm_rotate_key",
            realm_key_rotation_certificate=sign(
                d.key,
                {
                    "type": "realm_key_rotation_certificate",
                    "author": d.device_id,
                    "timestamp": t,
                    "realm_id": realm_id,
                    "key_index": key_index,
                    "encryption_algorithm": "BLAKE2_XSALSA20_POLY1305",
                    "hash_algorithm": "SHA256",
                    "key_canary": f"canary-{key_index}".encode(),
                },
            ),
            per_participant_keys_bundle_access={
                u: f"access-{key_index}-".encode() + u.bytes for u in participants
            },
            per_sequester_service_keys_bundle_access=None,
            keys_bundle=f"bundle-{key_index}".encode(),
        )

    def _vlob(self, server: ServerProcess, vlob: Vlob, index: int) -> None:
        who, key_index, blob = vlob.versions[index]
        fields = {
            "realm_id": self.realms[vlob.realm],
            "vlob_id": vlob.vlob_id,
            "key_index": key_index,
            "timestamp": now(),
            "blob": blob,
        }
        if index == 0:
            self.rpc_ok(server, who, "vlob_create", **fields)
        else:
            self.rpc_ok(server, who, "vlob_update", version=index + 1, **fields)

    def _block(self, server: ServerProcess, block: Block) -> None:
        self.rpc_ok(
            server,
            block.writer,
            "block_create",
            block_id=block.block_id,
            realm_id=self.realms[block.realm],
            key_index=block.key_index,
            block=block.data,
        )

    # --- reading back -----------------------------------------------------------------------------

    def check_served(self, server: ServerProcess) -> None:
        """Everything the dataset holds, read back through the administration and authenticated
        APIs."""
        alice, bob, carol = self.alice, self.bob, self.carol
        org = server.admin_json("GET", f"/organizations/{self.org_id}")
        assert org["is_bootstrapped"] is True and org["is_expired"] is False, org
        assert org["tos"]["per_locale_urls"] == self.tos, org
        pending = server.admin_json("GET", f"/organizations/{self.pending_org_id}")
        assert (
            pending["is_bootstrapped"],
            pending["is_expired"],
            pending["active_users_limit"],
        ) == (False, True, 5)
        users = server.admin_json("GET", f"/organizations/{self.org_id}/users")["users"]
        assert {(u["user_id"], u["user_email"], u["frozen"]) for u in users} == {
            (alice.user_id.hex, alice.email, False),
            (bob.user_id.hex, bob.email, False),
            (carol.user_id.hex, carol.email, True),
        }
        stats = server.admin_json("GET", f"/organizations/{self.org_id}/stats")
        assert (stats["realms"], stats["data_size"], stats["active_users"], stats["users"]) == (
            2,
            self.data_size,
            3,
            4,
        ), stats
        assert stats["users_per_profile_detail"] == {
            "ADMIN": {"active": 2, "revoked": 0},
            "STANDARD": {"active": 0, "revoked": 1},
            "OUTSIDER": {"active": 1, "revoked": 0},
        }, stats

        # the revoked user is still revoked (461), the others authenticate
        try:
            self.rpc(server, "dave", "ping", ping="x")
            raise AssertionError("a revoked user could authenticate")
        except RpcHttpError as exc:
            assert exc.status_code == 461, exc
        info = self.rpc_ok(server, "alice", "organization_info")
        assert info["total_block_bytes"] == self.data_size, info
        assert info["total_metadata_bytes"] == self.metadata_size, info

        shared = self.realms["shared"]
        doc, binary = self.vlobs["doc"], self.vlobs["binary"]
        rep = self.rpc_ok(
            server,
            "alice",
            "vlob_read_batch",
            realm_id=shared,
            vlobs=[doc.vlob_id, binary.vlob_id],
            at=None,
        )
        got = {item[0]: (item[1], item[2], item[3], item[5]) for item in rep["items"]}
        assert got == {
            v.vlob_id: (
                v.versions[-1][1],
                self.device(v.versions[-1][0]).device_id,
                len(v.versions),
                v.versions[-1][2],
            )
            for v in (doc, binary)
        }
        rep = self.rpc_ok(
            server,
            "bob",
            "vlob_read_versions",
            realm_id=shared,
            items=[(doc.vlob_id, 1), (doc.vlob_id, 2)],
        )
        assert sorted((item[3], item[5]) for item in rep["items"]) == [
            (1, doc.versions[0][2]),
            (2, doc.versions[1][2]),
        ]
        rep = self.rpc_ok(server, "bob", "vlob_poll_changes", realm_id=shared, last_checkpoint=0)
        assert rep["current_checkpoint"] == 4 and dict(rep["changes"]) == {
            doc.vlob_id: 3,
            binary.vlob_id: 1,
        }, rep
        for name, block in self.blocks.items():
            reader = "alice" if block.realm == "shared" else "bob"
            rep = self.rpc_ok(
                server,
                reader,
                "block_read",
                block_id=block.block_id,
                realm_id=self.realms[block.realm],
            )
            assert (rep["block"], rep["key_index"]) == (block.data, block.key_index), name
        rep = self.rpc_ok(server, "bob", "realm_get_keys_bundle", realm_id=shared, key_index=2)
        assert (
            rep["keys_bundle"] == b"bundle-2"
            and rep["keys_bundle_access"] == b"access-2-" + bob.user_id.bytes
        )
        rep = self.rpc_ok(
            server,
            "bob",
            "vlob_read_batch",
            realm_id=self.realms["archived"],
            vlobs=[self.vlobs["old"].vlob_id],
            at=None,
        )
        assert [item[5] for item in rep["items"]] == [self.vlobs["old"].versions[0][2]]
        archived = self.rpc(
            server,
            "bob",
            "block_create",
            block_id=uuid.uuid4(),
            realm_id=self.realms["archived"],
            key_index=1,
            block=b"x",
        )
        assert archived["status"] == "realm_archived", archived  # the archiving survived too

        certs = self.rpc_ok(
            server,
            "alice",
            "certificate_get",
            common_after=None,
            sequester_after=None,
            shamir_recovery_after=None,
            realm_after={},
        )
        # bootstrap (user + device), 3 users (user + device), bob's laptop, bob's promotion, dave's
        # revocation
        assert len(certs["common_certificates"]) == 11, len(certs["common_certificates"])
        # alice's role, key 1, name, bob's and carol's roles, key 2 (alice is not in the archived
        # realm)
        assert {k: len(v) for k, v in certs["realm_certificates"].items()} == {shared: 6}

        invitations = self.rpc_ok(server, "alice", "invite_list")["invitations"]
        by_email = {i["claimer_email"]: i["status"] for i in invitations if i["type"] == "USER"}
        assert by_email.get(self.invited_emails["zoe"]) == "PENDING", invitations
        assert by_email.get(self.invited_emails["yann"], "CANCELLED") == "CANCELLED", invitations
        device_invites = self.rpc_ok(server, "bob", "invite_list")["invitations"]
        assert [i["status"] for i in device_invites if i["type"] == "DEVICE"] == ["PENDING"], (
            device_invites
        )


def _device_cert(
    author: uuid.UUID | None,
    t: datetime.datetime,
    user_id: uuid.UUID,
    device_id: uuid.UUID,
    label: str | None,
    key: nacl.signing.SigningKey,
) -> dict[str, Any]:
    return {
        "type": "device_certificate",
        "purpose": "STANDARD",
        "author": author,
        "timestamp": t,
        "user_id": user_id,
        "device_id": device_id,
        "device_label": label,
        "verify_key": bytes(key.verify_key),
        "algorithm": "ED25519",
    }


def _role_cert(
    author: uuid.UUID,
    t: datetime.datetime,
    realm_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str | None,
) -> dict[str, Any]:
    return {
        "type": "realm_role_certificate",
        "author": author,
        "timestamp": t,
        "realm_id": realm_id,
        "user_id": user_id,
        "role": role,
    }
