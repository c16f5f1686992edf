"""Server-sent events: GET /authenticated/<org>/events (observed-reference.md §3.3)."""

from __future__ import annotations

import base64
import re

import parsec._parsec as p
from client import (
    AC,
    AuthenticatedClient,
    Org,
    bootstrap_org,
    build_user_certs,
    now,
    user_create_req,
)
from data_plane import unit

EL = AC.events_listen
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_sse_first_event_is_organization_config(alice: AuthenticatedClient) -> None:
    with alice.events() as stream:
        r = stream.response
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert r.headers["cache-control"] == "no-cache"
        ev = stream.next()
        assert ev.id is None
        assert ev.event is None
        assert set(ev.fields) == {"data"}
        rep = ev.rep()
        assert isinstance(rep, EL.RepOk), rep
        cfg = rep.unit
        assert isinstance(cfg, EL.APIEventOrganizationConfig), cfg
        assert cfg.user_profile_outsider_allowed is True
        assert cfg.active_users_limit == p.ActiveUsersLimit.NO_LIMIT
        assert cfg.realm_minimum_archiving_period_before_deletion == 2592000
        assert cfg.sse_keepalive_seconds is not None and cfg.sse_keepalive_seconds > 0


def test_sse_organization_config_reflects_org(org: Org, alice: AuthenticatedClient) -> None:
    org.admin.patch_org(
        org.organization_id,
        user_profile_outsider_allowed=False,
        active_users_limit=5,
        realm_minimum_archiving_period_before_deletion=60,
    )
    with alice.events() as stream:
        cfg = unit(stream)
        assert isinstance(cfg, EL.APIEventOrganizationConfig), cfg
        assert cfg.user_profile_outsider_allowed is False
        assert cfg.active_users_limit == p.ActiveUsersLimit.limited_to(5)
        assert cfg.realm_minimum_archiving_period_before_deletion == 60


def test_sse_pinged_event(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    with alice.events() as a_stream, bob.events() as b_stream:
        unit(a_stream)
        unit(b_stream)
        alice.ping("sse")
        for stream in (a_stream, b_stream):  # the whole organization, author included
            ev = stream.next_data()
            assert ev.id is not None and HEX32.match(ev.id), ev.id
            assert ev.event is None
            pinged = ev.rep().unit
            assert isinstance(pinged, EL.APIEventPinged), pinged
            assert pinged.ping == "sse"


def test_sse_data_is_standard_base64_msgpack(alice: AuthenticatedClient) -> None:
    with alice.events() as stream:
        unit(stream)
        alice.ping("+/+/")
        ev = stream.next_data()
        raw = base64.b64decode(ev.data, validate=True)  # standard alphabet, padded
        rep = EL.Rep.load(raw)
        assert isinstance(rep, EL.RepOk), rep
        assert rep.unit.ping == "+/+/"


def test_sse_events_of_other_org_not_received(org: Org, alice: AuthenticatedClient) -> None:
    other = bootstrap_org(org.http, org.admin)
    with alice.events() as stream:
        unit(stream)
        other.alice.ping("other org")
        alice.ping("mine")
        pinged = unit(stream)
        assert isinstance(pinged, EL.APIEventPinged)
        assert pinged.ping == "mine"


def test_sse_common_certificate_event(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    with bob.events() as stream:
        unit(stream)
        ts = now()
        certs = build_user_certs(
            alice.organization_id,
            alice.device,
            alice.device.signing_key,
            name="carol",
            timestamp=ts,
        )
        assert isinstance(alice.send(user_create_req(certs)), AC.user_create.RepOk)
        ev = unit(stream)
        assert isinstance(ev, EL.APIEventCommonCertificate), ev
        assert ev.timestamp == ts


def test_sse_realm_certificate_event(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    with bob.events() as b_stream, alice.events() as a_stream:
        unit(b_stream)
        unit(a_stream)
        ts = now()
        assert isinstance(
            alice.share(realm, bob.user_id, p.RealmRole.READER, timestamp=ts), AC.realm_share.RepOk
        )
        for stream in (b_stream, a_stream):  # the new member and the author
            ev = unit(stream)
            assert isinstance(ev, EL.APIEventRealmCertificate), ev
            assert (ev.realm_id, ev.timestamp) == (realm, ts)


def test_sse_vlob_event(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    assert isinstance(alice.share(realm, bob.user_id, p.RealmRole.READER), AC.realm_share.RepOk)
    certs = alice.certificates()
    common_ts = p.DeviceCertificate.unsecure_load(certs.common_certificates[-1]).timestamp
    realm_ts = p.RealmRoleCertificate.unsecure_load(certs.realm_certificates[realm][-1]).timestamp
    with bob.events() as stream:
        unit(stream)
        vlob_id = p.VlobID.new()
        ts = now()
        rep = alice.send(
            AC.vlob_create.Req(
                realm_id=realm, vlob_id=vlob_id, key_index=1, timestamp=ts, blob=b"small"
            )
        )
        assert isinstance(rep, AC.vlob_create.RepOk), rep
        ev = unit(stream)
        assert isinstance(ev, EL.APIEventVlob), ev
        assert (ev.realm_id, ev.vlob_id, ev.author, ev.timestamp, ev.version, ev.blob) == (
            realm,
            vlob_id,
            alice.device_id,
            ts,
            1,
            b"small",
        )
        assert ev.last_common_certificate_timestamp == common_ts
        assert ev.last_realm_certificate_timestamp == realm_ts
        # big blobs are not carried by the event
        rep = alice.send(
            AC.vlob_update.Req(
                realm_id=realm,
                vlob_id=vlob_id,
                key_index=1,
                timestamp=now(),
                version=2,
                blob=b"b" * 5000,
            )
        )
        assert isinstance(rep, AC.vlob_update.RepOk), rep
        ev = unit(stream)
        assert isinstance(ev, EL.APIEventVlob), ev
        assert (ev.version, ev.blob) == (2, None)


def test_sse_vlob_event_not_sent_to_author_device(alice: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    alice2 = alice.create_device()
    with alice.events() as a1, alice2.events() as a2:
        unit(a1)
        unit(a2)
        vlob_id = p.VlobID.new()
        rep = alice.send(
            AC.vlob_create.Req(
                realm_id=realm, vlob_id=vlob_id, key_index=1, timestamp=now(), blob=b"x"
            )
        )
        assert isinstance(rep, AC.vlob_create.RepOk), rep
        alice.ping("after")
        # the other device of the same user gets the vlob event...
        ev = unit(a2)
        assert isinstance(ev, EL.APIEventVlob), ev
        assert ev.vlob_id == vlob_id
        # ... the author device only the ping
        ev = unit(a1)
        assert isinstance(ev, EL.APIEventPinged), ev


def test_sse_vlob_event_not_sent_to_non_members(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm = alice.new_realm()
    with bob.events() as stream:
        unit(stream)
        rep = alice.send(
            AC.vlob_create.Req(
                realm_id=realm, vlob_id=p.VlobID.new(), key_index=1, timestamp=now(), blob=b"x"
            )
        )
        assert isinstance(rep, AC.vlob_create.RepOk), rep
        alice.ping("after")
        ev = unit(stream)
        assert isinstance(ev, EL.APIEventPinged), ev


def test_sse_invitation_event(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    with alice.events() as a_stream, bob.events() as b_stream:
        unit(a_stream)
        unit(b_stream)
        rep = alice.send(
            AC.invite_new_user.Req(
                claimer_email=p.EmailAddress("zack@example.com"), send_email=False
            )
        )
        assert isinstance(rep, AC.invite_new_user.RepOk), rep
        ev = unit(a_stream)
        assert isinstance(ev, EL.APIEventInvitation), ev
        assert ev.token == rep.token
        assert ev.invitation_status == p.InvitationStatus.PENDING
        # a standard user is not a possible greeter of a user invitation
        bob.ping("after")
        assert isinstance(unit(b_stream), EL.APIEventPinged)


def test_sse_last_event_id_replay(alice: AuthenticatedClient) -> None:
    with alice.events() as stream:
        unit(stream)
        alice.ping("first")
        ev = stream.next_data()
        assert ev.rep().unit.ping == "first"
        first_id = ev.id
    alice.ping("second")
    alice.ping("third")
    assert first_id is not None
    with alice.events(**{"Last-Event-ID": first_id}) as stream:
        cfg = unit(stream)
        assert isinstance(cfg, EL.APIEventOrganizationConfig), cfg
        assert [unit(stream).ping, unit(stream).ping] == ["second", "third"]


def test_sse_unknown_last_event_id(alice: AuthenticatedClient) -> None:
    with alice.events(**{"Last-Event-ID": "0" * 32}) as stream:
        assert isinstance(unit(stream), EL.APIEventOrganizationConfig)
        ev = stream.next()
        assert ev.event == "missed_events"
        assert ev.data == ""


def test_sse_invalid_last_event_id_ignored(alice: AuthenticatedClient) -> None:
    with alice.events(**{"Last-Event-ID": "not-a-uuid"}) as stream:
        assert isinstance(unit(stream), EL.APIEventOrganizationConfig)
        alice.ping("next")
        ev = stream.next()
        assert ev.event is None
        assert ev.rep().unit.ping == "next"


def test_sse_stream_closed_on_revocation(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    with bob.events() as stream:
        unit(stream)
        assert isinstance(alice.revoke(bob.user_id), AC.user_revoke.RepOk)
        ev = unit(stream)
        assert isinstance(ev, EL.APIEventCommonCertificate), ev
        try:
            while True:
                stream.next()
        except EOFError:
            pass


def test_sse_stream_closed_on_freeze(org: Org, bob: AuthenticatedClient) -> None:
    with bob.events() as stream:
        unit(stream)
        org.admin.freeze(org.organization_id, bob.user_id)
        try:
            while True:
                stream.next()
        except EOFError:
            pass
