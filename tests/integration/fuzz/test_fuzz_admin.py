"""Property tests on the administration REST API (protocol.md §1.10): JSON garbage, wrong types and
out-of-range values for every known field, odd organization ids, query strings, tokens and Host
headers. Answers stay in 200/400/403/404/405/413/422, never a 500 or a traceback.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fuzz_support import ADMIN_TOKEN, FuzzServer, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

HUGE = [2**31, 2**32, 2**63 - 1, 2**63, 2**64, 10**30, -1, -(2**63), -(10**30)]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from(HUGE),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["", "\x00", "a" * 5000, "2024-01-01T00:00:00Z", "true", "1"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [
    "organization_id",
    "user_profile_outsider_allowed",
    "active_users_limit",
    "realm_minimum_archiving_period_before_deletion",
    "tos",
    "is_expired",
    "frozen",
    "user_id",
    "user_email",
    "send_email",
]


@st.composite
def field_values(draw: st.DrawFn, fz: FuzzServer) -> Any:
    """Plausible values (so some requests succeed) mixed with garbage."""
    return draw(
        st.one_of(
            json_values,
            st.sampled_from(
                [
                    True,
                    False,
                    None,
                    0,
                    5,
                    fz.alice.user_id.hex,
                    str(fz.bob.user_id),
                    "bob@example.com",
                    "alice@example.com",
                    {"fr": "https://x/tos"},
                    {"fr": 5},
                    {},
                    f"Org{uuid.uuid4().hex[:6]}",
                    fz.org_id,
                    "bad org!",
                    "a" * 33,
                    "{" + fz.bob.user_id.hex + "}",
                    fz.bob.user_id.int,
                    "a\x00b",
                    "\ud800",
                    {"fr": "\x00"},
                    2**31,
                    2**63,
                    10**30,
                ]
            ),
        )
    )


@st.composite
def json_bodies(draw: st.DrawFn, fz: FuzzServer) -> bytes:
    kind = draw(st.sampled_from(["fields", "fields", "fields", "json", "raw"]))
    if kind == "raw":
        return draw(
            st.one_of(
                st.binary(max_size=40),
                st.sampled_from(
                    [
                        b"",
                        b"{",
                        b"null",
                        b"[]",
                        b"\xff\xfe",
                        b'{"a":1}{',
                        b"NaN",
                        b'{"active_users_limit": 1e400}',
                        b'{"tos": {"fr": "\\ud800"}}',
                    ]
                ),
            )
        )
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    keys = draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True))
    doc = {k: draw(field_values(fz)) for k in keys}
    doc.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=1)))
    return json.dumps(doc).encode()


def test_admin_random_requests(fz: FuzzServer) -> None:
    orgs = st.one_of(
        st.just(fz.org_id),
        st.just(fz.org_id),
        st.just(fz.fresh_org_id),
        st.sampled_from(["NoSuchOrg", "a" * 33, "%00", "\u00e9", "e\u0301", ""]),
        st.text(max_size=10),
    )
    good_token = f"Bearer {ADMIN_TOKEN}"
    tokens = st.one_of(
        st.just(good_token),
        st.just(good_token),
        st.just(good_token),
        st.just(good_token),
        st.sampled_from(
            [
                f"bearer {ADMIN_TOKEN}",
                f"Bearer  {ADMIN_TOKEN} ",
                "Bearer",
                "Bearer x",
                f"Basic {ADMIN_TOKEN}",
                "",
                ADMIN_TOKEN,
                f"Bearer {ADMIN_TOKEN}\x00",
            ]
        ),
        st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
    )
    queries = st.one_of(
        st.just(b""),
        st.sampled_from(
            [
                b"format=csv",
                b"format=json",
                b"format=xml",
                b"at=2020-01-01T00:00:00Z",
                b"at=garbage",
                b"at=",
                b"at=9999-12-31T23:59:59%2B14:00",
                b"at=0001-01-01",
                b"format=csv&at=2099-01-01",
                b"at=2020-01-01T00:00:00-99:00",
                b"at=%FF%FE",
                b"format",
                b"at=2020-13-45",
                b"at=-1",
                b"at=10000-01-01",
            ]
        ),
        st.binary(max_size=30),
    )

    @fuzz_settings(300)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        org = data.draw(orgs)
        method, path = data.draw(
            st.sampled_from(
                [
                    ("POST", "/administration/organizations"),
                    ("GET", f"/administration/organizations/{org}"),
                    ("PATCH", f"/administration/organizations/{org}"),
                    ("GET", f"/administration/organizations/{org}/stats"),
                    ("GET", f"/administration/organizations/{org}/users"),
                    ("POST", f"/administration/organizations/{org}/users/freeze"),
                    ("POST", f"/administration/organizations/{org}/users/reset_totp"),
                    ("GET", "/administration/stats"),
                    ("DELETE", f"/administration/organizations/{org}"),
                    ("PUT", "/administration/organizations"),
                    ("GET", "/administration/" + data.draw(st.text(max_size=10))),
                ]
            )
        )
        headers = [(b"content-type", b"application/json")]
        token = data.draw(tokens)
        if token:
            headers.append((b"authorization", token.encode("utf-8", "surrogateescape")))
        if data.draw(st.integers(0, 5)) == 0:
            headers.append(
                (
                    b"host",
                    data.draw(
                        st.one_of(
                            st.sampled_from(
                                [
                                    b"[",
                                    b"[::1",
                                    b"example.com:99999",
                                    b"example.com:-1",
                                    b":80",
                                    b"a:b:c",
                                    b"",
                                    b"\xff",
                                    b"[::1]:80",
                                    b"h\x00st",
                                ]
                            ),
                            st.binary(max_size=12),
                        )
                    ),
                )
            )
        body = data.draw(json_bodies(fz)) if method in ("POST", "PATCH", "PUT") else b""
        headers.append((b"content-length", str(len(body)).encode()))
        query = data.draw(queries) if path.endswith("/stats") else b""
        reply = fz.run(fz.raw(method, path, headers, [body], query=query))
        fz.check_admin(reply)
        if reply.status == 200 and reply.headers.get("content-type", "").startswith(
            "application/json"
        ):
            json.loads(reply.body)

    run()
