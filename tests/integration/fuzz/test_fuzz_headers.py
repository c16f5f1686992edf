"""Property tests on the handshake: random Api-Version, Content-Type, Accept, Authorization (device
and invitation tokens taken apart and re-signed), Last-Event-ID, methods and paths, sent as raw
ASGI requests (any header bytes) to every RPC route and to the SSE route.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from typing import Any

import nacl.signing
import pytest
from fuzz_support import (
    API_VERSION,
    OTHER_STATUSES,
    ROUTE_FAMILIES,
    RPC_STATUSES,
    FuzzServer,
    Reply,
    fuzz_settings,
)
from hypothesis import given
from hypothesis import strategies as st

from parsec_server.protocol.codec import packb

API_VERSIONS = st.one_of(
    st.sampled_from(
        [
            b"5.5",
            b"5.0",
            b"5.99",
            b"5.4294967295",
            b"5.4294967296",
            b"5.99999999999",
            b"4.0",
            b"6.0",
            b"5",
            b"5.",
            b".5",
            b"5.5.5",
            b" 5.5",
            b"5.-1",
            b"+5.5",
            b"5.5 ",
            b"05.05",
            b"\xef\xbc\x95.5",
            b"",
            b"5.5\x00",
            "\u0665.\u0665".encode(),
            b"5.1e3",
            b"0x5.5",
        ]
    ),
    st.binary(max_size=12),
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            b"application/msgpack",
            b"application/msgpack; charset=utf-8",
            b"APPLICATION/MSGPACK",
            b"",
            b"text/plain",
            b"application/json",
            b"application/msgpack\x00",
            b" application/msgpack",
        ]
    ),
    st.binary(max_size=30),
)
ACCEPTS = st.one_of(
    st.sampled_from(
        [
            b"text/event-stream",
            b"text/event-stream; charset=utf-8",
            b"*/*",
            b"",
            b"TEXT/EVENT-STREAM",
        ]
    ),
    st.binary(max_size=20),
)
METHODS = st.sampled_from(
    ["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "FOO"]
)
_B64_BAD = [
    "",
    "=",
    "====",
    "!!!!",
    "a" * 1000,
    "QUJD",
    "QUJDRA",
    "QUJDRA=",
    "QUJDRA===",
    "\u00e9\u00e9==",
]


@st.composite
def device_token(draw: st.DrawFn, fz: FuzzServer) -> bytes:
    """`Bearer PARSEC-SIGN-ED25519.<id>.<seconds>.<b64 signature>` with any part varied, the
    signature made over the varied text (so odd-but-valid spellings authenticate)."""
    device = draw(st.sampled_from([fz.alice, fz.alice, fz.bob]))
    prefix = draw(
        st.sampled_from(
            ["PARSEC-SIGN-ED25519"] * 6
            + ["parsec-sign-ed25519", "PARSEC-MAC-BLAKE2B", "", "PARSEC-SIGN-ED25519.x"]
        )
    )
    did = device.device_id
    id_text = draw(
        st.sampled_from(
            [did.hex] * 6
            + [
                did.hex.upper(),
                str(did),
                "{" + str(did) + "}",
                "urn:uuid:" + str(did),
                did.hex[:-1],
                did.hex + "0",
                "z" * 32,
                uuid.uuid4().hex,
                "",
                "\u0661" * 32,
                did.hex + "\x00",
            ]
        )
    )
    t = int(time.time())
    seconds = draw(
        st.sampled_from(
            [str(t)] * 6
            + [
                str(t - 1000),
                str(t + 1000),
                "",
                "-0",
                f"+{t}",
                f"{t:_}",
                "9" * 30,
                "-" + "9" * 30,
                "0x10",
                f" {t}",
                "\u0661\u0662",
                "1e9",
                str(2**63),
                "-8334632851201",
                "8210266876800",
                "0",
            ]
        )
    )
    signed = f"{prefix}.{id_text}.{seconds}"
    key = draw(st.sampled_from([device.signing_key] * 5 + [nacl.signing.SigningKey.generate()]))
    try:
        signature = key.sign(signed.encode("utf-8")).signature
    except UnicodeEncodeError:
        signature = b"\x00" * 64
    sig_text = draw(
        st.sampled_from(
            [base64.urlsafe_b64encode(signature).decode()] * 5
            + [
                base64.urlsafe_b64encode(signature).decode().rstrip("="),
                base64.b64encode(signature).decode(),
                base64.urlsafe_b64encode(signature[:-1]).decode(),
                base64.urlsafe_b64encode(signature + b"\x00").decode(),
                *_B64_BAD,
            ]
        )
    )
    token = f"{signed}.{sig_text}"
    if draw(st.integers(0, 9)) == 0:
        token = token.replace(".", draw(st.sampled_from(["..", ". ", ""])), 1)
    scheme = draw(
        st.sampled_from(
            ["Bearer "] * 6 + ["bearer ", "BEARER  ", "Basic ", "", "Bearer\t", "Bearer"]
        )
    )
    trailer = draw(st.sampled_from([""] * 6 + [" extra", " ", "\x00"]))
    return (scheme + token + trailer).encode("utf-8", "surrogatepass")


@st.composite
def invitation_token(draw: st.DrawFn, fz: FuzzServer) -> bytes:
    tok = fz.invitation_token.hex()
    text = draw(
        st.sampled_from(
            [tok] * 5
            + [
                tok.upper(),
                tok[:-1],
                tok + "0",
                "g" * 32,
                uuid.uuid4().hex,
                str(uuid.UUID(tok)),
                "",
                "\u0661" * 32,
            ]
        )
    )
    scheme = draw(st.sampled_from(["Bearer "] * 5 + ["bearer ", "Basic ", "", "Bearer  "]))
    return (scheme + text).encode("utf-8")


@st.composite
def account_token(draw: st.DrawFn, fz: FuzzServer) -> bytes:
    """`Bearer PARSEC-MAC-BLAKE2B.<method id>.<seconds>.<mac>` (protocol.md §1.6), each part valid
    (mostly) or mangled."""
    mid = fz.account_method_id
    prefix = draw(st.sampled_from(["PARSEC-MAC-BLAKE2B"] * 6 + ["PARSEC-SIGN-ED25519", "", "x"]))
    id_text = draw(st.sampled_from([mid.hex] * 6 + [str(mid), mid.hex[:-1], uuid.uuid4().hex, ""]))
    t = int(time.time())
    seconds = draw(st.sampled_from([str(t)] * 6 + [str(t - 1000), "", "-0", "9" * 30, "1e9"]))
    signed = f"{prefix}.{id_text}.{seconds}".encode()
    key = draw(st.sampled_from([fz.account_mac_key] * 5 + [b"k" * 32]))
    mac = hashlib.blake2b(signed, key=key, digest_size=64).digest()
    mac_text = draw(
        st.sampled_from(
            [base64.urlsafe_b64encode(mac).decode()] * 5
            + [
                base64.urlsafe_b64encode(mac).decode().rstrip("="),
                base64.urlsafe_b64encode(mac[:-1]).decode(),
                *_B64_BAD,
            ]
        )
    )
    scheme = draw(st.sampled_from(["Bearer "] * 6 + ["bearer ", "Basic ", "", "Bearer\t"]))
    return f"{scheme}{signed.decode()}.{mac_text}".encode()


def authorizations(fz: FuzzServer, family: str) -> st.SearchStrategy[bytes | None]:
    if family in ("authenticated", "tos"):
        good: st.SearchStrategy[Any] = device_token(fz)
    elif family == "authenticated_account":
        good = account_token(fz)
    elif family == "invited":
        good = invitation_token(fz)
    else:
        good = st.one_of(device_token(fz), invitation_token(fz))
    return st.one_of(good, good, good, st.none(), st.binary(max_size=60))


def _path(fz: FuzzServer, family: str, org: str) -> str:
    return {
        "anonymous": f"/anonymous/{org}",
        "anonymous_server": "/anonymous_server",
        "invited": f"/invited/{org}",
        "authenticated": f"/authenticated/{org}",
        "tos": f"/authenticated/{org}/tos",
        "authenticated_account": "/authenticated_account",
    }[family]


ORG_IDS = st.one_of(
    st.sampled_from(
        [
            "NoSuchOrg",
            "a" * 32,
            "a" * 33,
            "",
            ".",
            "..",
            "%00",
            "Org\u00e9",
            "e\u0301",
            "\U0001f600",
            "a/b",
            "a b",
            "x" * 1000,
            "-",
            "_",
            "\x00",
            "Org;rm",
        ]
    ),
    st.text(max_size=40),
)


@pytest.mark.parametrize("family", ROUTE_FAMILIES)
def test_random_headers(fz: FuzzServer, family: str) -> None:
    """Each header valid, missing, duplicated or garbage; the body a valid `ping` (or garbage)."""

    @fuzz_settings(200)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        headers: list[tuple[bytes, bytes]] = []
        for name, strategy in (
            (b"api-version", API_VERSIONS),
            (b"content-type", CONTENT_TYPES),
            (b"authorization", authorizations(fz, family)),
        ):
            good = {
                b"api-version": API_VERSION.encode(),
                b"content-type": b"application/msgpack",
            }.get(name)
            choice = data.draw(st.sampled_from(["good", "good", "fuzz", "missing", "twice"]))
            if choice == "missing":
                continue
            value = data.draw(strategy) if choice != "good" or good is None else good
            if value is None:
                continue
            headers.append((name, value))
            if choice == "twice":
                headers.append((name, data.draw(strategy) or b""))
        headers += data.draw(
            st.lists(
                st.tuples(
                    st.sampled_from(
                        [b"content-length", b"accept", b"x-foo", b"host", b"transfer-encoding"]
                    ),
                    st.binary(max_size=20),
                ),
                max_size=2,
            )
        )
        body = data.draw(
            st.sampled_from([packb({"cmd": "ping", "ping": "hi"})] * 3 + [b"", b"\xc1", b"\x80"])
        )
        method = data.draw(METHODS)
        org = data.draw(st.sampled_from([fz.org_id] * 3 + ["NoSuchOrg"]))
        reply = fz.run(fz.raw(method, _path(fz, family, org), headers, [body]))
        check_any(fz, reply)
        if reply.status == 200 and method == "POST":
            assert fz.check_rpc(reply) == {"status": "ok", "pong": "hi"}, reply

    run()


def check_any(fz: FuzzServer, reply: Reply, extra: frozenset[int] = frozenset()) -> None:
    fz.check_status(reply, RPC_STATUSES | extra)


@pytest.mark.parametrize("shape", ["rpc", "any"])
def test_random_paths(fz: FuzzServer, shape: str) -> None:
    """Odd organization ids in every route (too long, empty, non-NFC, control characters, slashes),
    and arbitrary paths: a 404/405 (or a protocol status), never a 500."""

    @fuzz_settings(150)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        if shape == "rpc":
            family = data.draw(st.sampled_from(ROUTE_FAMILIES))
            path = _path(fz, family, data.draw(ORG_IDS))
            if data.draw(st.integers(0, 4)) == 0:
                path = f"/authenticated/{data.draw(ORG_IDS)}/events"
        else:
            path = "/" + "/".join(data.draw(st.lists(st.text(max_size=12), max_size=4)))
        method = data.draw(METHODS)
        _, good = fz.route(data.draw(st.sampled_from(ROUTE_FAMILIES)))
        headers = [(k.lower().encode(), v.encode()) for k, v in good.items()]
        if path.endswith("/events"):
            headers.append((b"accept", b"text/event-stream"))
        reply = fz.run(
            fz.raw(method, path, headers, [packb({"cmd": "ping", "ping": "x"})], stream=True)
        )
        check_any(fz, reply, OTHER_STATUSES | {400})

    run()


def test_sse_random_headers(fz: FuzzServer) -> None:
    """GET /authenticated/<org>/events: Accept, Api-Version, Authorization and Last-Event-ID
    varied; a 200 is an event stream starting with the ORGANIZATION_CONFIG frame."""
    last_ids = st.one_of(
        st.sampled_from(
            [
                uuid.uuid4().hex.encode(),
                str(uuid.uuid4()).encode(),
                b"",
                b"x",
                b"0" * 32,
                b"\xff\xfe",
                b"{" + uuid.uuid4().hex.encode() + b"}",
            ]
        ),
        st.binary(max_size=40),
    )

    @fuzz_settings(150)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        headers: list[tuple[bytes, bytes]] = []
        for name, strategy, good in (
            (b"api-version", API_VERSIONS, API_VERSION.encode()),
            (b"accept", ACCEPTS, b"text/event-stream"),
            (b"authorization", authorizations(fz, "authenticated"), None),
            (b"last-event-id", last_ids, None),
        ):
            choice = data.draw(st.sampled_from(["good", "good", "fuzz", "missing"]))
            if choice == "missing" or (
                choice == "good" and good is None and name == b"last-event-id"
            ):
                continue
            value = good if choice == "good" and good is not None else data.draw(strategy)
            if value is not None:
                headers.append((name, value))
        org = data.draw(st.sampled_from([fz.org_id] * 4 + ["NoSuchOrg", fz.fresh_org_id]))
        reply = fz.run(fz.raw("GET", f"/authenticated/{org}/events", headers, stream=True))
        check_any(fz, reply)
        if reply.status == 200:
            assert reply.headers["content-type"].startswith("text/event-stream"), reply
            assert reply.body.startswith(b"data:"), reply

    run()
