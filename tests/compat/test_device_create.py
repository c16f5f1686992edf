"""authenticated device_create (protocol.md §4.4)."""

from __future__ import annotations

import parsec._parsec as p
import pytest
from client import AC, AuthenticatedClient, build_user_certs, device_cert, now, user_create_req

DC = AC.device_create


def new_device_req(
    client: AuthenticatedClient,
    *,
    user_id: p.UserID | None = None,
    device_id: p.DeviceID | None = None,
    author: p.DeviceID | str | None = "self",
    timestamp: p.DateTime | None = None,
    redacted_timestamp: p.DateTime | None = None,
    sign_with: p.SigningKey | None = None,
    redacted_label: str | None = None,
) -> tuple[p.DeviceID, p.SigningKey, object]:
    ts = timestamp or now()
    user_id = user_id or client.user_id
    device_id = device_id or p.DeviceID.new()
    key = p.SigningKey.generate()
    author_id = client.device_id if author == "self" else author
    signer = sign_with or client.device.signing_key
    cert = device_cert(author_id, ts, user_id, device_id, p.DeviceLabel("laptop"), key.verify_key)  # type: ignore[arg-type]
    redacted = device_cert(
        author_id,  # type: ignore[arg-type]
        redacted_timestamp or ts,
        user_id,
        device_id,
        p.DeviceLabel(redacted_label) if redacted_label else None,
        key.verify_key,
    )
    req = DC.Req(
        device_certificate=cert.dump_and_sign(signer),
        redacted_device_certificate=redacted.dump_and_sign(signer),
    )
    return device_id, key, req


@pytest.mark.parametrize("who", ["alice", "bob", "mallory"])
def test_device_create_ok(request: pytest.FixtureRequest, who: str) -> None:
    client: AuthenticatedClient = request.getfixturevalue(who)
    dev2 = client.create_device("second")
    assert dev2.ping("from dev2").pong == "from dev2"
    assert dev2.user_id == client.user_id
    # the new device can itself create a device
    dev3 = dev2.create_device("third")
    assert dev3.ping().pong == "hello"


def test_device_create_certificates_visible(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    _, _, req = new_device_req(bob)
    rep = bob.send(req)
    assert isinstance(rep, DC.RepOk), rep
    got = alice.certificates()
    assert got.common_certificates[-1] == req.device_certificate  # type: ignore[attr-defined]


def test_device_create_for_other_user(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    # even an admin cannot create a device for someone else
    _, _, req = new_device_req(alice, user_id=bob.user_id)
    rep = alice.send(req)
    assert isinstance(rep, DC.RepInvalidCertificate), rep


@pytest.mark.parametrize(
    "kwargs",
    [
        {"author": None},
        {"author": "other-device"},
        {"sign_with": "other-key"},
        {"redacted_label": "not redacted"},
        {"redacted_timestamp": "later"},
    ],
    ids=[
        "author-root",
        "author-other-device",
        "bad-signature",
        "redacted-not-redacted",
        "redacted-differs",
    ],
)
def test_device_create_invalid_certificate(alice: AuthenticatedClient, kwargs: dict) -> None:
    if kwargs.get("author") == "other-device":
        kwargs = {"author": p.DeviceID.new()}
    if kwargs.get("sign_with") == "other-key":
        kwargs = {"sign_with": p.SigningKey.generate()}
    if kwargs.get("redacted_timestamp") == "later":
        kwargs = {"redacted_timestamp": now().add(seconds=1)}
    _, _, req = new_device_req(alice, **kwargs)
    rep = alice.send(req)
    assert isinstance(rep, DC.RepInvalidCertificate), rep


def test_device_create_garbage(alice: AuthenticatedClient) -> None:
    rep = alice.send(DC.Req(device_certificate=b"garbage", redacted_device_certificate=b"garbage"))
    assert isinstance(rep, DC.RepInvalidCertificate), rep


def test_device_create_already_exists(alice: AuthenticatedClient) -> None:
    device_id, _, req = new_device_req(alice)
    assert isinstance(alice.send(req), DC.RepOk)
    _, _, req = new_device_req(alice, device_id=device_id)
    rep = alice.send(req)
    assert isinstance(rep, DC.RepDeviceAlreadyExists), rep
    # the id of the bootstrap device too
    _, _, req = new_device_req(alice, device_id=alice.device_id)
    rep = alice.send(req)
    assert isinstance(rep, DC.RepDeviceAlreadyExists), rep


def test_device_create_id_of_other_users_device(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    _, _, req = new_device_req(alice, device_id=bob.device_id)
    rep = alice.send(req)
    assert isinstance(rep, DC.RepDeviceAlreadyExists), rep


@pytest.mark.parametrize("offset", [-3600, 3600])
def test_device_create_timestamp_out_of_ballpark(alice: AuthenticatedClient, offset: int) -> None:
    ts = now().add(seconds=offset)
    _, _, req = new_device_req(alice, timestamp=ts)
    rep = alice.send(req)
    assert isinstance(rep, DC.RepTimestampOutOfBallpark), rep
    assert rep.client_timestamp == ts


def test_device_create_require_greater_timestamp(alice: AuthenticatedClient) -> None:
    earlier = now()
    later = earlier.add(seconds=1)
    _, _, req = new_device_req(alice, timestamp=later)
    assert isinstance(alice.send(req), DC.RepOk)
    _, _, req = new_device_req(alice, timestamp=earlier)
    rep = alice.send(req)
    assert isinstance(rep, DC.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == later


def test_device_create_common_topic_shared_with_users(alice: AuthenticatedClient) -> None:
    # a user creation moves the common topic: a device older than it is refused
    earlier = now()
    later = earlier.add(seconds=1)
    certs = build_user_certs(
        alice.organization_id, alice.device, alice.device.signing_key, name="bob", timestamp=later
    )
    assert isinstance(alice.send(user_create_req(certs)), AC.user_create.RepOk)
    _, _, req = new_device_req(alice, timestamp=earlier)
    rep = alice.send(req)
    assert isinstance(rep, DC.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == later
