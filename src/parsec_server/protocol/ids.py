"""Identifiers and small validated values of the protocol (protocol.md §2.2).

Every UUID id is a `uuid.UUID` at run time; the NewTypes only keep them apart for mypy.
String values keep the exact rules of the official library (observed on parsec-cloud 3.9.3):

* OrganizationID: NFC-normalized, `^[\\w-]{1,32}$`, at most 32 bytes of UTF-8.
* EmailAddress: ASCII only; local part = dot-atom (no part starting or ending with `-`) or quoted
  string, domain = same dot-atom rule or `[literal]`; one optional blank around the parts; the
  original string is kept as is. (Approximates the official parser, checked by golden vectors.)
* HumanHandle label: NFC-normalized, 1 to 254 bytes, none of `" , : ; < > @ [ \\ ]`.
* DeviceLabel: NFC-normalized, 1 to 255 bytes.
* ValidationCode: 6 characters of the RFC 4648 base32 alphabet (upper case).
"""

from __future__ import annotations

import datetime
import re
import unicodedata
import uuid
from typing import NamedTuple, NewType, TypeAlias

__all__ = [
    "AccountAuthMethodID",
    "AsyncEnrollmentID",
    "BlockID",
    "DateTime",
    "DeviceID",
    "GreetingAttemptID",
    "HumanHandle",
    "OrganizationID",
    "SequesterServiceID",
    "TOTPOpaqueKeyID",
    "UserID",
    "VlobID",
    "is_valid_device_label",
    "is_valid_email",
    "is_valid_human_label",
    "is_valid_organization_id",
    "is_valid_validation_code",
    "normalize_device_label",
    "normalize_human_label",
    "parse_uuid",
    "redacted_email",
]

DateTime: TypeAlias = datetime.datetime

UserID = NewType("UserID", uuid.UUID)
DeviceID = NewType("DeviceID", uuid.UUID)
VlobID = NewType("VlobID", uuid.UUID)  # realm ids are VlobIDs too
BlockID = NewType("BlockID", uuid.UUID)
GreetingAttemptID = NewType("GreetingAttemptID", uuid.UUID)
SequesterServiceID = NewType("SequesterServiceID", uuid.UUID)
AsyncEnrollmentID = NewType("AsyncEnrollmentID", uuid.UUID)
AccountAuthMethodID = NewType("AccountAuthMethodID", uuid.UUID)
TOTPOpaqueKeyID = NewType("TOTPOpaqueKeyID", uuid.UUID)
OrganizationID = NewType("OrganizationID", str)


class HumanHandle(NamedTuple):
    """`[email, label]` on the wire: a NamedTuple packs to exactly that msgpack array."""

    email: str
    label: str


# --- OrganizationID ------------------------------------------------------------------------------

_ORG_RE = re.compile(r"[\w-]{1,32}")


def is_valid_organization_id(value: str | bytes) -> bool:
    """Syntax check done before any lookup (an invalid id answers 404, protocol.md §1.3)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return False
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    return _ORG_RE.fullmatch(value) is not None and len(value.encode("utf-8")) <= 32


def normalize_organization_id(value: str) -> OrganizationID:
    """Raise ValueError if invalid; returns the NFC form used as the database key."""
    if not is_valid_organization_id(value):
        raise ValueError("Invalid OrganizationID")
    return OrganizationID(unicodedata.normalize("NFC", value))


# --- Email ---------------------------------------------------------------------------------------

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_ATEXT_NO_DASH = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~]"
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_LABEL = rf"{_ATEXT_NO_DASH}(?:{_ATEXT}*{_ATEXT_NO_DASH})?"
_EMAIL_RE = re.compile(
    rf"[ \t]?(?:{_LABEL}(?:\.{_LABEL})*|{_QUOTED})[ \t]?@[ \t]?"
    rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[\x21-\x5a\x5e-\x7e]*\])[ \t]?"
)


def is_valid_email(value: str) -> bool:
    return value.isascii() and _EMAIL_RE.fullmatch(value) is not None


def redacted_email(user_id: uuid.UUID) -> str:
    """What clients display for a redacted certificate (protocol.md §2.4)."""
    return f"{user_id.hex}@redacted.invalid"


# --- Labels --------------------------------------------------------------------------------------

_HUMAN_LABEL_FORBIDDEN = re.compile(r'[",:;<>@\[\\\]]')


def _storable_utf8_size(value: str) -> int:
    """UTF-8 size of a text PostgreSQL can store, or -1: a NUL or a lone surrogate makes a label
    invalid here (the database would refuse it later, as an internal error)."""
    if "\x00" in value:
        return -1
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return -1


def normalize_human_label(value: str) -> str | None:
    """The NFC form of a valid HumanHandle label, None if invalid."""
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    size = _storable_utf8_size(value)
    if not 0 < size <= 254 or _HUMAN_LABEL_FORBIDDEN.search(value):
        return None
    return value


def is_valid_human_label(value: str) -> bool:
    return normalize_human_label(value) is not None


def normalize_device_label(value: str) -> str | None:
    """The NFC form of a valid DeviceLabel, None if invalid."""
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    if not 0 < _storable_utf8_size(value) <= 255:
        return None
    return value


def is_valid_device_label(value: str) -> bool:
    return normalize_device_label(value) is not None


# The official alphabet: digits 2-9 and A-Z without I and O (no I or O, which read like 1 and 0).
_VALIDATION_CODE_RE = re.compile(r"[A-HJ-NP-Z2-9]{6}")


def is_valid_validation_code(value: str) -> bool:
    return _VALIDATION_CODE_RE.fullmatch(value) is not None


# --- UUID text forms -----------------------------------------------------------------------------

_HEX = "[0-9a-fA-F]"
_UUID_TEXT_RE = re.compile(
    rf"({_HEX}{{32}})"
    rf"|({_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}})"
    rf"|\{{({_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}})\}}"
    rf"|urn:uuid:({_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}})"
)


def parse_uuid(text: str) -> uuid.UUID:
    """Parse the text forms the official `XxxID.from_hex` accepts (32 hex digits, hyphenated,
    `{hyphenated}`, `urn:uuid:hyphenated`; any case). Raise ValueError otherwise.

    Stricter than `uuid.UUID(str)`, which also accepts misplaced hyphens."""
    m = _UUID_TEXT_RE.fullmatch(text)
    if m is None:
        raise ValueError("invalid UUID")
    digits = next(g for g in m.groups() if g is not None)
    return uuid.UUID(hex=digits.replace("-", ""))
