"""How a stream registers (asgi/sse.py `_Stream`): what it hears while reading its realms from the
database is applied on top of that answer, and a Last-Event-ID replay does not repeat those events.
(No server needed: the events are fed in the order a process would hear them.)"""

from __future__ import annotations

import datetime
import uuid
from types import SimpleNamespace

from parsec_server.asgi.sse import _Stream
from parsec_server.events import types as event_types
from parsec_server.protocol.sse import MISSED_EVENTS as _MISSED

ORG = "Org"
TS = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
ME = uuid.uuid4()
MY_DEVICE = uuid.uuid4()
OTHER_DEVICE = uuid.uuid4()


def _stream() -> _Stream:
    client = SimpleNamespace(
        user_id=ME, device_id=MY_DEVICE, device=SimpleNamespace(profile="STANDARD")
    )
    return _Stream(client)  # type: ignore[arg-type]


def _vlob(realm: uuid.UUID, author: uuid.UUID = OTHER_DEVICE) -> dict:
    return event_types.vlob(ORG, realm, uuid.uuid4(), author, TS, 1, b"x", TS, TS)


def _queued(stream: _Stream) -> list[dict]:
    out = list(stream.queue)
    stream.queue.clear()
    return out


def test_sharing_heard_during_registration() -> None:
    stream = _stream()
    new_realm = uuid.uuid4()
    shared = event_types.realm_certificate(ORG, TS, new_realm, ME)
    first_vlob = _vlob(new_realm)
    stream.on_event(shared)  # committed while the realms were read: the database may not show it
    stream.on_event(first_vlob)
    assert _queued(stream) == []  # nothing delivered before going live
    frames = stream.go_live(set(), None, replay=False)
    assert frames == []
    assert _queued(stream) == [shared, first_vlob]
    later = _vlob(new_realm)
    stream.on_event(later)
    assert _queued(stream) == [later]


def test_unsharing_heard_during_registration() -> None:
    stream = _stream()
    realm = uuid.uuid4()
    unshared = event_types.realm_certificate(ORG, TS, realm, ME, role_removed=True)
    stream.on_event(unshared)
    stream.go_live({realm}, None, replay=False)  # the database still showed the role
    assert _queued(stream) == [unshared]
    stream.on_event(_vlob(realm))
    assert _queued(stream) == []


def test_replay_without_duplicates() -> None:
    stream = _stream()
    realm = uuid.uuid4()
    before = [_vlob(realm) for _ in range(3)]
    during = _vlob(realm)
    stream.on_event(during)
    frames = stream.go_live({realm}, [*before, during], replay=True)
    assert [f.split(b"\nid:")[1][:32].decode() for f in frames] == [e["id"] for e in before]
    assert _queued(stream) == [during]


def test_replay_limits() -> None:
    realm = uuid.uuid4()
    stream = _stream()
    assert stream.go_live({realm}, None, replay=True) == [_MISSED]  # unknown id
    mine = [_vlob(realm) for _ in range(100)]
    others = [_vlob(uuid.uuid4()) for _ in range(300)] + [_vlob(realm, author=MY_DEVICE)]
    stream = _stream()
    assert len(stream.go_live({realm}, others + mine, replay=True)) == 100
    stream = _stream()
    assert stream.go_live({realm}, others + mine + [_vlob(realm)], replay=True) == [_MISSED]


def test_revocation_heard_during_registration_closes() -> None:
    stream = _stream()
    stream.on_event(event_types.internal(ORG, "USER_REVOKED_OR_FROZEN", ME))
    stream.go_live(set(), None, replay=False)
    [item] = _queued(stream)
    assert not isinstance(item, dict)  # the close marker
