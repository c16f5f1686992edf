"""Data plane, server-sent events: realm membership followed live by a stream, realm certificate
events of every kind, VLOB event contents, and Last-Event-ID replay limits."""

from __future__ import annotations

import parsec._parsec as p
from client import AC, AuthenticatedClient, now
from data_plane import unit

EL = AC.events_listen
R = p.RealmRole


def vlob_create(
    client: AuthenticatedClient,
    realm: p.VlobID,
    blob: bytes = b"x",
    key_index: int = 1,
    timestamp: p.DateTime | None = None,
) -> p.VlobID:
    vlob_id = p.VlobID.new()
    rep = client.send(
        AC.vlob_create.Req(
            realm_id=realm,
            vlob_id=vlob_id,
            key_index=key_index,
            timestamp=timestamp or now(),
            blob=blob,
        )
    )
    assert isinstance(rep, AC.vlob_create.RepOk), rep
    return vlob_id


def test_stream_follows_new_sharing(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    with bob.events() as stream:
        assert isinstance(unit(stream), EL.APIEventOrganizationConfig)
        ts = now()
        assert isinstance(
            alice.share(realm, bob.user_id, R.READER, timestamp=ts), AC.realm_share.RepOk
        )
        ev = unit(stream)
        assert isinstance(ev, EL.APIEventRealmCertificate), ev
        assert (ev.realm_id, ev.timestamp) == (realm, ts)
        vlob_id = vlob_create(alice, realm)
        ev = unit(stream)
        assert isinstance(ev, EL.APIEventVlob), ev
        assert (ev.realm_id, ev.vlob_id) == (realm, vlob_id)


def test_stream_stops_after_unsharing(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    assert isinstance(alice.share(realm, bob.user_id, R.READER), AC.realm_share.RepOk)
    with bob.events() as stream:
        unit(stream)
        vlob_create(alice, realm)
        assert isinstance(unit(stream), EL.APIEventVlob)
        ts = now()
        assert isinstance(
            alice.share(realm, bob.user_id, None, timestamp=ts), AC.realm_unshare.RepOk
        )
        ev = unit(stream)  # the unsharing itself is the last event of that realm
        assert isinstance(ev, EL.APIEventRealmCertificate), ev
        assert (ev.realm_id, ev.timestamp) == (realm, ts)
        vlob_create(alice, realm)
        assert isinstance(alice.rotate_key(realm, 2, [alice.user_id]), AC.realm_rotate_key.RepOk)
        alice.ping("after")
        ev = unit(stream)
        assert isinstance(ev, EL.APIEventPinged), ev


def test_realm_certificate_events(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    carol = alice.create_user("carol")
    realm = alice.new_realm()
    assert isinstance(alice.share(realm, bob.user_id, R.READER), AC.realm_share.RepOk)
    with bob.events() as b_stream, alice.events() as a_stream, carol.events() as c_stream:
        for s in (b_stream, a_stream, c_stream):
            unit(s)
        stamps = []
        ts = now()
        assert isinstance(
            alice.rotate_key(realm, 2, [alice.user_id, bob.user_id], timestamp=ts),
            AC.realm_rotate_key.RepOk,
        )
        stamps.append(ts)
        ts = now()
        cert = p.RealmNameCertificate(
            author=alice.device_id, timestamp=ts, realm_id=realm, key_index=2, encrypted_name=b"n"
        )
        rep = alice.send(
            AC.realm_rename.Req(realm_name_certificate=alice.sign(cert), initial_name_or_fail=True)
        )
        assert isinstance(rep, AC.realm_rename.RepOk), rep
        stamps.append(ts)
        ts = now()
        cert = p.RealmArchivingCertificate(
            author=alice.device_id,
            timestamp=ts,
            realm_id=realm,
            configuration=p.RealmArchivingConfiguration.ARCHIVED,
        )
        rep = alice.send(AC.realm_update_archiving.Req(archiving_certificate=alice.sign(cert)))
        assert isinstance(rep, AC.realm_update_archiving.RepOk), rep
        stamps.append(ts)
        for stream in (b_stream, a_stream):  # members, author included
            for expected in stamps:
                ev = unit(stream)
                assert isinstance(ev, EL.APIEventRealmCertificate), ev
                assert (ev.realm_id, ev.timestamp) == (realm, expected)
        alice.ping("not a member")
        assert isinstance(unit(c_stream), EL.APIEventPinged)


def test_realm_create_event_to_author(alice: AuthenticatedClient) -> None:
    alice2 = alice.create_device()
    with alice2.events() as stream:
        unit(stream)
        ts = now()
        realm, rep = alice.realm_create(timestamp=ts)
        assert isinstance(rep, AC.realm_create.RepOk), rep
        ev = unit(stream)
        assert isinstance(ev, EL.APIEventRealmCertificate), ev
        assert (ev.realm_id, ev.timestamp) == (realm, ts)
        # the other device now follows the new realm
        vlob_id = p.VlobID.new()
        rep = alice.send(
            AC.vlob_create.Req(
                realm_id=realm, vlob_id=vlob_id, key_index=0, timestamp=now(), blob=b"k0"
            )
        )
        assert isinstance(rep, AC.vlob_create.RepOk), rep
        ev = unit(stream)
        assert isinstance(ev, EL.APIEventVlob), ev
        assert (ev.vlob_id, ev.blob) == (vlob_id, b"k0")


def test_vlob_event_blob_size_limit(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    assert isinstance(alice.share(realm, bob.user_id, R.READER), AC.realm_share.RepOk)
    with bob.events() as stream:
        unit(stream)
        vlob_create(alice, realm, blob=b"a" * 4095)
        vlob_create(alice, realm, blob=b"b" * 4096)
        vlob_create(alice, realm, blob=b"")
        blobs = [unit(stream).blob for _ in range(3)]
        assert blobs == [b"a" * 4095, None, b""]


def test_vlob_event_fields(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    assert isinstance(alice.share(realm, bob.user_id, R.CONTRIBUTOR), AC.realm_share.RepOk)
    vlob_id = vlob_create(alice, realm)
    with alice.events() as stream:
        unit(stream)
        ts = now()
        rep = bob.send(
            AC.vlob_update.Req(
                realm_id=realm,
                vlob_id=vlob_id,
                key_index=1,
                timestamp=ts,
                version=2,
                blob=b"by bob",
            )
        )
        assert isinstance(rep, AC.vlob_update.RepOk), rep
        ev = unit(stream)
        assert isinstance(ev, EL.APIEventVlob), ev
        assert (ev.author, ev.version, ev.timestamp, ev.blob) == (bob.device_id, 2, ts, b"by bob")
        read = alice.send(AC.vlob_read_batch.Req(realm_id=realm, vlobs=[vlob_id], at=None))
        assert ev.last_common_certificate_timestamp == read.needed_common_certificate_timestamp
        assert ev.last_realm_certificate_timestamp == read.needed_realm_certificate_timestamp


def test_refused_writes_send_no_event(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    assert isinstance(alice.share(realm, bob.user_id, R.READER), AC.realm_share.RepOk)
    vlob_id = vlob_create(alice, realm)
    with bob.events() as stream:
        unit(stream)
        rep = alice.send(
            AC.vlob_update.Req(
                realm_id=realm, vlob_id=vlob_id, key_index=1, timestamp=now(), version=3, blob=b"x"
            )
        )
        assert isinstance(rep, AC.vlob_update.RepBadVlobVersion), rep
        rep = alice.share(realm, bob.user_id, R.READER)
        assert isinstance(rep, AC.realm_share.RepRoleAlreadyGranted), rep
        alice.ping("marker")
        assert isinstance(unit(stream), EL.APIEventPinged)


def test_replay_limit(alice: AuthenticatedClient) -> None:
    with alice.events() as stream:
        unit(stream)
        alice.ping("first")
        first = stream.next_data()
        assert first.rep().unit.ping == "first"
    for i in range(100):
        alice.ping(f"p{i}")
    with alice.events(**{"Last-Event-ID": first.id}) as stream:
        assert isinstance(unit(stream), EL.APIEventOrganizationConfig)
        pings = [unit(stream).ping for _ in range(100)]
        assert pings == [f"p{i}" for i in range(100)]
    alice.ping("one too many")
    with alice.events(**{"Last-Event-ID": first.id}) as stream:
        assert isinstance(unit(stream), EL.APIEventOrganizationConfig)
        ev = stream.next()
        assert (ev.event, ev.data) == ("missed_events", "")
        alice.ping("live")
        assert unit(stream).ping == "live"


def test_replay_skips_events_of_others(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm = alice.new_realm()
    with bob.events() as stream:
        unit(stream)
        alice.ping("first")
        first = stream.next_data()
    for _ in range(150):  # not for bob: they do not count in his replay
        vlob_create(alice, realm)
    alice.ping("second")
    with bob.events(**{"Last-Event-ID": first.id}) as stream:
        assert isinstance(unit(stream), EL.APIEventOrganizationConfig)
        assert unit(stream).ping == "second"
