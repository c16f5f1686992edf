"""The schema type language (JSON5 schemas, protocol.md §2.2) and a generic value checker.

A type expression is `Name`, `Name<T>`, `Name<K, V>` or a tuple `(A, B, ...)`. `BUILTIN` says what
every name outside a command's `nested_types` means in Python; `tools/gen_protocol.py` compiles the
same rules into straight-line decoders, and `check_value()` interprets them (reply validation in
debug mode, tests). The two are kept in agreement by tests.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from parsec_server.protocol import ids

__all__ = [
    "BUILTIN",
    "Field",
    "NestedType",
    "SchemaError",
    "TypeExpr",
    "Variant",
    "check_value",
    "parse_type",
]

U8_MAX = 2**8 - 1
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


class SchemaError(ValueError):
    """A value does not match its schema type (message = path and reason)."""


# ---------------------------------------------------------------------------------------------
# Type expressions


@dataclass(frozen=True, slots=True)
class TypeExpr:
    """`name` with `args` for generics; name "()" with args for tuples."""

    name: str
    args: tuple[TypeExpr, ...] = ()

    def __str__(self) -> str:
        if self.name == "()":
            return "(" + ", ".join(map(str, self.args)) + ")"
        if self.args:
            return f"{self.name}<{', '.join(map(str, self.args))}>"
        return self.name


@cache
def parse_type(text: str) -> TypeExpr:
    tokens = _tokenize(text)
    expr, pos = _parse(tokens, 0)
    if pos != len(tokens):
        raise ValueError(f"trailing tokens in type {text!r}")
    return expr


def _tokenize(text: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "<>(),":
            out.append(c)
            i += 1
        else:
            j = i
            while j < len(text) and (text[j].isalnum() or text[j] == "_"):
                j += 1
            if j == i:
                raise ValueError(f"bad character {c!r} in type {text!r}")
            out.append(text[i:j])
            i = j
    return out


def _parse(tokens: list[str], pos: int) -> tuple[TypeExpr, int]:
    tok = tokens[pos]
    if tok == "(":
        items, pos = _parse_list(tokens, pos + 1, ")")
        return TypeExpr("()", tuple(items)), pos
    if not (tok[0].isalpha() or tok[0] == "_"):
        raise ValueError(f"unexpected token {tok!r}")
    pos += 1
    if pos < len(tokens) and tokens[pos] == "<":
        args, pos = _parse_list(tokens, pos + 1, ">")
        return TypeExpr(tok, tuple(args)), pos
    return TypeExpr(tok), pos


def _parse_list(tokens: list[str], pos: int, close: str) -> tuple[list[TypeExpr], int]:
    items: list[TypeExpr] = []
    while True:
        item, pos = _parse(tokens, pos)
        items.append(item)
        if tokens[pos] == ",":
            pos += 1
            continue
        if tokens[pos] == close:
            return items, pos + 1
        raise ValueError(f"expected ',' or {close!r}, got {tokens[pos]!r}")


# ---------------------------------------------------------------------------------------------
# Builtin (non-nested) type names
#
# kind: what the decoder checks. Parameters:
#   int: (min, max); fixed_bytes: (size,); enum: (allowed literals,)


@dataclass(frozen=True, slots=True)
class Builtin:
    kind: str
    params: tuple[Any, ...] = ()
    py: str = "Any"  # annotation used in generated classes


_UUID_IDS = (
    "UserID",
    "DeviceID",
    "VlobID",
    "BlockID",
    "GreetingAttemptID",
    "SequesterServiceID",
    "AsyncEnrollmentID",
    "AccountAuthMethodID",
    "TOTPOpaqueKeyID",
)
_KEYS32 = ("PublicKey", "VerifyKey", "SecretKey", "HashDigest", "PrivateKey", "SigningKey")

BUILTIN: dict[str, Builtin] = {
    "Boolean": Builtin("bool", py="bool"),
    "String": Builtin("str", py="str"),
    "Bytes": Builtin("bytes", py="bytes"),
    "Float": Builtin("float", py="float"),
    "Integer": Builtin("int", (I64_MIN, I64_MAX), py="int"),
    "Index": Builtin("int", (0, U64_MAX), py="int"),
    "Size": Builtin("int", (0, U64_MAX), py="int"),
    "Version": Builtin("int", (0, U32_MAX), py="int"),
    "NonZeroInteger": Builtin("int", (1, U64_MAX), py="int"),
    "NonZeroU8": Builtin("int", (1, U8_MAX), py="int"),
    "DateTime": Builtin("datetime", py="DateTime"),
    "AccessToken": Builtin("fixed_bytes", (16,), py="bytes"),
    "SequesterVerifyKeyDer": Builtin("bytes", py="bytes"),
    "SequesterPublicKeyDer": Builtin("bytes", py="bytes"),
    "EmailAddress": Builtin("email", py="str"),
    "HumanHandle": Builtin("human_handle", py="HumanHandle"),
    "DeviceLabel": Builtin("device_label", py="str"),
    "OrganizationID": Builtin("organization_id", py="str"),
    "ValidationCode": Builtin("validation_code", py="str"),
    "ActiveUsersLimit": Builtin("optional_u64", py="int | None"),
    "CertificateSigner": Builtin("signer", py="DeviceID | None"),
    "UntrustedPasswordAlgorithm": Builtin("password_algorithm", py="dict[str, Any]"),
    "UserProfile": Builtin("enum", (("ADMIN", "STANDARD", "OUTSIDER"),), py="str"),
    "RealmRole": Builtin("enum", (("OWNER", "MANAGER", "CONTRIBUTOR", "READER"),), py="str"),
    "InvitationStatus": Builtin("enum", (("PENDING", "CANCELLED", "FINISHED"),), py="str"),
    "InvitationType": Builtin("enum", (("DEVICE", "USER", "SHAMIR_RECOVERY"),), py="str"),
    "GreeterOrClaimer": Builtin("enum", (("GREETER", "CLAIMER"),), py="str"),
    "CancelledGreetingAttemptReason": Builtin(
        "enum",
        (
            (
                "MANUALLY_CANCELLED",
                "INVALID_NONCE_HASH",
                "INVALID_SAS_CODE",
                "UNDECIPHERABLE_PAYLOAD",
                "UNDESERIALIZABLE_PAYLOAD",
                "INCONSISTENT_PAYLOAD",
                "AUTOMATICALLY_CANCELLED",
            ),
        ),
        py="str",
    ),
    "PkiSignatureAlgorithm": Builtin("enum", (("RSASSA-PSS-SHA256",),), py="str"),
    "DevicePurpose": Builtin(
        "enum", (("STANDARD", "SHAMIR_RECOVERY", "PASSPHRASE_RECOVERY", "REGISTRATION"),), py="str"
    ),
    "SecretKeyAlgorithm": Builtin("enum", (("BLAKE2_XSALSA20_POLY1305",),), py="str"),
    "HashAlgorithm": Builtin("enum", (("SHA256",),), py="str"),
    "RealmArchivingConfiguration": Builtin("archiving_configuration", py="dict[str, Any]"),
    **{name: Builtin("uuid", py=name) for name in _UUID_IDS},
    **{name: Builtin("fixed_bytes", (32,), py="bytes") for name in _KEYS32},
}

GENERICS = {"List", "Set", "Map", "RequiredOption", "NonRequiredOption"}

# Argon2id parameters: {"type": "ARGON2ID", "memlimit_kb": u32, "opslimit": u32, "parallelism": u32}
PASSWORD_ALGORITHM_FIELDS = ("memlimit_kb", "opslimit", "parallelism")
ARCHIVING_TYPES = ("AVAILABLE", "ARCHIVED", "DELETION_PLANNED")


# ---------------------------------------------------------------------------------------------
# Nested types (per command / per certificate)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str
    introduced_in: str | None = None


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    value: str
    fields: tuple[Field, ...] = ()


@dataclass(frozen=True, slots=True)
class NestedType:
    """A struct (`fields`), a struct union (`discriminant` + variants with fields) or a literal
    union (variants, no discriminant: plain strings on the wire)."""

    name: str
    fields: tuple[Field, ...] = ()
    variants: tuple[Variant, ...] = ()
    discriminant: str | None = None
    is_union: bool = False
    _by_value: dict[str, Variant] = field(default_factory=dict, compare=False, repr=False)

    def variant(self, value: str) -> Variant | None:
        if not self._by_value:
            self._by_value.update((v.value, v) for v in self.variants)
        return self._by_value.get(value)


def nested_from_json(obj: Mapping[str, Any]) -> NestedType:
    fields = tuple(field_from_json(f) for f in obj.get("fields", ()))
    variants = tuple(
        Variant(
            v["name"],
            v["discriminant_value"],
            tuple(field_from_json(f) for f in v.get("fields", ())),
        )
        for v in obj.get("variants", ())
    )
    return NestedType(
        obj["name"], fields, variants, obj.get("discriminant_field"), is_union="variants" in obj
    )


def field_from_json(obj: Mapping[str, Any]) -> Field:
    return Field(obj["name"], obj["type"], obj.get("introduced_in"))


# ---------------------------------------------------------------------------------------------
# Generic checker (replies in debug mode; reference for the generated decoders in tests)


def check_value(type_text: str, value: Any, nested: Mapping[str, NestedType], path: str) -> None:
    """Raise SchemaError if `value` (a Python value a handler would return) doesn't fit the type."""
    _check(parse_type(type_text), value, nested, path)


def check_fields(
    fields: Sequence[Field], obj: Mapping[str, Any], nested: Mapping[str, NestedType], path: str
) -> None:
    for f in fields:
        t = parse_type(f.type)
        if f.name not in obj:
            if f.introduced_in is not None or t.name == "NonRequiredOption":
                continue
            raise SchemaError(f"{path}: missing field {f.name!r}")
        _check(t, obj[f.name], nested, f"{path}.{f.name}")


def _fail(path: str, what: str, value: Any) -> SchemaError:
    return SchemaError(f"{path}: expected {what}, got {type(value).__name__} {value!r:.80}")


def _check(t: TypeExpr, v: Any, nested: Mapping[str, NestedType], path: str) -> None:
    name = t.name
    if name == "()":
        if not isinstance(v, list | tuple) or len(v) != len(t.args):
            raise _fail(path, f"{len(t.args)}-tuple", v)
        for i, (sub, item) in enumerate(zip(t.args, v, strict=True)):
            _check(sub, item, nested, f"{path}[{i}]")
        return
    if name in ("RequiredOption", "NonRequiredOption"):
        if v is not None:
            _check(t.args[0], v, nested, path)
        return
    if name in ("List", "Set"):
        if not isinstance(v, list | tuple | set | frozenset):
            raise _fail(path, str(t), v)
        for i, item in enumerate(v):
            _check(t.args[0], item, nested, f"{path}[{i}]")
        return
    if name == "Map":
        if not isinstance(v, dict):
            raise _fail(path, str(t), v)
        for k, item in v.items():
            _check(t.args[0], k, nested, f"{path}.key")
            _check(t.args[1], item, nested, f"{path}[{k!r}]")
        return
    n = nested.get(name)
    if n is not None:
        _check_nested(n, v, nested, path)
        return
    b = BUILTIN.get(name)
    if b is None:
        raise SchemaError(f"{path}: unknown type {name}")
    if not _builtin_ok(b, v):
        raise _fail(path, name, v)


def _check_nested(n: NestedType, v: Any, nested: Mapping[str, NestedType], path: str) -> None:
    if not n.is_union:
        if not isinstance(v, dict):
            raise _fail(path, n.name, v)
        _no_extra(v, {f.name for f in n.fields}, path)
        check_fields(n.fields, v, nested, path)
        return
    if n.discriminant is None:  # literal union
        if not isinstance(v, str) or n.variant(v) is None:
            raise _fail(path, f"one of {[x.value for x in n.variants]}", v)
        return
    if not isinstance(v, dict):
        raise _fail(path, n.name, v)
    tag = v.get(n.discriminant)
    variant = n.variant(tag) if isinstance(tag, str) else None
    if variant is None:
        raise _fail(f"{path}.{n.discriminant}", f"one of {[x.value for x in n.variants]}", tag)
    _no_extra(v, {n.discriminant, *(f.name for f in variant.fields)}, path)
    check_fields(variant.fields, v, nested, path)


def _no_extra(obj: Mapping[str, Any], allowed: set[str], path: str) -> None:
    extra = set(obj) - allowed
    if extra:
        raise SchemaError(f"{path}: unexpected fields {sorted(map(str, extra))}")


def _is_int(v: Any, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi


def _builtin_ok(b: Builtin, v: Any) -> bool:
    kind = b.kind
    if kind == "bool":
        return v is True or v is False
    if kind == "str":
        return isinstance(v, str)
    if kind == "bytes":
        return isinstance(v, bytes)
    if kind == "float":
        return type(v) is float
    if kind == "int":
        return _is_int(v, *b.params)
    if kind == "datetime":
        return isinstance(v, datetime.datetime) and v.tzinfo is not None
    if kind == "uuid":
        return isinstance(v, uuid.UUID)
    if kind == "fixed_bytes":
        return isinstance(v, bytes) and len(v) == b.params[0]
    if kind == "email":
        return isinstance(v, str) and ids.is_valid_email(v)
    if kind == "human_handle":
        return (
            isinstance(v, tuple | list)
            and len(v) == 2
            and isinstance(v[0], str)
            and isinstance(v[1], str)
            and ids.is_valid_email(v[0])
            and ids.is_valid_human_label(v[1])
        )
    if kind == "device_label":
        return isinstance(v, str) and ids.is_valid_device_label(v)
    if kind == "organization_id":
        return isinstance(v, str) and ids.is_valid_organization_id(v)
    if kind == "validation_code":
        return isinstance(v, str) and ids.is_valid_validation_code(v)
    if kind == "optional_u64":
        return v is None or _is_int(v, 0, U64_MAX)
    if kind == "signer":
        return v is None or isinstance(v, uuid.UUID)
    if kind == "enum":
        return isinstance(v, str) and v in b.params[0]
    if kind == "password_algorithm":
        return (
            isinstance(v, dict)
            and v.get("type") == "ARGON2ID"
            and set(v) == {"type", *PASSWORD_ALGORITHM_FIELDS}
            and all(_is_int(v[k], 0, U32_MAX) for k in PASSWORD_ALGORITHM_FIELDS)
        )
    if kind == "archiving_configuration":
        if not isinstance(v, dict) or v.get("type") not in ARCHIVING_TYPES:
            return False
        if v["type"] == "DELETION_PLANNED":
            return set(v) == {"type", "deletion_date"} and _builtin_ok(
                BUILTIN["DateTime"], v["deletion_date"]
            )
        return set(v) == {"type"}
    raise AssertionError(kind)
