"""Decoding never raises anything but DecodeError, whatever the body."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_vectors import load

from parsec_server.protocol.codec import DecodeError, packb
from parsec_server.protocol.generated import FAMILIES
from parsec_server.protocol.registry import decode_req

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FAMILY_NAMES = sorted(FAMILIES)
BODIES = [(v["family"], bytes.fromhex(v["hex"])) for v in load("requests.json")]
CMDS = sorted({cmd for mod in FAMILIES.values() for cmd in mod.REQS})


def _decode(family: str, body: bytes) -> None:
    try:
        decode_req(family, body)
    except DecodeError:
        pass


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=40),
    st.uuids(),
    st.datetimes(timezones=st.just(datetime.UTC)),
    st.builds(msgpack.ExtType, st.integers(0, 10), st.binary(max_size=20)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=10), st.uuids()), inner, max_size=4),
    ),
    max_leaves=20,
)


@SETTINGS
@given(st.sampled_from(FAMILY_NAMES), st.binary(max_size=200))
def test_random_bytes(family: str, body: bytes) -> None:
    _decode(family, body)


@SETTINGS
@given(
    st.sampled_from(FAMILY_NAMES),
    st.sampled_from(CMDS),
    st.dictionaries(st.text(max_size=30), values, max_size=8),
)
def test_random_fields(family: str, cmd: str, fields: dict[str, Any]) -> None:
    _decode(family, packb({**fields, "cmd": cmd}))


@SETTINGS
@given(st.sampled_from(BODIES), st.data())
def test_mutated_official_bodies(case: tuple[str, bytes], data: st.DataObject) -> None:
    family, body = case
    mutated = bytearray(body)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(mutated) - 1))
        mutated[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    _decode(family, bytes(mutated))
    _decode(family, bytes(mutated[:cut]))


@SETTINGS
@given(st.sampled_from(BODIES), st.data())
def test_field_values_replaced(case: tuple[str, bytes], data: st.DataObject) -> None:
    family, body = case
    obj = msgpack.unpackb(body, strict_map_key=False)
    keys = [k for k in obj if k != "cmd"]
    if keys:
        key = data.draw(st.sampled_from(keys))
        obj[key] = data.draw(values)
    _decode(family, packb(obj))


def test_deep_nesting() -> None:
    deep: Any = b"x"
    for _ in range(3000):
        deep = [deep]
    _decode("authenticated", b"\x82\xa3cmd\xa4ping\xa4ping" + b"\x91" * 3000 + b"\xc0")
    _decode(
        "authenticated",
        packb({"cmd": "vlob_read_batch", "realm_id": uuid.uuid4(), "vlobs": [[[]]], "at": None}),
    )
