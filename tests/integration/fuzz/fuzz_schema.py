"""Hypothesis strategies from the JSON5 protocol schemas: a well-typed request for any command, a
signed certificate of any type, and mutations of both (protocol.md §2.2 type mapping).

Values are drawn from pools of ids that exist on the fuzzed server (`Pools`), so well-typed requests
reach the command handlers, not just the decoder. The schemas are read with tools/gen_protocol.py;
when they are not available the tests that need them are skipped.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import struct
import sys
import uuid
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import nacl.signing
import pytest
from fuzz_support import (
    serialize,
    sign_serialized,
)
from hypothesis import strategies as st

from parsec_server.protocol.codec import now
from parsec_server.protocol.generated import FAMILIES
from parsec_server.protocol.schema import (
    ARCHIVING_TYPES,
    BUILTIN,
    U8_MAX,
    Field,
    NestedType,
    TypeExpr,
    parse_type,
)

ROOT = Path(__file__).resolve().parents[3]
ABSENT = object()  # a field left out of the map
UTC = datetime.UTC


# --- schemas --------------------------------------------------------------------------------------


@cache
def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_protocol", ROOT / "tools" / "gen_protocol.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_protocol", module)
    spec.loader.exec_module(module)
    return module


@cache
def _schema_dir() -> Path | None:
    for candidate in (
        ROOT.parent / "shared" / "parsec-spec" / "schema",
        Path("/work/shared/parsec-spec/schema"),
    ):
        if (candidate / "protocol").is_dir():
            return candidate
    return None


def require_schemas() -> None:
    if _schema_dir() is None:
        pytest.skip("JSON5 schemas not available (../shared/parsec-spec/schema absent)")


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: one instance per command
class CommandSpec:
    family: str
    cmd: str
    fields: tuple[Field, ...]
    nested: dict[str, NestedType]


@cache
def commands(family: str) -> dict[str, CommandSpec]:
    schema_dir = _schema_dir()
    assert schema_dir is not None
    return {
        c.cmd: CommandSpec(family, c.cmd, tuple(c.req_fields), c.nested)
        for c in _generator().load_family(schema_dir, family)
    }


@cache
def certificates() -> dict[str, CommandSpec]:
    schema_dir = _schema_dir()
    assert schema_dir is not None
    return {
        c.type_tag: CommandSpec("certif", c.type_tag, tuple(c.fields), c.nested)
        for c in _generator().load_certifs(schema_dir)
    }


ALL_COMMANDS = sorted({cmd for mod in FAMILIES.values() for cmd in mod.REQS})


# --- pools ---------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)  # hashed by identity (strategies are cached per pool)
class Pools:
    """Ids, keys and tokens known to the server (drawn often), besides random ones."""

    uuids: dict[str, list[uuid.UUID]]  # schema id type -> known values
    tokens: list[bytes]  # 16-byte AccessTokens
    signers: list[
        tuple[nacl.signing.SigningKey, uuid.UUID | None]
    ]  # (key, author); first = usual signer
    verify_keys: list[bytes]
    emails: list[str]


# --- well-typed values ---------------------------------------------------------------------------


def near_now() -> st.SearchStrategy[datetime.datetime]:
    """Mostly now (certificates must be in the ballpark), sometimes far away."""
    return st.one_of(
        st.integers(-2_000_000, 2_000_000).map(
            lambda us: now() + datetime.timedelta(microseconds=us)
        ),
        st.integers(-400, 400).map(lambda s: now() + datetime.timedelta(seconds=s)),
        st.datetimes(
            min_value=datetime.datetime(1, 1, 2),
            max_value=datetime.datetime(9999, 12, 30),
            timezones=st.just(UTC),
        ),
    )


_TEXT = st.text(st.characters(codec="utf-8"), max_size=24)
_ALNUM = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
_EMAILS = st.one_of(
    st.sampled_from(
        ["a@example.com", "zack@example.com", "bob@example.com", "x.y+z@sub.example.org"]
    ),
    st.builds("{}@{}.com".format, _ALNUM, _ALNUM),
)
_ODD_LABELS = [
    "\u200b",
    "e\u0301",
    "\ufeff",
    " x ",
    "x" * 255,
    "x" * 256,
    "\U0001f600",
    "a\tb",
    "\x7f",
]
_LABELS = st.one_of(
    st.sampled_from(["Alice", "Bob Dylan", "Zoé", "dev-1"]),
    _ALNUM.map(str.capitalize),
    st.sampled_from(_ODD_LABELS),
    st.sampled_from(["Nu\x00l", "\x00"]),  # NUL: PostgreSQL cannot store it
)


def value(
    type_text: str, nested: dict[str, NestedType], pools: Pools, name: str = ""
) -> st.SearchStrategy[Any]:
    """A value of that schema type, as our codec packs it (field `name` hints certificates)."""
    key = (type_text, id(nested), id(pools), name)
    cached = _CACHE.get(key)
    if cached is None:
        cached = _CACHE[key] = _value_uncached(type_text, nested, pools, name)
        _KEEP.append((nested, pools))  # the ids in the key stay valid
    return cached


_CACHE: dict[tuple[Any, ...], st.SearchStrategy[Any]] = {}
_KEEP: list[Any] = []


def _value_uncached(
    type_text: str, nested: dict[str, NestedType], pools: Pools, name: str
) -> st.SearchStrategy[Any]:
    cert = certificate_type_of(name)
    if cert is not None and type_text in ("Bytes", "RequiredOption<Bytes>", "List<Bytes>"):
        one = signed_certificate(cert, pools, _cert_fields(cert, pools))
        if type_text == "List<Bytes>":
            return st.lists(one, max_size=3)
        if type_text.startswith("RequiredOption"):
            return st.one_of(st.none(), one)
        return one
    return _value(parse_type(type_text), nested, pools)


def _value(t: TypeExpr, nested: dict[str, NestedType], pools: Pools) -> st.SearchStrategy[Any]:
    name = t.name
    if name == "()":
        return st.tuples(*(_value(a, nested, pools) for a in t.args)).map(list)
    if name in ("RequiredOption", "NonRequiredOption"):
        return st.one_of(_value(t.args[0], nested, pools), st.none())
    if name in ("List", "Set"):
        return st.lists(_value(t.args[0], nested, pools), max_size=4)
    if name == "Map":
        return st.dictionaries(
            _value(t.args[0], nested, pools), _value(t.args[1], nested, pools), max_size=3
        )
    n = nested.get(name)
    if n is not None:
        return _nested(n, nested, pools)
    b = BUILTIN[name]
    kind = b.kind
    if kind == "bool":
        return st.booleans()
    if kind == "str":
        return _TEXT
    if kind == "bytes":
        return st.binary(max_size=64)
    if kind == "float":
        return st.floats(allow_nan=False)
    if kind == "int":
        lo, hi = b.params
        return st.one_of(st.integers(lo, min(hi, lo + 3)), st.integers(lo, hi), st.just(hi))
    if kind == "datetime":
        return near_now()
    if kind == "uuid":
        known = pools.uuids.get(name, [])
        return (
            st.sampled_from([*known, *known, None]).flatmap(
                lambda k: st.just(k) if k else st.uuids()
            )
            if known
            else st.uuids()
        )
    if kind == "fixed_bytes":
        (size,) = b.params
        if name == "AccessToken" and pools.tokens:
            return st.one_of(st.sampled_from(pools.tokens), st.binary(min_size=16, max_size=16))
        if name == "VerifyKey" and pools.verify_keys:
            return st.one_of(
                st.sampled_from(pools.verify_keys), st.binary(min_size=32, max_size=32)
            )
        return st.binary(min_size=size, max_size=size)
    if kind == "email":
        return st.one_of(st.sampled_from(pools.emails), _EMAILS) if pools.emails else _EMAILS
    if kind == "human_handle":
        return st.tuples(_EMAILS, _LABELS).map(list)
    if kind == "device_label":
        return _LABELS
    if kind == "organization_id":
        return st.text("abcXYZ019_-", min_size=1, max_size=32)
    if kind == "validation_code":
        return st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=6, max_size=6)
    if kind == "optional_u64":
        return st.one_of(st.none(), st.integers(0, 2**64 - 1))
    if kind == "signer":
        return st.one_of(st.none(), _value(TypeExpr("DeviceID"), nested, pools))
    if kind == "enum":
        return st.sampled_from(b.params[0])
    if kind == "password_algorithm":
        u32 = st.integers(0, 2**32 - 1)
        return st.fixed_dictionaries(
            {"type": st.just("ARGON2ID"), "memlimit_kb": u32, "opslimit": u32, "parallelism": u32}
        )
    if kind == "archiving_configuration":
        return st.one_of(
            st.sampled_from([t for t in ARCHIVING_TYPES if t != "DELETION_PLANNED"]).map(
                lambda t: {"type": t}
            ),
            near_now().map(lambda d: {"type": "DELETION_PLANNED", "deletion_date": d}),
        )
    raise AssertionError(f"no strategy for {name} ({kind})")


def _fields(
    fields: tuple[Field, ...], nested: dict[str, NestedType], pools: Pools
) -> st.SearchStrategy[dict[str, Any]]:
    parts = {}
    for f in fields:
        s = value(f.type, nested, pools, f.name)
        if f.introduced_in is not None or f.type.startswith("NonRequiredOption"):
            s = st.one_of(s, st.just(ABSENT))
        parts[f.name] = s
    return st.fixed_dictionaries(parts).map(
        lambda d: {k: v for k, v in d.items() if v is not ABSENT}
    )


def _nested(n: NestedType, nested: dict[str, NestedType], pools: Pools) -> st.SearchStrategy[Any]:
    if not n.is_union:
        return _fields(n.fields, nested, pools)
    if n.discriminant is None:  # literal union
        return st.sampled_from([v.value for v in n.variants])
    disc = n.discriminant

    def tagged(tag: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda d: {disc: tag, **d}

    return st.one_of(*(_fields(v.fields, nested, pools).map(tagged(v.value)) for v in n.variants))


@cache
def request(spec: CommandSpec, pools: Pools) -> st.SearchStrategy[dict[str, Any]]:
    """A well-typed request map of that command (`cmd` first)."""
    return _fields(spec.fields, spec.nested, pools).map(lambda d: {"cmd": spec.cmd, **d})


# --- certificates --------------------------------------------------------------------------------

_CERT_ALIASES = {"archiving_certificate": "realm_archiving_certificate"}


def certificate_type_of(field_name: str) -> str | None:
    """`redacted_user_certificate` -> `user_certificate`, `shamir_recovery_share_certificates` ->
    `shamir_recovery_share_certificate`..., None for fields that carry no certificate."""
    if "certificate" not in field_name:
        return None
    name = field_name.removeprefix("submitter_").removeprefix("redacted_").removesuffix("s")
    name = _CERT_ALIASES.get(name, name)
    return name if _schema_dir() is not None and name in certificates() else None


_CORRUPTIONS = ("none",) * 28 + (
    "flip",
    "truncate",
    "version",
    "zstd",
    "empty",
    "signature_only",
    "trailing",
)


_RANDOM_AUTHOR = uuid.uuid4()
_TIMESTAMPS = st.one_of(st.builds(now), near_now())


@cache
def _cert_fields(type_tag: str, pools: Pools) -> tuple[tuple[Field, st.SearchStrategy[Any]], ...]:
    spec = certificates()[type_tag]
    return tuple(
        (f, value(f.type, spec.nested, pools, f.name))
        for f in spec.fields
        if f.name not in ("author", "timestamp")
    )


@st.composite
def signed_certificate(
    draw: st.DrawFn,
    type_tag: str,
    pools: Pools,
    fields: tuple[tuple[Field, st.SearchStrategy[Any]], ...],
) -> bytes:
    """A certificate of that type signed by one of the pool's keys (mostly the usual signer, with
    itself as author and a timestamp close to now), sometimes with mutated content or bytes."""
    key, author = draw(st.sampled_from(pools.signers[:1] * 12 + pools.signers))
    content: dict[str, Any] = {"type": type_tag}
    if type_tag not in (
        "sequester_authority_certificate",
        "sequester_service_certificate",
        "sequester_revoked_service_certificate",
    ):
        content["author"] = draw(st.sampled_from([author] * 10 + [None, _RANDOM_AUTHOR]))
        if content["author"] is None and type_tag not in ("user_certificate", "device_certificate"):
            content["author"] = author or _RANDOM_AUTHOR
    content["timestamp"] = draw(_TIMESTAMPS)
    for f, strategy in fields:
        v = draw(strategy)
        if f.type.startswith("NonRequiredOption") and draw(st.booleans()):
            continue
        content[f.name] = v
    if type_tag == "shamir_recovery_brief_certificate" and content.get("threshold", 0) > U8_MAX:
        content["threshold"] = U8_MAX
    if draw(st.integers(0, 9)) == 0:
        content = draw(mutate(content, protect=("type",)))
    serialized = serialize(content)
    kind = draw(st.sampled_from(_CORRUPTIONS))
    if kind == "version":
        serialized = bytes([draw(st.integers(1, 255))]) + serialized[1:]
    elif kind == "zstd":
        serialized = b"\x00" + draw(st.binary(max_size=40))
    signed = sign_serialized(key, serialized)
    if kind == "flip":
        pos = draw(st.integers(0, 2**16)) % len(
            signed
        )  # lengths vary with the clock: no data-dependent bounds
        signed = signed[:pos] + bytes([signed[pos] ^ draw(st.integers(1, 255))]) + signed[pos + 1 :]
    elif kind == "truncate":
        signed = signed[: draw(st.integers(0, 2**16)) % len(signed)]
    elif kind == "empty":
        signed = b""
    elif kind == "signature_only":
        signed = signed[:64]
    elif kind == "trailing":
        signed += draw(st.binary(min_size=1, max_size=8))
    return signed


# --- garbage and mutations -----------------------------------------------------------------------

_I64 = struct.Struct(">q")


def _deep_list(depth: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(depth):
        out = [out]
    return out


HUGE_INTS = (2**64 - 1, 2**63, 2**63 - 1, 2**32, 2**32 - 1, 2**31, 256, -1, -(2**31), -(2**63), 0)

special_values = st.one_of(
    st.sampled_from(HUGE_INTS),
    st.sampled_from([float("nan"), float("inf"), -0.0, 1e308]),
    st.binary(max_size=40).map(lambda b: msgpack.ExtType(1, b)),  # DateTime of a wrong size
    st.integers(-(2**63), 2**63 - 1).map(
        lambda us: msgpack.ExtType(1, _I64.pack(us))
    ),  # out of range years
    st.binary(max_size=40).map(lambda b: msgpack.ExtType(2, b)),  # UUID of a wrong size
    st.tuples(st.integers(3, 127), st.binary(max_size=20)).map(lambda t: msgpack.ExtType(*t)),
    st.integers(0, 2**31).map(lambda s: msgpack.Timestamp(s)),  # ext -1
    st.sampled_from([b"", b"\x00" * 15, b"\x00" * 17, b"\xff" * 31, b"\xff" * 33, b"x" * 2000]),
    st.lists(
        st.integers(0, 300), max_size=40
    ),  # u8 arrays (bytes fields accept them) and not-quite
    st.sampled_from(["", "ADMIN ", "admin", "OWNER\x00", "UNKNOWN", "\u00e9", "x" * 5000]),
    st.just(_deep_list(300)),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    _TEXT,
    st.binary(max_size=40),
    st.uuids(),
    st.datetimes(timezones=st.just(UTC)),
    special_values,
)
keys = st.one_of(
    _TEXT, st.uuids(), st.binary(max_size=8), st.integers(-5, 5), st.none(), st.booleans()
)
garbage = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)

MUTATIONS = (
    "replace",
    "replace",
    "special",
    "drop",
    "extra",
    "deep",
    "deep",
    "swap_type",
    "cmd",
    *("none",) * 3,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append((*prefix, i))
            out.extend(_paths(v, (*prefix, i)))
    return out


def _copy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_copy(v) for v in obj]
    return obj


def _swap_type(v: Any) -> st.SearchStrategy[Any]:
    """The same content in a neighbouring type: bytes as str, uuid as bytes/str, datetime as
    int..."""
    options: list[Any] = [None, [v], {"v": v}]
    if isinstance(v, bytes):
        options += [v.hex(), list(v), v.decode("latin-1")]
    if isinstance(v, uuid.UUID):
        options += [v.bytes, v.hex, str(v), v.int >> 64, msgpack.ExtType(2, v.bytes + b"\x00")]
    if isinstance(v, datetime.datetime):
        options += [
            v.timestamp(),
            int(v.timestamp()),
            v.isoformat(),
            msgpack.Timestamp.from_datetime(v),
        ]
    if isinstance(v, str):
        options += [v.encode(), v.upper(), v.lower(), v + " ", list(v.encode())]
    if isinstance(v, bool):
        options += [int(v), str(v).lower()]
    elif isinstance(v, int):
        options += [float(v), str(v), v > 0, max(-v - 1, -(2**63))]
    if isinstance(v, dict):
        options += [list(v.values()), list(v.items()), {}]
    if isinstance(v, list):
        options += [tuple_to_map(v), v * 2, [v]]
    return st.sampled_from(options)


def tuple_to_map(v: list[Any]) -> dict[int, Any]:
    return dict(enumerate(v))


@st.composite
def mutate(draw: st.DrawFn, obj: dict[str, Any], protect: tuple[str, ...] = ()) -> dict[str, Any]:
    """One change to a request/certificate map: a field replaced, dropped, re-typed, a value deep
    inside changed, extra keys, a changed `cmd`... (`protect`: keys left alone)."""
    out: dict[str, Any] = _copy(obj)
    kind = draw(st.sampled_from(MUTATIONS))
    top = [k for k in out if k not in protect and k != "cmd"]
    if kind == "none":
        return out
    if kind == "cmd":
        if "cmd" in out:
            out["cmd"] = draw(
                st.one_of(
                    st.sampled_from(ALL_COMMANDS),
                    garbage,
                    _TEXT,
                    st.sampled_from(ALL_COMMANDS).map(str.encode),
                    st.sampled_from(ALL_COMMANDS).map(str.upper),
                )
            )
            if draw(st.integers(0, 4)) == 0:
                del out["cmd"]
        return out
    if kind == "extra":
        for k, v in draw(st.dictionaries(keys, garbage, min_size=1, max_size=3)).items():
            if k not in protect and k != "cmd":
                out[k] = v
        return out
    if not top:
        out[draw(_TEXT)] = draw(garbage)
        return out
    if kind == "deep":
        paths = [p for p in _paths({k: out[k] for k in top})]
        path = draw(st.sampled_from(paths))
        parent = out
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[last]
        else:
            parent[last] = draw(st.one_of(garbage, _swap_type(parent[last])))
        return out
    key = draw(st.sampled_from(top))
    if kind == "drop":
        del out[key]
    elif kind == "special":
        out[key] = draw(special_values)
    elif kind == "swap_type":
        out[key] = draw(_swap_type(out[key]))
    else:
        out[key] = draw(garbage)
    return out
