"""Data plane, races: several clients send conflicting commands at the same time. Exactly one wins,
the others get the protocol's status (never an HTTP error), and the state stays consistent."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import parsec._parsec as p
import pytest
from client import AC, AuthenticatedClient, now

R = p.RealmRole
N = 6


def race(
    clients: list[AuthenticatedClient], action: Callable[[AuthenticatedClient], Any]
) -> list[Any]:
    """Run `action(client)` for every client at once, each thread with its own HTTP connection."""
    barrier = threading.Barrier(len(clients))
    base_url = str(clients[0].http.base_url)

    def run(client: AuthenticatedClient) -> Any:
        with httpx.Client(base_url=base_url, timeout=30.0) as http:
            own = AuthenticatedClient(http, client.device)
            barrier.wait()
            return action(own)

    with ThreadPoolExecutor(len(clients)) as pool:
        return list(pool.map(run, clients))


def names(reps: list[Any]) -> Counter[str]:
    return Counter(type(rep).__name__ for rep in reps)


@pytest.fixture
def team(alice: AuthenticatedClient) -> list[AuthenticatedClient]:
    """alice's devices: N clients with the same rights."""
    return [alice] + [alice.create_device(f"dev{i}") for i in range(N - 1)]


def test_race_vlob_update_same_version(
    alice: AuthenticatedClient, team: list[AuthenticatedClient]
) -> None:
    realm = alice.new_realm()
    vlob_id = p.VlobID.new()
    rep = alice.send(
        AC.vlob_create.Req(
            realm_id=realm, vlob_id=vlob_id, key_index=1, timestamp=now(), blob=b"v1"
        )
    )
    assert isinstance(rep, AC.vlob_create.RepOk)
    reps = race(
        team,
        lambda c: c.send(
            AC.vlob_update.Req(
                realm_id=realm,
                vlob_id=vlob_id,
                key_index=1,
                timestamp=now(),
                version=2,
                blob=c.device_id.bytes,
            )
        ),
    )
    assert names(reps) == {"RepOk": 1, "RepBadVlobVersion": N - 1}, reps
    winner = next(
        c for c, rep in zip(team, reps, strict=True) if isinstance(rep, AC.vlob_update.RepOk)
    )
    item = alice.send(AC.vlob_read_batch.Req(realm_id=realm, vlobs=[vlob_id], at=None)).items[0]
    assert (item[2], item[3], item[5]) == (winner.device_id, 2, winner.device_id.bytes)
    rep = alice.send(AC.vlob_poll_changes.Req(realm_id=realm, last_checkpoint=0))
    assert (rep.changes, rep.current_checkpoint) == ([(vlob_id, 2)], 2)


def test_race_vlob_create_same_id(
    alice: AuthenticatedClient, team: list[AuthenticatedClient]
) -> None:
    realm = alice.new_realm()
    vlob_id = p.VlobID.new()
    reps = race(
        team,
        lambda c: c.send(
            AC.vlob_create.Req(
                realm_id=realm, vlob_id=vlob_id, key_index=1, timestamp=now(), blob=b"v1"
            )
        ),
    )
    assert names(reps) == {"RepOk": 1, "RepVlobAlreadyExists": N - 1}, reps
    rep = alice.send(AC.vlob_poll_changes.Req(realm_id=realm, last_checkpoint=0))
    assert (rep.changes, rep.current_checkpoint) == ([(vlob_id, 1)], 1)


def test_race_vlob_writes_in_one_realm(
    alice: AuthenticatedClient, team: list[AuthenticatedClient]
) -> None:
    """Different vlobs: all succeed, and the checkpoints have no gap."""
    realm = alice.new_realm()

    def work(c: AuthenticatedClient) -> list[Any]:
        out = []
        for _ in range(5):
            out.append(
                c.send(
                    AC.vlob_create.Req(
                        realm_id=realm,
                        vlob_id=p.VlobID.new(),
                        key_index=1,
                        timestamp=now(),
                        blob=b"x",
                    )
                )
            )
        return out

    reps = [rep for reps in race(team, work) for rep in reps]
    assert names(reps) == {"RepOk": 5 * N}
    rep = alice.send(AC.vlob_poll_changes.Req(realm_id=realm, last_checkpoint=0))
    assert (len(rep.changes), rep.current_checkpoint) == (5 * N, 5 * N)
    rep = alice.send(AC.vlob_poll_changes.Req(realm_id=realm, last_checkpoint=5 * N - 3))
    assert len(rep.changes) == 3


def test_race_rotate_key_same_index(
    alice: AuthenticatedClient, team: list[AuthenticatedClient]
) -> None:
    realm = alice.new_realm()
    reps = race(team, lambda c: c.rotate_key(realm, 2, [alice.user_id]))
    assert names(reps) == {"RepOk": 1, "RepBadKeyIndex": N - 1}, reps
    assert isinstance(alice.rotate_key(realm, 3, [alice.user_id]), AC.realm_rotate_key.RepOk)


def test_race_realm_create_same_id(
    alice: AuthenticatedClient, team: list[AuthenticatedClient]
) -> None:
    realm_id = p.VlobID.new()
    reps = race(team, lambda c: c.realm_create(realm_id)[1])
    assert names(reps) == {"RepOk": 1, "RepRealmAlreadyExists": N - 1}, reps
    assert len(alice.certificates().realm_certificates[realm_id]) == 1


def test_race_block_create_same_id(
    alice: AuthenticatedClient, team: list[AuthenticatedClient]
) -> None:
    realm = alice.new_realm()
    block_id = p.BlockID.new()
    reps = race(
        team,
        lambda c: c.send(
            AC.block_create.Req(
                block_id=block_id, realm_id=realm, key_index=1, block=c.device_id.bytes
            )
        ),
    )
    assert names(reps) == {"RepOk": 1, "RepBlockAlreadyExists": N - 1}, reps
    # (the official server writes the data before finding out it lost: any contender's data may be
    # kept; ours keeps the winner's, see tests/integration/commands/test_block.py)
    data = alice.send(AC.block_read.Req(block_id=block_id, realm_id=realm)).block
    assert data in {c.device_id.bytes for c in team}
    rep = alice.send(AC.organization_info.Req())
    assert rep.total_block_bytes == 16


def test_race_realm_certificates(
    alice: AuthenticatedClient, team: list[AuthenticatedClient]
) -> None:
    """Concurrent role changes of one realm: each is accepted or asked for a later timestamp, and
    the accepted certificates are strictly ordered."""
    realm = alice.new_realm()
    users = [alice.create_user(f"user{i}") for i in range(N)]
    targets = dict(zip((c.device_id for c in team), users, strict=True))
    reps = race(team, lambda c: c.share(realm, targets[c.device_id].user_id, R.READER))
    assert set(names(reps)) <= {"RepOk", "RepRequireGreaterTimestamp"}, reps
    assert names(reps)["RepOk"] >= 1
    raws = alice.certificates().realm_certificates[realm]
    assert len(raws) == 2 + names(reps)["RepOk"]  # creation, first rotation, the accepted sharings
    stamps = [p.RealmKeyRotationCertificate.unsecure_load(raws[1]).timestamp] + [
        p.RealmRoleCertificate.unsecure_load(raw).timestamp for raw in raws[2:]
    ]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_race_vlob_writes_and_rotation(
    alice: AuthenticatedClient, team: list[AuthenticatedClient]
) -> None:
    """Writes with key index 1 racing a rotation to key 2: each write is accepted, or refused as
    using an old key / too old a timestamp; the checkpoint counts the accepted ones exactly."""
    realm = alice.new_realm()

    def act(c: AuthenticatedClient) -> Any:
        if c is team[0] or c.device_id == team[0].device_id:
            return c.rotate_key(realm, 2, [alice.user_id])
        return c.send(
            AC.vlob_create.Req(
                realm_id=realm, vlob_id=p.VlobID.new(), key_index=1, timestamp=now(), blob=b"x"
            )
        )

    reps = race(team, act)
    assert isinstance(reps[0], AC.realm_rotate_key.RepOk), reps[0]
    writes = names(reps[1:])
    assert set(writes) <= {"RepOk", "RepBadKeyIndex", "RepRequireGreaterTimestamp"}, reps
    rep = alice.send(AC.vlob_poll_changes.Req(realm_id=realm, last_checkpoint=0))
    assert rep.current_checkpoint == writes["RepOk"]
