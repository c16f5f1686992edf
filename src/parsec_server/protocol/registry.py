"""Decode requests, encode and check replies, for every command family (protocol.md §2.1, §3).

* `decode_req(family, body)` -> a `Req` (see `protocol/generated/<family>.py`), or `DecodeError` for
  anything the official server rejects with 415: undecodable msgpack, a non-map, missing/unknown
  `cmd`, a command of another family, a missing field or a field of the wrong type/size/range.
  Unknown extra keys are ignored. Nested struct unions (greeter/claimer steps, async enrollment
  signatures, account creation steps...) decode to plain dicts: discriminant first, then the
  variant's fields, values converted like top-level fields.
* `encode_rep(rep)` -> the msgpack bytes the official `Rep.dump()` gives for the same values:
  `status` first, then (flattened "unit" replies) the union's discriminant, then the other fields
  sorted by name; nested structs likewise (discriminant first, then sorted fields). Maps with
  non-string keys keep their order (the official server's maps are unordered HashMaps).
* `validate_rep(family, cmd, rep)` -> raises `RepValidationError` unless the reply fits the schema:
  a status of that command, every field present (`introduced_in` ones may be left out) with the
  right type, no extra field. Meant for tests and debug runs.

Reply values: UUID, datetime (aware), bytes, int, str, bool, None, float (ballpark offsets), list or
tuple, dict, `HumanHandle` (a tuple); on hot paths also ids and datetimes already in their wire form
(`codec.ext_uuid` / `codec.ext_datetime`) and `Flat` lists (packed without being walked).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from msgpack import ExtType

from parsec_server.protocol._runtime import Req, as_str
from parsec_server.protocol.codec import DecodeError, declared_map_size, from_ext, packb, unpackb
from parsec_server.protocol.generated import FAMILIES
from parsec_server.protocol.schema import (
    NestedType,
    SchemaError,
    check_fields,
    field_from_json,
    nested_from_json,
)

__all__ = [
    "DecodeError",
    "Flat",
    "RepValidationError",
    "Req",
    "decode_req",
    "encode_rep",
    "req_class",
    "validate_rep",
]

_DECODERS: dict[str, dict[str, Any]] = {fam: mod.DECODERS for fam, mod in FAMILIES.items()}


def decode_req(family: str, body: bytes) -> Req:
    """Decode a request body of the given route family; raises DecodeError (-> HTTP 415).

    Like the official decoder: bytes after the map are ignored, a duplicated top-level key is an
    error, `cmd` and string fields may come as UTF-8 `bin`, bytes fields as `str` or u8 arrays."""
    data = unpackb(body, allow_trailing=True)
    if data.__class__ is not dict:
        raise DecodeError("request is not a map")
    if len(data) != declared_map_size(body):
        raise DecodeError("duplicate key in request")
    cmd = data.get("cmd")
    if cmd.__class__ is not str:
        cmd = as_str(cmd, "cmd", "String")
    decoder = _DECODERS[family].get(cmd)
    if decoder is None:
        raise DecodeError(f"unknown command {cmd!r:.60} for family {family}")
    req: Req = decoder(data)
    return req


def req_class(family: str, cmd: str) -> type[Req]:
    """The generated Req class of a command (KeyError if unknown)."""
    cls: type[Req] = FAMILIES[family].REQS[cmd]
    return cls


# ---------------------------------------------------------------------------------------------
# Encoding

# Discriminant fields of the schemas' struct unions: they come right after `status` in flattened
# replies and first in nested structs. None of them is ever a plain field name.
_DISCRIMINANTS = ("type", "step", "event", "enrollment_status")
_STATIC: dict[str, bytes] = {}


def encode_rep(rep: Mapping[str, Any]) -> bytes:
    if len(rep) == 1:
        status = rep["status"]
        cached = _STATIC.get(status)
        if cached is None:
            cached = packb({"status": status})
            if len(_STATIC) < 1024:
                _STATIC[status] = cached
        return cached
    out: dict[str, Any] = {"status": rep["status"]}
    for disc in _DISCRIMINANTS:
        if disc in rep:
            out[disc] = rep[disc]
            break
    for key in sorted(rep):
        if key not in out:
            out[key] = _ordered(rep[key])
    return packb(out)


class Flat(list):  # type: ignore[type-arg]
    """A reply list whose elements hold no dict (scalars, ext values, flat tuples), or only dicts
    already in wire order (discriminant first, then the fields sorted by name: invite_list):
    `encode_rep` packs it without looking inside (hot replies with many items, e.g.
    vlob_read_batch)."""

    __slots__ = ()


def _ordered(value: Any) -> Any:
    cls = value.__class__
    if cls is Flat:
        return value
    if cls is dict:
        keys = list(value)
        if not all(k.__class__ is str for k in keys):
            return {k: _ordered(v) for k, v in value.items()}
        out: dict[str, Any] = {}
        for disc in _DISCRIMINANTS:
            if disc in value:
                out[disc] = value[disc]
                break
        for key in sorted(keys):
            if key not in out:
                out[key] = _ordered(value[key])
        return out
    if cls is list or cls is tuple:
        for item in value:
            icls = item.__class__
            if icls is dict or icls is list or icls is tuple:
                return [_ordered(x) for x in value]
        return value
    return value


# ---------------------------------------------------------------------------------------------
# Reply validation


class RepValidationError(SchemaError):
    """A handler's reply does not match the schema."""


@cache
def _nested(family: str, cmd: str) -> dict[str, NestedType]:
    raw = FAMILIES[family].NESTED.get(cmd, [])
    return {n["name"]: nested_from_json(n) for n in raw}


def validate_rep(family: str, cmd: str, rep: Mapping[str, Any]) -> None:
    try:
        by_status = FAMILIES[family].REPS[cmd]
    except KeyError:
        raise RepValidationError(f"unknown command {family}/{cmd}") from None
    status = rep.get("status")
    if status not in by_status:
        raise RepValidationError(f"{cmd}: status {status!r} is not in the schema")
    spec = by_status[status]
    nested = _nested(family, cmd)
    rep = _from_wire(rep)
    path = f"{cmd}.{status}"
    try:
        if isinstance(spec, str):  # unit: the union is flattened into the reply
            unit = nested[spec]
            assert unit.discriminant is not None
            tag = rep.get(unit.discriminant)
            variant = unit.variant(tag) if isinstance(tag, str) else None
            if variant is None:
                raise RepValidationError(f"{path}: bad {unit.discriminant} {tag!r}")
            fields = variant.fields
            allowed = {"status", unit.discriminant, *(f.name for f in fields)}
        else:
            fields = tuple(
                field_from_json({"name": n, "type": t, "introduced_in": i}) for n, t, i in spec
            )
            allowed = {"status", *(f.name for f in fields)}
        extra = set(rep) - allowed
        if extra:
            raise RepValidationError(f"{path}: unexpected fields {sorted(extra)}")
        check_fields(fields, rep, nested, path)
    except RepValidationError:
        raise
    except SchemaError as exc:
        raise RepValidationError(str(exc)) from None


def _from_wire(value: Any) -> Any:
    """Ext values (codec.ext_uuid / ext_datetime) back to the values the schema check expects."""
    cls = value.__class__
    if cls is ExtType:
        return from_ext(value)
    if cls is dict:
        return {k: _from_wire(v) for k, v in value.items()}
    if cls is list or cls is Flat:
        return [_from_wire(v) for v in value]
    if cls is tuple:
        return tuple(_from_wire(v) for v in value)
    return value


def rep_statuses(family: str, cmd: str) -> tuple[str, ...]:
    """The statuses the schema allows for a command."""
    return tuple(FAMILIES[family].REPS[cmd])


def decode_rep(body: bytes) -> dict[str, Any]:
    """Plain decoding of a reply (tests, clients); DecodeError if not a map with a status."""
    data = unpackb(body)
    if data.__class__ is not dict or data.get("status").__class__ is not str:
        raise DecodeError("reply is not a map with a status")
    return data
