"""msgpack on the wire (protocol.md §2.1-§2.2).

* DateTime = tz-aware UTC `datetime.datetime`; wire = ext 1, 8 bytes big-endian signed i64
  microseconds since the Unix epoch.
* Every UUID id (UserID, DeviceID, VlobID...) = `uuid.UUID`; wire = ext 2, the 16 raw bytes.
* Bytes = bin (`use_bin_type`), str = str; map keys may be ext values (`strict_map_key=False`).

Decoding never raises anything but `DecodeError`. A malformed ext 1/2 payload, or an ext of another
code, decodes to a `msgpack.ExtType` that no schema field accepts: like the official server, such a
value only matters when a command actually reads that field.
"""

from __future__ import annotations

import datetime as _dt
import struct
import uuid
from typing import Any

import msgpack

__all__ = [
    "DecodeError",
    "datetime_from_us",
    "datetime_to_us",
    "declared_map_size",
    "ext_datetime",
    "ext_uuid",
    "from_ext",
    "now",
    "packb",
    "unpackb",
]

UTC = _dt.UTC
EPOCH = _dt.datetime(1970, 1, 1, tzinfo=UTC)
_I64 = struct.Struct(">q")
_UUID = uuid.UUID
_DATETIME = _dt.datetime
_TIMEDELTA = _dt.timedelta
_ExtType = msgpack.ExtType


class DecodeError(Exception):
    """The bytes are not a valid message (undecodable msgpack or schema mismatch)."""


def datetime_from_us(us: int) -> _dt.datetime:
    """Microseconds since the epoch -> aware UTC datetime (OverflowError beyond year 9999)."""
    return EPOCH + _TIMEDELTA(microseconds=us)


def datetime_to_us(value: _dt.datetime) -> int:
    """Aware datetime -> integer microseconds since the epoch (exact, no float rounding)."""
    td = value - EPOCH
    return (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds


def now() -> _dt.datetime:
    """Current time, UTC, microsecond precision (what the server compares and stores)."""
    return _DATETIME.now(UTC)


# `uuid.UUID(bytes=...)` re-validates its arguments and goes through `object.__setattr__`; ids are
# decoded on every request, so fill the two slots directly (3x faster, same object).
_set_uuid_int = _UUID.__dict__["int"].__set__
_set_uuid_is_safe = _UUID.__dict__["is_safe"].__set__
_SAFE_UNKNOWN = uuid.SafeUUID.unknown
_object_new = object.__new__
_int_from_bytes = int.from_bytes


def _new_uuid(raw: bytes) -> uuid.UUID:
    u = _object_new(_UUID)
    _set_uuid_int(u, _int_from_bytes(raw, "big"))
    _set_uuid_is_safe(u, _SAFE_UNKNOWN)
    return u


def _ext_hook(code: int, data: bytes) -> Any:
    if code == 2:
        if len(data) == 16:
            return _new_uuid(data)
    elif code == 1 and len(data) == 8:
        try:
            return EPOCH + _TIMEDELTA(0, 0, _int_from_bytes(data, "big", signed=True))
        except OverflowError:
            pass
    return _ExtType(code, data)


_tuple_new = tuple.__new__  # ExtType(...) re-validates its fields in Python: skip it
_pack_i64 = _I64.pack


def ext_uuid(raw: bytes) -> msgpack.ExtType:
    """The wire value of an id given as its 16 bytes (PostgreSQL's `uuid_send`): packs as is."""
    return _tuple_new(_ExtType, (2, raw))


def ext_datetime(raw: bytes) -> msgpack.ExtType:
    """The wire value of a DateTime given as the 8 big-endian bytes of its microseconds since the
    epoch (PostgreSQL's `int8send`): packs as is."""
    return _tuple_new(_ExtType, (1, raw))


def from_ext(value: Any) -> Any:
    """An `ext_uuid` / `ext_datetime` value back to UUID / datetime (anything else unchanged)."""
    if value.__class__ is _ExtType:
        return _ext_hook(value[0], value[1])
    return value


def _default(obj: Any) -> Any:
    if isinstance(obj, _UUID):
        return _tuple_new(_ExtType, (2, obj.int.to_bytes(16, "big")))
    if isinstance(obj, _DATETIME):
        if obj.tzinfo is None:
            raise TypeError("naive datetime cannot be serialized")
        td = obj - EPOCH
        return _tuple_new(
            _ExtType, (1, _pack_i64((td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds))
        )
    if isinstance(obj, set | frozenset):
        return list(obj)
    raise TypeError(f"cannot serialize {obj.__class__.__name__}")


_packer_packb = msgpack.Packer(default=_default, use_bin_type=True, autoreset=True).pack
_unpackb = msgpack.unpackb


def packb(obj: Any) -> bytes:
    """Serialize UUID, aware datetime, bytes, int, float, str, bool, None, list/tuple, dict."""
    out: bytes = _packer_packb(obj)
    return out


_ExtraData = msgpack.ExtraData


def unpackb(data: bytes, *, allow_trailing: bool = False) -> Any:
    """Deserialize one msgpack object; raises DecodeError if it is malformed.

    Bytes after the object are an error, unless `allow_trailing` (the official request and
    certificate decoders read one object and ignore whatever follows)."""
    try:
        return _unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except _ExtraData as exc:
        if allow_trailing:
            return exc.unpacked
        raise DecodeError("invalid msgpack: trailing data") from None
    except Exception as exc:  # FormatError, StackError, unhashable key, bad UTF-8, truncated...
        raise DecodeError(f"invalid msgpack: {exc.__class__.__name__}") from None


def declared_map_size(data: bytes) -> int:
    """Entry count announced by the map header that starts `data` (-1 if not a map header).

    Comparing it with the decoded dict's size detects duplicate keys, which the official
    decoder rejects and msgpack silently merges."""
    if not data:
        return -1
    first = data[0]
    if 0x80 <= first <= 0x8F:
        return first & 0x0F
    if first == 0xDE:
        return int.from_bytes(data[1:3], "big")
    if first == 0xDF:
        return int.from_bytes(data[1:5], "big")
    return -1
