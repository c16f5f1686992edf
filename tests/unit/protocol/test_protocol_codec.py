from __future__ import annotations

import datetime
import uuid

import msgpack
import pytest

from parsec_server.protocol import codec
from parsec_server.protocol.codec import DecodeError, packb, unpackb

UTC = datetime.UTC


def test_datetime_is_ext1_big_endian_microseconds() -> None:
    dt = datetime.datetime(2024, 5, 17, 10, 20, 30, 123456, tzinfo=UTC)
    us = codec.datetime_to_us(dt)
    assert us == 1715941230123456
    assert packb(dt) == b"\xd7\x01" + us.to_bytes(8, "big", signed=True)
    assert unpackb(packb(dt)) == dt
    assert unpackb(packb(dt)).tzinfo is not None


def test_datetime_before_epoch_and_other_timezone() -> None:
    before = codec.datetime_from_us(-5)
    assert before == datetime.datetime(1969, 12, 31, 23, 59, 59, 999995, tzinfo=UTC)
    assert unpackb(packb(before)) == before
    paris = datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert unpackb(packb(paris)) == paris


def test_naive_datetime_refused() -> None:
    with pytest.raises(TypeError):
        packb(datetime.datetime(2024, 1, 1))


def test_uuid_is_ext2_raw_bytes() -> None:
    u = uuid.UUID("2ac3ee5a-12fc-4b3d-89a0-dbe352329440")
    assert packb(u) == b"\xd8\x02" + u.bytes
    decoded = unpackb(packb(u))
    assert type(decoded) is uuid.UUID
    assert decoded == u
    assert hash(decoded) == hash(u)
    assert decoded.hex == u.hex
    assert str(decoded) == str(u)


def test_uuid_map_keys() -> None:
    u1, u2 = uuid.uuid4(), uuid.uuid4()
    data = {u1: [b"a"], u2: []}
    assert unpackb(packb(data)) == data


def test_bytes_and_str_stay_distinct() -> None:
    assert unpackb(packb({"a": b"x", "b": "x"})) == {"a": b"x", "b": "x"}


def test_malformed_ext_decodes_to_exttype() -> None:
    assert unpackb(packb(msgpack.ExtType(1, b"\x00"))) == msgpack.ExtType(1, b"\x00")
    assert unpackb(packb(msgpack.ExtType(2, b"\x00" * 15))) == msgpack.ExtType(2, b"\x00" * 15)
    assert unpackb(packb(msgpack.ExtType(9, b"x"))) == msgpack.ExtType(9, b"x")
    # beyond what datetime can hold
    assert unpackb(packb(msgpack.ExtType(1, (2**63 - 1).to_bytes(8, "big")))).code == 1


@pytest.mark.parametrize(
    "raw", [b"", b"\xc1", b"\x92\x01", b"\xa2\xff\xfe", b"\x81\x91\x01\x01", b"\x91" * 5000]
)
def test_unpack_errors_are_decode_errors(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        unpackb(raw)


def test_trailing_data() -> None:
    with pytest.raises(DecodeError):
        unpackb(packb(1) + b"\x00")
    assert unpackb(packb(1) + b"\xc1", allow_trailing=True) == 1


def test_declared_map_size() -> None:
    assert codec.declared_map_size(packb({})) == 0
    assert codec.declared_map_size(packb({str(i): i for i in range(15)})) == 15
    assert codec.declared_map_size(packb({str(i): i for i in range(16)})) == 16
    assert codec.declared_map_size(packb({str(i): i for i in range(70000)})) == 70000
    assert codec.declared_map_size(packb([1])) == -1
    assert codec.declared_map_size(b"") == -1


def test_now_is_aware_utc() -> None:
    n = codec.now()
    assert n.tzinfo is UTC
    assert abs((datetime.datetime.now(UTC) - n).total_seconds()) < 5
