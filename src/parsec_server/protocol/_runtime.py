"""Support code for the generated command modules (`protocol/generated/`): the `Req` base class
and the checks too long to inline. Nothing here is meant to be called by handlers directly."""

from __future__ import annotations

import datetime
import uuid
from typing import Any, ClassVar, Generic, TypeVar

from parsec_server.protocol import ids
from parsec_server.protocol.codec import DecodeError, packb
from parsec_server.protocol.schema import ARCHIVING_TYPES, PASSWORD_ALGORITHM_FIELDS, U32_MAX

__all__ = [
    "ABSENT",
    "DecodeError",
    "Req",
    "ReqOf",
    "archiving_configuration",
    "as_bytes",
    "as_str",
    "bad",
    "device_label",
    "human_handle",
    "missing",
    "password_algorithm",
]

UUID = uuid.UUID
datetime_cls = datetime.datetime
is_valid_email = ids.is_valid_email
is_valid_organization_id = ids.is_valid_organization_id
is_valid_validation_code = ids.is_valid_validation_code

ABSENT: Any = object()


class Req:
    """Base of every decoded request: immutable by contract (mypy `Final` attributes), slotted.

    `CMD` is the wire name, `FAMILY` the route family ("authenticated"...), `FIELDS` the field
    names in schema order. A field declared `introduced_in` (newer API revision) is None when the
    client left it out; `NonRequiredOption` fields are None when absent or nil."""

    __slots__ = ()
    CMD: ClassVar[str]
    FAMILY: ClassVar[str]
    FIELDS: ClassVar[tuple[str, ...]]
    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        """The request as the client sent it (`cmd` included); None optional fields left out."""
        out: dict[str, Any] = {"cmd": self.CMD}
        for name in self.FIELDS:
            value = getattr(self, name)
            if value is None and name in self.OMIT_IF_NONE:
                continue
            out[name] = value
        return out

    def dump(self) -> bytes:
        return packb(self.to_dict())

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Req)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.CMD, self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{type(self).__name__}({inner})"


RepT_co = TypeVar("RepT_co", covariant=True)


class ReqOf(Req, Generic[RepT_co]):
    """A request whose replies are `RepT_co` (the generated `<Cmd>Rep` union): what ties a handler's
    return type to its command for mypy (commands/registry.py `command`). No run-time effect."""

    __slots__ = ()


def bad(label: str, expected: str) -> DecodeError:
    return DecodeError(f"{label}: expected {expected}")


def missing(exc: KeyError) -> DecodeError:
    return DecodeError(f"missing field {exc.args[0]!r}")


def as_str(value: Any, label: str, expected: str) -> str:
    """The official decoder takes UTF-8 `bin` where a string is expected (serde's str visitor);
    called only once the cheap `str` check failed."""
    if value.__class__ is bytes:
        try:
            text: str = value.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return text
    raise bad(label, expected)


def as_bytes(value: Any, label: str, expected: str) -> bytes:
    """The official decoder takes a `str` (its UTF-8 bytes) or an array of u8 where bytes are
    expected (serde_bytes' visitor); called only once the cheap `bytes` check failed."""
    cls = value.__class__
    if cls is str:
        encoded: bytes = value.encode("utf-8")
        return encoded
    if cls is list and all(x.__class__ is int and 0 <= x <= 255 for x in value):
        return bytes(value)
    raise bad(label, expected)


def human_handle(value: Any, label: str) -> ids.HumanHandle:
    """`[email, label]`; the label comes back NFC-normalized like the official HumanHandle."""
    if value.__class__ is not list or len(value) != 2:
        raise bad(label, "HumanHandle")
    email, name = value
    if email.__class__ is not str:
        email = as_str(email, label, "HumanHandle")
    if name.__class__ is not str:
        name = as_str(name, label, "HumanHandle")
    if not is_valid_email(email):
        raise bad(label, "HumanHandle")
    normalized = ids.normalize_human_label(name)
    if normalized is None:
        raise bad(label, "HumanHandle")
    return ids.HumanHandle(email, normalized)


def device_label(value: Any, label: str) -> str:
    if value.__class__ is not str:
        value = as_str(value, label, "DeviceLabel")
    normalized = ids.normalize_device_label(value)
    if normalized is None:
        raise bad(label, "DeviceLabel")
    return normalized


def password_algorithm(value: Any, label: str) -> dict[str, Any]:
    """UntrustedPasswordAlgorithm:
    `{"type": "ARGON2ID", "memlimit_kb": u32, "opslimit": u32, "parallelism": u32}`."""
    if value.__class__ is not dict:
        raise bad(label, "UntrustedPasswordAlgorithm")
    kind = value.get("type")
    if kind.__class__ is not str:
        kind = as_str(kind, label, "UntrustedPasswordAlgorithm")
    if kind != "ARGON2ID":
        raise bad(label, "UntrustedPasswordAlgorithm")
    out: dict[str, Any] = {"type": "ARGON2ID"}
    for key in PASSWORD_ALGORITHM_FIELDS:
        item = value.get(key)
        if item.__class__ is not int or not 0 <= item <= U32_MAX:
            raise bad(f"{label}.{key}", "u32")
        out[key] = item
    return out


def archiving_configuration(value: Any, label: str) -> dict[str, Any]:
    """RealmArchivingConfiguration: `{"type": "AVAILABLE" | "ARCHIVED"}` or
    `{"type": "DELETION_PLANNED", "deletion_date": DateTime}`."""
    if value.__class__ is not dict:
        raise bad(label, "RealmArchivingConfiguration")
    kind = value.get("type")
    if kind.__class__ is not str:
        kind = as_str(kind, label, "RealmArchivingConfiguration")
    if kind not in ARCHIVING_TYPES:
        raise bad(label, "RealmArchivingConfiguration")
    if kind == "DELETION_PLANNED":
        date = value.get("deletion_date")
        if date.__class__ is not datetime_cls:
            raise bad(f"{label}.deletion_date", "DateTime")
        return {"type": kind, "deletion_date": date}
    return {"type": kind}
