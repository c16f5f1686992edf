"""A small Parsec client for black-box compatibility tests.

Requests are built, signed and their replies parsed by the official client library
(`parsec._parsec` from parsec-cloud 3.9.3); this module only adds the HTTP transport (httpx),
the authentication headers, the administration REST API and helpers that build valid
certificate sets. Nothing here knows about the server implementation under test.
"""

from __future__ import annotations

import base64
import functools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import parsec._parsec as p

AC = p.authenticated_cmds.latest
ANC = p.anonymous_cmds.latest
IC = p.invited_cmds.latest
TC = p.tos_cmds.latest

API_VERSION = "5.5"  # what this client (the 3.9.3 library) speaks
# What the server announces: the official 3.9.3 server 5.5, ours 5.6 (it serves 5.x clients alike).
SERVER_API_VERSION = "5.6" if os.environ.get("PARSEC_COMPAT_TARGET") == "ours" else "5.5"
MSGPACK = "application/msgpack"
# Ballpark used by the official server (and clients): -300 s < server - client < 320 s.
BALLPARK_EARLY = 300.0
BALLPARK_LATE = 320.0


def now() -> p.DateTime:
    return p.DateTime.now()


def new_org_id(prefix: str = "Compat") -> str:
    return f"{prefix}{uuid.uuid4().hex[:16]}"


def rep_module(req: Any) -> Any:
    """The protocol module (`...authenticated_cmds.v5.ping`) a request object belongs to."""
    path = type(req).__module__.split(".")
    assert path[:2] == ["parsec", "_parsec"], path
    mod: Any = p
    for part in path[2:]:
        mod = getattr(mod, part)
    return mod


def load_rep(req: Any, body: bytes) -> Any:
    return rep_module(req).Rep.load(body)


# --- tiny msgpack encoder, only to craft malformed requests ---------------------------------------


def mp_str(s: str) -> bytes:
    b = s.encode()
    assert len(b) < 256
    return (bytes([0xA0 | len(b)]) if len(b) < 32 else bytes([0xD9, len(b)])) + b


def mp_map(items: dict[str, bytes]) -> bytes:
    """`items` maps a key to an already encoded value."""
    assert len(items) < 16
    return bytes([0x80 | len(items)]) + b"".join(mp_str(k) + v for k, v in items.items())


# --- identities -------------------------------------------------------------------------------


@dataclass
class Device:
    """A device's secrets as the client knows them."""

    organization_id: str
    user_id: p.UserID
    device_id: p.DeviceID
    signing_key: p.SigningKey
    private_key: p.PrivateKey
    human_handle: p.HumanHandle
    device_label: p.DeviceLabel
    profile: p.UserProfile

    @property
    def verify_key(self) -> p.VerifyKey:
        return self.signing_key.verify_key

    @property
    def email(self) -> str:
        return self.human_handle.email.str


def human(name: str, domain: str = "example.com") -> p.HumanHandle:
    return p.HumanHandle(p.EmailAddress(f"{name.lower()}@{domain}"), name.capitalize())


@dataclass
class UserCerts:
    """The four certificates of a user_create / organization_bootstrap plus the new device."""

    device: Device
    user_certificate: bytes
    redacted_user_certificate: bytes
    device_certificate: bytes
    redacted_device_certificate: bytes
    timestamp: p.DateTime


def build_user_certs(
    organization_id: str,
    author: Device | None,
    signing_key: p.SigningKey,
    *,
    name: str = "alice",
    human_handle: p.HumanHandle | None = None,
    profile: p.UserProfile = p.UserProfile.STANDARD,
    timestamp: p.DateTime | None = None,
    device_timestamp: p.DateTime | None = None,
    user_id: p.UserID | None = None,
    device_id: p.DeviceID | None = None,
) -> UserCerts:
    """Certificates for a new user and its first device, signed by `signing_key`
    (the root key when `author` is None, else the author device's key)."""
    ts = timestamp or now()
    user_id = user_id or p.UserID.new()
    device_id = device_id or p.DeviceID.new()
    hh = human_handle or human(name)
    label = p.DeviceLabel(f"{name}-dev1")
    dev = Device(
        organization_id=organization_id,
        user_id=user_id,
        device_id=device_id,
        signing_key=p.SigningKey.generate(),
        private_key=p.PrivateKey.generate(),
        human_handle=hh,
        device_label=label,
        profile=profile,
    )
    author_id = author.device_id if author else None
    user = p.UserCertificate(
        author=author_id,
        timestamp=ts,
        user_id=user_id,
        human_handle=hh,
        public_key=dev.private_key.public_key,
        algorithm=p.PrivateKeyAlgorithm.X25519_XSALSA20_POLY1305,
        profile=profile,
    )
    redacted_user = p.UserCertificate(
        author=author_id,
        timestamp=ts,
        user_id=user_id,
        human_handle=None,
        public_key=dev.private_key.public_key,
        algorithm=p.PrivateKeyAlgorithm.X25519_XSALSA20_POLY1305,
        profile=profile,
    )
    dts = device_timestamp or ts
    device = device_cert(author_id, dts, user_id, device_id, label, dev.verify_key)
    redacted_device = device_cert(author_id, dts, user_id, device_id, None, dev.verify_key)
    return UserCerts(
        device=dev,
        user_certificate=user.dump_and_sign(signing_key),
        redacted_user_certificate=redacted_user.dump_and_sign(signing_key),
        device_certificate=device.dump_and_sign(signing_key),
        redacted_device_certificate=redacted_device.dump_and_sign(signing_key),
        timestamp=ts,
    )


def device_cert(
    author: p.DeviceID | None,
    timestamp: p.DateTime,
    user_id: p.UserID,
    device_id: p.DeviceID,
    label: p.DeviceLabel | None,
    verify_key: p.VerifyKey,
) -> p.DeviceCertificate:
    return p.DeviceCertificate(
        author=author,
        timestamp=timestamp,
        purpose=p.DevicePurpose.STANDARD,
        user_id=user_id,
        device_id=device_id,
        device_label=label,
        verify_key=verify_key,
        algorithm=p.SigningKeyAlgorithm.ED25519,
    )


def user_cert_with(raw: bytes, **changes: Any) -> p.UserCertificate:
    """The user certificate `raw` (signature not checked) with some fields changed."""
    base = p.UserCertificate.unsecure_load(raw)
    fields = {
        "author": base.author,
        "timestamp": base.timestamp,
        "user_id": base.user_id,
        "human_handle": None if base.is_redacted else base.human_handle,
        "public_key": base.public_key,
        "algorithm": base.algorithm,
        "profile": base.profile,
    }
    fields.update(changes)
    return p.UserCertificate(**fields)


def device_cert_with(raw: bytes, **changes: Any) -> p.DeviceCertificate:
    """The device certificate `raw` (signature not checked) with some fields changed
    (`label` for the device label)."""
    base = p.DeviceCertificate.unsecure_load(raw)
    fields = {
        "author": base.author,
        "timestamp": base.timestamp,
        "user_id": base.user_id,
        "device_id": base.device_id,
        "label": None if base.is_redacted else base.device_label,
        "verify_key": base.verify_key,
    }
    fields.update(changes)
    return device_cert(**fields)


def bootstrap_req(certs: UserCerts, root_key: p.SigningKey, token: p.AccessToken | None) -> Any:
    return ANC.organization_bootstrap.Req(
        bootstrap_token=token,
        root_verify_key=root_key.verify_key,
        user_certificate=certs.user_certificate,
        device_certificate=certs.device_certificate,
        redacted_user_certificate=certs.redacted_user_certificate,
        redacted_device_certificate=certs.redacted_device_certificate,
        sequester_authority_certificate=None,
    )


def user_create_req(certs: UserCerts) -> Any:
    return AC.user_create.Req(
        user_certificate=certs.user_certificate,
        device_certificate=certs.device_certificate,
        redacted_user_certificate=certs.redacted_user_certificate,
        redacted_device_certificate=certs.redacted_device_certificate,
    )


# --- transport --------------------------------------------------------------------------------


def auth_token(device_id: p.DeviceID, signing_key: p.SigningKey, seconds: int | None = None) -> str:
    """`PARSEC-SIGN-ED25519.<device hex>.<unix seconds>.<urlsafe b64 signature, padded>`."""
    ts = now().as_timestamp_seconds() if seconds is None else seconds
    signed_part = f"PARSEC-SIGN-ED25519.{device_id.hex}.{ts}"
    signature = signing_key.sign_only_signature(signed_part.encode())
    return f"{signed_part}.{base64.urlsafe_b64encode(signature).decode()}"


class RpcError(AssertionError):
    """A command answered with another HTTP status than 200."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(
            f"HTTP {response.status_code} {response.request.url}: {response.content[:200]!r}"
        )
        self.response = response


class _RpcClient:
    route: str = ""

    def __init__(self, http: httpx.Client, organization_id: str) -> None:
        self.http = http
        self.organization_id = organization_id

    def url(self, suffix: str = "") -> str:
        return f"/{self.route}/{self.organization_id}{suffix}"

    def auth_headers(self) -> dict[str, str]:
        return {}

    def headers(self, **extra: str) -> dict[str, str]:
        h = {"Api-Version": API_VERSION, "Content-Type": MSGPACK, **self.auth_headers()}
        h.update(extra)
        return h

    def post(
        self,
        body: bytes,
        headers: dict[str, str] | None = None,
        suffix: str = "",
    ) -> httpx.Response:
        """Raw POST; `headers` replaces the default ones entirely when given."""
        return self.http.post(
            self.url(suffix), content=body, headers=self.headers() if headers is None else headers
        )

    def send(self, req: Any, suffix: str = "") -> Any:
        """Send a command, check the HTTP layer, return the parsed reply."""
        r = self.post(req.dump(), suffix=suffix)
        if r.status_code != 200:
            raise RpcError(r)
        assert r.headers.get("content-type") == MSGPACK, r.headers
        assert r.headers.get("api-version") == SERVER_API_VERSION, r.headers
        return load_rep(req, r.content)

    # The common commands, by name -------------------------------------------------------------
    def ping(self, ping: str = "hello") -> Any:
        raise NotImplementedError


class AnonymousClient(_RpcClient):
    route = "anonymous"

    def ping(self, ping: str = "hello") -> Any:
        return self.send(ANC.ping.Req(ping=ping))

    def bootstrap(
        self, certs: UserCerts, root_key: p.SigningKey, token: p.AccessToken | None
    ) -> Any:
        return self.send(bootstrap_req(certs, root_key, token))


class InvitedClient(_RpcClient):
    route = "invited"

    def __init__(self, http: httpx.Client, organization_id: str, token: p.AccessToken) -> None:
        super().__init__(http, organization_id)
        self.token = token

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token.hex}"}

    def ping(self, ping: str = "hello") -> Any:
        return self.send(IC.ping.Req(ping=ping))


class AuthenticatedClient(_RpcClient):
    route = "authenticated"

    def __init__(self, http: httpx.Client, device: Device) -> None:
        super().__init__(http, device.organization_id)
        self.device = device

    @property
    def user_id(self) -> p.UserID:
        return self.device.user_id

    @property
    def device_id(self) -> p.DeviceID:
        return self.device.device_id

    def token(self, seconds: int | None = None) -> str:
        return auth_token(self.device.device_id, self.device.signing_key, seconds)

    def auth_headers(self) -> dict[str, str]:
        # A fresh token per request, like the official client.
        return {"Authorization": f"Bearer {self.token()}"}

    def ping(self, ping: str = "hello") -> Any:
        return self.send(AC.ping.Req(ping=ping))

    def tos(self, req: Any) -> Any:
        return self.send(req, suffix="/tos")

    def sign(self, certificate: Any) -> bytes:
        return certificate.dump_and_sign(self.device.signing_key)

    def events(self, timeout: float = 10.0, **headers: str) -> SseStream:
        h = {
            "Api-Version": API_VERSION,
            "Accept": "text/event-stream",
            "Authorization": f"Bearer {self.token()}",
            **headers,
        }
        return SseStream(self.http, self.url("/events"), h, timeout)

    # Helpers building and sending the usual certificates ----------------------------------------
    def certificates(self, **after: Any) -> Any:
        rep = self.send(
            AC.certificate_get.Req(
                common_after=after.get("common_after"),
                sequester_after=after.get("sequester_after"),
                shamir_recovery_after=after.get("shamir_recovery_after"),
                realm_after=after.get("realm_after", {}),
            )
        )
        assert isinstance(rep, AC.certificate_get.RepOk), rep
        return rep

    def create_user(
        self, name: str, profile: p.UserProfile = p.UserProfile.STANDARD, **kwargs: Any
    ) -> AuthenticatedClient:
        certs = build_user_certs(
            self.organization_id,
            self.device,
            self.device.signing_key,
            name=name,
            profile=profile,
            **kwargs,
        )
        rep = self.send(user_create_req(certs))
        assert isinstance(rep, AC.user_create.RepOk), rep
        return AuthenticatedClient(self.http, certs.device)

    def create_device(self, label: str = "dev2") -> AuthenticatedClient:
        ts = now()
        d = self.device
        new = Device(
            organization_id=d.organization_id,
            user_id=d.user_id,
            device_id=p.DeviceID.new(),
            signing_key=p.SigningKey.generate(),
            private_key=d.private_key,
            human_handle=d.human_handle,
            device_label=p.DeviceLabel(label),
            profile=d.profile,
        )
        cert = device_cert(
            d.device_id, ts, d.user_id, new.device_id, new.device_label, new.verify_key
        )
        redacted = device_cert(d.device_id, ts, d.user_id, new.device_id, None, new.verify_key)
        rep = self.send(
            AC.device_create.Req(
                device_certificate=self.sign(cert), redacted_device_certificate=self.sign(redacted)
            )
        )
        assert isinstance(rep, AC.device_create.RepOk), rep
        return AuthenticatedClient(self.http, new)

    def revoke(self, user_id: p.UserID, timestamp: p.DateTime | None = None) -> Any:
        cert = p.RevokedUserCertificate(
            author=self.device_id, timestamp=timestamp or now(), user_id=user_id
        )
        return self.send(AC.user_revoke.Req(revoked_user_certificate=self.sign(cert)))

    def update_profile(
        self, user_id: p.UserID, profile: p.UserProfile, timestamp: p.DateTime | None = None
    ) -> Any:
        cert = p.UserUpdateCertificate(
            author=self.device_id,
            timestamp=timestamp or now(),
            user_id=user_id,
            new_profile=profile,
        )
        return self.send(AC.user_update.Req(user_update_certificate=self.sign(cert)))

    def realm_create(
        self, realm_id: p.VlobID | None = None, timestamp: p.DateTime | None = None
    ) -> tuple[p.VlobID, Any]:
        realm_id = realm_id or p.VlobID.new()
        cert = p.RealmRoleCertificate(
            author=self.device_id,
            timestamp=timestamp or now(),
            realm_id=realm_id,
            user_id=self.user_id,
            role=p.RealmRole.OWNER,
        )
        return realm_id, self.send(AC.realm_create.Req(realm_role_certificate=self.sign(cert)))

    def rotate_key(
        self,
        realm_id: p.VlobID,
        key_index: int,
        participants: list[p.UserID],
        timestamp: p.DateTime | None = None,
    ) -> Any:
        cert = p.RealmKeyRotationCertificate(
            author=self.device_id,
            timestamp=timestamp or now(),
            realm_id=realm_id,
            key_index=key_index,
            encryption_algorithm=p.SecretKeyAlgorithm.BLAKE2B_XSALSA20_POLY1305,
            hash_algorithm=p.HashAlgorithm.SHA256,
            key_canary=b"canary-" + bytes([key_index]),
        )
        return self.send(
            AC.realm_rotate_key.Req(
                realm_key_rotation_certificate=self.sign(cert),
                per_participant_keys_bundle_access={
                    u: b"access-for-" + u.bytes for u in participants
                },
                per_sequester_service_keys_bundle_access=None,
                keys_bundle=b"keys-bundle-" + bytes([key_index]),
            )
        )

    def new_realm(self) -> p.VlobID:
        """A realm owned by this user, with its first key rotation done (key_index 1)."""
        realm_id, rep = self.realm_create()
        assert isinstance(rep, AC.realm_create.RepOk), rep
        rep = self.rotate_key(realm_id, 1, [self.user_id])
        assert isinstance(rep, AC.realm_rotate_key.RepOk), rep
        return realm_id

    def share(
        self,
        realm_id: p.VlobID,
        user_id: p.UserID,
        role: p.RealmRole | None,
        key_index: int = 1,
        timestamp: p.DateTime | None = None,
    ) -> Any:
        cert = p.RealmRoleCertificate(
            author=self.device_id,
            timestamp=timestamp or now(),
            realm_id=realm_id,
            user_id=user_id,
            role=role,
        )
        if role is None:
            return self.send(AC.realm_unshare.Req(realm_role_certificate=self.sign(cert)))
        return self.send(
            AC.realm_share.Req(
                realm_role_certificate=self.sign(cert),
                recipient_keys_bundle_access=b"access-for-" + user_id.bytes,
                key_index=key_index,
            )
        )


# --- server-sent events -----------------------------------------------------------------------


@dataclass
class SseEvent:
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def event(self) -> str | None:
        return self.fields.get("event")

    @property
    def id(self) -> str | None:
        return self.fields.get("id")

    @property
    def data(self) -> str:
        return self.fields.get("data", "")

    def rep(self) -> Any:
        """The `events_listen` reply carried by a data message."""
        return AC.events_listen.Rep.load(base64.b64decode(self.data))


class SseStream:
    """`with client.events() as stream:` then `stream.response` / `stream.next()`."""

    def __init__(
        self, http: httpx.Client, url: str, headers: dict[str, str], timeout: float
    ) -> None:
        self._cm = http.stream(
            "GET", url, headers=headers, timeout=httpx.Timeout(timeout, read=timeout)
        )
        self.response: httpx.Response
        self._lines: Iterator[str] | None = None

    def __enter__(self) -> SseStream:
        self.response = self._cm.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)

    def next(self) -> SseEvent:
        if self._lines is None:
            self._lines = self.response.iter_lines()
        ev = SseEvent()
        for line in self._lines:
            if line == "":
                if ev.fields:
                    return ev
                continue
            if line.startswith(":"):  # comment
                continue
            name, _, value = line.partition(":")
            ev.fields[name] = value[1:] if value.startswith(" ") else value
        raise EOFError("SSE stream closed")

    def next_data(self) -> SseEvent:
        """The next event carrying data (skips keepalives)."""
        while True:
            ev = self.next()
            if ev.event != "keepalive":
                return ev


# --- administration REST API ------------------------------------------------------------------


class AdminClient:
    def __init__(self, http: httpx.Client, token: str) -> None:
        self.http = http
        self.token = token

    def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        headers.update(kwargs.pop("headers", {}))
        return self.http.request(method, f"/administration{path}", headers=headers, **kwargs)

    def create_org(
        self, organization_id: str | None = None, **config: Any
    ) -> tuple[str, p.AccessToken | None]:
        organization_id = organization_id or new_org_id()
        r = self.request(
            "POST", "/organizations", json={"organization_id": organization_id, **config}
        )
        assert r.status_code == 200, (r.status_code, r.text)
        return organization_id, bootstrap_token_from_url(r.json()["bootstrap_url"])

    def get_org(self, organization_id: str) -> dict[str, Any]:
        r = self.request("GET", f"/organizations/{organization_id}")
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def patch_org(self, organization_id: str, **changes: Any) -> None:
        r = self.request("PATCH", f"/organizations/{organization_id}", json=changes)
        assert r.status_code == 200, (r.status_code, r.text)

    def freeze(
        self, organization_id: str, user_id: p.UserID, frozen: bool = True
    ) -> dict[str, Any]:
        r = self.request(
            "POST",
            f"/organizations/{organization_id}/users/freeze",
            json={"user_id": user_id.hex, "frozen": frozen},
        )
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()


def bootstrap_token_from_url(url: str) -> p.AccessToken | None:
    addr = p.ParsecOrganizationBootstrapAddr.from_url(url)
    return addr.token


def url_query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# --- an organization ready for tests ----------------------------------------------------------


@dataclass
class Org:
    http: httpx.Client
    admin: AdminClient
    organization_id: str
    root_key: p.SigningKey
    alice: AuthenticatedClient  # the bootstrap user, ADMIN

    @functools.cached_property
    def anonymous(self) -> AnonymousClient:
        return AnonymousClient(self.http, self.organization_id)


def bootstrap_org(http: httpx.Client, admin: AdminClient, **config: Any) -> Org:
    org_id, token = admin.create_org(**config)
    root_key = p.SigningKey.generate()
    certs = build_user_certs(org_id, None, root_key, name="alice", profile=p.UserProfile.ADMIN)
    rep = AnonymousClient(http, org_id).bootstrap(certs, root_key, token)
    assert isinstance(rep, ANC.organization_bootstrap.RepOk), rep
    return Org(http, admin, org_id, root_key, AuthenticatedClient(http, certs.device))
