#!/usr/bin/env python3
# mypy: ignore-errors
"""Golden vectors from the official library (parsec-cloud 3.9.3), for the protocol/crypto unit tests.

    .venv-ref/bin/python tools/make_vectors.py [--schema DIR]

Must run in the reference venv (`import parsec._parsec`). Writes JSON files into
tests/unit/protocol/vectors/; the tests then run without the official library.

* requests.json / replies.json: for every command of every family, schema-driven sample values are
  turned into official `Req` / `Rep` objects and dumped (`.dump()`); each vector keeps the bytes and
  the values (tagged JSON, see `tag()`). Several samples per command walk every union variant and
  both sides of every option.
* req_acceptance.json: hand-crafted bodies (mutated types, missing fields, oddities) and whether the
  official `AnyCmdReq.load` accepts them.
* certificates.json: one signed certificate per type and variant (real Ed25519 / RSA keys), plus
  crafted contents signed by a known key, each with the official `verify_and_load` verdict.
* misc.json: token, UUID text, email, label, organization id, validation code and URL vectors.

Tagged JSON: {"$uuid": hex}, {"$dt": microseconds}, {"$bytes": hex}, {"$tuple": [...]},
{"$map": [[k, v], ...]}, {"$set": [...]}, {"$hh": [email, label]}; other JSON values are themselves.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import gen_protocol  # noqa: E402
import parsec._parsec as p  # noqa: E402
from gen_protocol import FAMILIES, find_schema_dir, load_certifs, load_family  # noqa: E402

from parsec_server.protocol.schema import BUILTIN, NestedType, TypeExpr, parse_type  # noqa: E402

OUT = ROOT / "tests" / "unit" / "protocol" / "vectors"


def _load_pure_msgpack() -> Any:
    """The pure-Python msgpack of the dev venv (the reference venv has none), for crafted bodies."""
    import os

    os.environ["MSGPACK_PUREPYTHON"] = "1"
    candidates = sorted((ROOT / ".venv" / "lib").glob("python3*/site-packages/msgpack/__init__.py"))
    if not candidates:
        raise SystemExit("msgpack not found in .venv (needed to craft bodies)")
    spec = importlib.util.spec_from_file_location(
        "msgpack", candidates[0], submodule_search_locations=[str(candidates[0].parent)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["msgpack"] = module
    spec.loader.exec_module(module)
    return module


msgpack = _load_pure_msgpack()


def ext_uuid(u: uuid.UUID) -> Any:
    return msgpack.ExtType(2, u.bytes)


def ext_dt(us: int) -> Any:
    return msgpack.ExtType(1, us.to_bytes(8, "big", signed=True))


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def zstd_raw_frame(data: bytes) -> bytes:
    """A valid zstd frame storing `data` in raw blocks (no compression needed to craft contents)."""
    out = bytearray(b"\x28\xb5\x2f\xfd")
    out.append(0xE0)  # single segment, 8-byte frame content size
    out += len(data).to_bytes(8, "little")
    chunks = [data[i : i + 100_000] for i in range(0, len(data), 100_000)] or [b""]
    for i, chunk in enumerate(chunks):
        last = 1 if i == len(chunks) - 1 else 0
        out += ((len(chunk) << 3) | last).to_bytes(3, "little")
        out += chunk
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Deterministic sample values


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def next(self) -> int:
        self.n += 1
        return self.n


COUNTER = Counter()


def det_uuid(n: int) -> uuid.UUID:
    return uuid.UUID(bytes=hashlib.sha256(f"uuid-{n}".encode()).digest()[:16])


def det_bytes(n: int, size: int) -> bytes:
    return hashlib.sha256(f"bytes-{n}".encode()).digest()[:size]


BASE_US = 1_700_000_000_123_456


class Sampler:
    """Builds (official value, tagged expected value) pairs for a schema type."""

    def __init__(
        self, module: Any, nested: dict[str, NestedType], variant: int, none: bool
    ) -> None:
        self.module = module
        self.nested = nested
        self.variant = variant
        self.none = none

    def sample(self, t: TypeExpr) -> tuple[Any, Any]:
        name = t.name
        n = COUNTER.next()
        if name == "()":
            pairs = [self.sample(a) for a in t.args]
            return tuple(o for o, _ in pairs), {"$tuple": [e for _, e in pairs]}
        if name in ("RequiredOption", "NonRequiredOption"):
            if self.none:
                return None, None
            return self.sample(t.args[0])
        if name == "List":
            pairs = [self.sample(t.args[0]) for _ in range(2)]
            return [o for o, _ in pairs], [e for _, e in pairs]
        if name == "Set":
            o, e = self.sample(t.args[0])
            return {o}, {"$set": [e]}
        if name == "Map":
            ko, ke = self.sample(t.args[0])
            vo, ve = self.sample(t.args[1])
            return {ko: vo}, {"$map": [[ke, ve]]}
        nt = self.nested.get(name)
        if nt is not None:
            return self.sample_nested(nt)
        b = BUILTIN[name]
        kind = b.kind
        if kind == "uuid":
            u = det_uuid(n)
            return getattr(p, name).from_hex(u.hex), {"$uuid": u.hex}
        if kind == "datetime":
            us = BASE_US + n * 1_000_003
            return p.DateTime.from_timestamp_micros(us), {"$dt": us}
        if kind == "bytes":
            data = f"bytes-{n}".encode()
            if name in ("SequesterVerifyKeyDer", "SequesterPublicKeyDer"):
                data = SEQUESTER_PUB_DER
                return getattr(p, name)(data), {"$bytes": data.hex()}
            return data, {"$bytes": data.hex()}
        if kind == "fixed_bytes":
            size = b.params[0]
            raw = det_bytes(n, size)
            if name == "AccessToken":
                return p.AccessToken.from_bytes(raw), {"$bytes": raw.hex()}
            if name == "VerifyKey":
                vk = p.SigningKey(raw).verify_key
                return vk, {"$bytes": vk.encode().hex()}
            if name == "PublicKey":
                pk = p.PrivateKey(raw).public_key
                return pk, {"$bytes": pk.encode().hex()}
            return getattr(p, name)(raw), {"$bytes": raw.hex()}
        if kind == "str":
            return f"string {n} é", f"string {n} é"
        if kind == "float":
            return 300.0 + n / 4, 300.0 + n / 4
        if kind == "bool":
            return n % 2 == 0, n % 2 == 0
        if kind == "int":
            lo, hi = b.params
            value = max(lo, min(hi, n))
            if name == "Integer" and n % 3 == 0:
                value = -n
            return value, value
        if kind == "email":
            e = f"user{n}@example.com"
            return p.EmailAddress(e), e
        if kind == "human_handle":
            e, label = f"user{n}@example.com", f"Zoé {n}"
            return p.HumanHandle(p.EmailAddress(e), label), {"$hh": [e, label]}
        if kind == "device_label":
            return p.DeviceLabel(f"Device {n}"), f"Device {n}"
        if kind == "organization_id":
            return p.OrganizationID(f"Org{n}"), f"Org{n}"
        if kind == "validation_code":
            return p.ValidationCode("ABC2DE"), "ABC2DE"
        if kind == "optional_u64":
            if self.none:
                return p.ActiveUsersLimit.NO_LIMIT, None
            return p.ActiveUsersLimit.limited_to(n), n
        if kind == "signer":
            if self.none:
                return None, None
            u = det_uuid(n)
            return p.DeviceID.from_hex(u.hex), {"$uuid": u.hex}
        if kind == "enum":
            values = b.params[0]
            value = values[(self.variant + n) % len(values)]
            try:
                return getattr(p, name).from_str(value), value
            except ValueError:  # wire value differs from the binding's name (PkiSignatureAlgorithm)
                return getattr(p, name).from_str(value.replace("-", "_")), value
        if kind == "password_algorithm":
            ops, mem, par = 3 + n % 5, 65536 + n, 1 + n % 4
            return (
                p.UntrustedPasswordAlgorithmArgon2id(
                    opslimit=ops, memlimit_kb=mem, parallelism=par
                ),
                {"type": "ARGON2ID", "memlimit_kb": mem, "opslimit": ops, "parallelism": par},
            )
        if kind == "archiving_configuration":
            choice = self.variant % 3
            if choice == 0:
                return p.RealmArchivingConfiguration.AVAILABLE, {"type": "AVAILABLE"}
            if choice == 1:
                return p.RealmArchivingConfiguration.ARCHIVED, {"type": "ARCHIVED"}
            us = BASE_US + n * 7
            return (
                p.RealmArchivingConfiguration.deletion_planned(
                    p.DateTime.from_timestamp_micros(us)
                ),
                {"type": "DELETION_PLANNED", "deletion_date": {"$dt": us}},
            )
        raise AssertionError(kind)

    def sample_fields(self, fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        expected: dict[str, Any] = {}
        for f in fields:
            o, e = self.sample(parse_type(f.type))
            kwargs[f.name] = o
            expected[f.name] = e
        return kwargs, expected

    def sample_nested(self, nt: NestedType) -> tuple[Any, Any]:
        if not nt.is_union:
            kwargs, expected = self.sample_fields(nt.fields)
            return getattr(self.module, nt.name)(**kwargs), expected
        variant = nt.variants[self.variant % len(nt.variants)]
        if nt.discriminant is None:
            cls = getattr(self.module, nt.name)
            try:
                return cls.from_str(variant.value), variant.value
            except (
                ValueError
            ):  # the binding's name differs from the wire value (SecretKeyAlgorithm)
                return cls.VALUES[self.variant % len(nt.variants)], variant.value
        kwargs, expected = self.sample_fields(variant.fields)
        cls = getattr(self.module, nt.name + variant.name)
        return cls(**kwargs), {nt.discriminant: variant.value, **expected}


def count_variants(types: list[str], nested: dict[str, NestedType]) -> int:
    best = 1
    seen: set[str] = set()

    def walk(t: TypeExpr) -> None:
        nonlocal best
        for a in t.args:
            walk(a)
        nt = nested.get(t.name)
        if nt is not None and t.name not in seen:
            seen.add(t.name)
            best = max(best, len(nt.variants))
            for f in nt.fields:
                walk(parse_type(f.type))
            for v in nt.variants:
                for f in v.fields:
                    walk(parse_type(f.type))
        b = BUILTIN.get(t.name)
        if b is not None and b.kind == "enum":
            best = max(best, len(b.params[0]))
        if b is not None and b.kind == "archiving_configuration":
            best = max(best, 3)

    for text in types:
        walk(parse_type(text))
    return best


def camel(name: str) -> str:
    return gen_protocol.camel(name)


# ---------------------------------------------------------------------------------------------
# requests.json / replies.json


def make_command_vectors(schema_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    requests: list[dict[str, Any]] = []
    replies: list[dict[str, Any]] = []
    for family in FAMILIES:
        family_module = getattr(p, FAMILIES[family]).latest
        for c in load_family(schema_dir, family):
            module = getattr(family_module, c.cmd)
            nested = c.nested
            # requests
            n_samples = max(2, count_variants([f.type for f in c.req_fields], nested))
            for i in range(n_samples):
                sampler = Sampler(module, nested, variant=i, none=i % 2 == 1)
                kwargs, expected = sampler.sample_fields(c.req_fields)
                req = module.Req(**kwargs)
                requests.append(
                    {"family": family, "cmd": c.cmd, "hex": req.dump().hex(), "fields": expected}
                )
            # replies
            for rep in c.reps:
                status = rep["status"]
                cls = getattr(module, "Rep" + camel(status))
                if "unit" in rep:
                    unit = nested[rep["unit"]]
                    for i in range(len(unit.variants)):
                        for none in (False, True):
                            sampler = Sampler(module, nested, variant=i, none=none)
                            o, e = sampler.sample_nested(unit)
                            replies.append(
                                {
                                    "family": family,
                                    "cmd": c.cmd,
                                    "status": status,
                                    "hex": cls(o).dump().hex(),
                                    "rep": {"status": status, **e},
                                }
                            )
                    continue
                fields = [gen_protocol.field_from_json(f) for f in rep.get("fields", ())]
                n_samples = (
                    max(2, count_variants([f.type for f in fields], nested)) if fields else 1
                )
                for i in range(n_samples):
                    sampler = Sampler(module, nested, variant=i, none=i % 2 == 1)
                    kwargs, expected = sampler.sample_fields(fields)
                    replies.append(
                        {
                            "family": family,
                            "cmd": c.cmd,
                            "status": status,
                            "hex": cls(**kwargs).dump().hex(),
                            "rep": {"status": status, **expected},
                        }
                    )
    return requests, replies


# ---------------------------------------------------------------------------------------------
# req_acceptance.json


def any_cmd_load(family: str, body: bytes) -> tuple[bool, str]:
    try:
        getattr(p, FAMILIES[family]).latest.AnyCmdReq.load(body)
        return True, ""
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"[:200]


def make_acceptance() -> list[dict[str, Any]]:
    U = lambda n: ext_uuid(det_uuid(1000 + n))  # noqa: E731
    D = ext_dt
    cases: list[tuple[str, str, bytes]] = []

    def add(family: str, name: str, obj: Any = None, raw: bytes | None = None) -> None:
        cases.append((family, name, raw if raw is not None else pack(obj)))

    vc = {
        "cmd": "vlob_create",
        "realm_id": U(1),
        "vlob_id": U(2),
        "key_index": 1,
        "timestamp": D(BASE_US),
        "blob": b"blob",
    }
    A = "authenticated"
    add(A, "vlob_create", vc)
    add(A, "vlob_create_extra_key", {**vc, "sequester_blob": None, "zzz": [1, {"a": b""}]})
    add(A, "vlob_create_extra_int_key", {**vc, 5: 1})
    add(A, "vlob_create_extra_bad_ext", {**vc, "zzz": msgpack.ExtType(1, b"\x00")})
    for i, (key, value) in enumerate(
        [
            ("blob", "text"),
            ("blob", [1, 2, 3]),
            ("blob", [1, 256]),
            ("blob", None),
            ("blob", 5),
            ("key_index", -1),
            ("key_index", 2**64 - 1),
            ("key_index", 1.0),
            ("key_index", True),
            ("key_index", "1"),
            ("timestamp", 5),
            ("timestamp", 1.5),
            ("timestamp", msgpack.ExtType(1, b"\x00" * 4)),
            ("timestamp", msgpack.ExtType(1, b"\x00" * 9)),
            ("timestamp", msgpack.ExtType(2, b"\x00" * 8)),
            ("timestamp", msgpack.ExtType(3, b"\x00" * 8)),
            ("timestamp", D(-5)),
            ("timestamp", D(0)),
            ("timestamp", D(253402300799999999)),
            ("timestamp", D(253402300800000000)),
            ("timestamp", D(2**63 - 1)),
            ("realm_id", msgpack.ExtType(2, b"\x00" * 15)),
            ("realm_id", msgpack.ExtType(2, b"\x00" * 17)),
            ("realm_id", msgpack.ExtType(1, b"\x00" * 16)),
            ("realm_id", b"\x00" * 16),
            ("realm_id", det_uuid(3).hex),
            ("realm_id", None),
        ]
    ):
        add(A, f"vlob_create_{i:02}_{key}_{type(value).__name__}", {**vc, key: value})
    add(A, "vlob_create_missing_blob", {k: v for k, v in vc.items() if k != "blob"})
    add(A, "vlob_create_missing_cmd", {k: v for k, v in vc.items() if k != "cmd"})
    add(A, "vlob_create_cmd_bin", {**vc, "cmd": b"vlob_create"})
    add(A, "vlob_create_cmd_int", {**vc, "cmd": 1})
    add(A, "vlob_create_cmd_unknown", {**vc, "cmd": "vlob_destroy"})
    add(A, "vlob_create_cmd_nil", {**vc, "cmd": None})
    add(A, "vlob_create_trailing_byte", raw=pack(vc) + b"\x00")
    add(A, "vlob_create_trailing_garbage", raw=pack(vc) + b"\xc1")
    add(A, "vlob_create_truncated", raw=pack(vc)[:-1])
    body = pack(vc)
    add(
        A,
        "vlob_create_duplicate_key",
        raw=bytes([body[0] + 1]) + body[1:] + pack("blob") + pack(b"x"),
    )
    add(
        A,
        "vlob_create_duplicate_cmd",
        raw=bytes([body[0] + 1]) + body[1:] + pack("cmd") + pack("ping"),
    )
    add(A, "array_form", ["vlob_create", U(1), U(2), 1, D(BASE_US), b"blob"])
    add(A, "ping_array_form", ["ping", "hello"])
    add(A, "empty_body", raw=b"")
    add(A, "nil_body", raw=pack(None))
    add(A, "empty_map", {})
    add(A, "garbage", raw=b"garbage")
    add(A, "organization_bootstrap_on_authenticated", {"cmd": "organization_bootstrap"})
    add(A, "ping", {"cmd": "ping", "ping": "hello"})
    add(A, "ping_bin", {"cmd": "ping", "ping": b"hello"})
    add(A, "ping_bin_invalid_utf8", {"cmd": "ping", "ping": b"\xff\xfe"})
    add(A, "ping_str_invalid_utf8", raw=b"\x82\xa3cmd\xa4ping\xa4ping\xa2\xff\xfe")
    add(A, "ping_int", {"cmd": "ping", "ping": 1})
    add(A, "ping_list", {"cmd": "ping", "ping": ["a"]})
    add(A, "organization_info", {"cmd": "organization_info"})
    add(A, "organization_info_extra", {"cmd": "organization_info", "x": 1})
    rb = {"cmd": "vlob_read_batch", "realm_id": U(1), "vlobs": [U(2), U(3)], "at": None}
    add(A, "vlob_read_batch", rb)
    add(A, "vlob_read_batch_at", {**rb, "at": D(BASE_US)})
    add(A, "vlob_read_batch_missing_at", {k: v for k, v in rb.items() if k != "at"})
    add(A, "vlob_read_batch_vlobs_map", {**rb, "vlobs": {}})
    add(A, "vlob_read_batch_vlobs_dup", {**rb, "vlobs": [U(2), U(2)]})
    add(A, "vlob_read_batch_vlobs_bad_item", {**rb, "vlobs": [U(2), 1]})
    add(A, "vlob_read_batch_vlobs_empty", {**rb, "vlobs": []})
    rv = {"cmd": "vlob_read_versions", "realm_id": U(1), "items": [[U(2), 1]]}
    add(A, "vlob_read_versions", rv)
    add(A, "vlob_read_versions_3tuple", {**rv, "items": [[U(2), 1, 2]]})
    add(A, "vlob_read_versions_1tuple", {**rv, "items": [[U(2)]]})
    add(A, "vlob_read_versions_version0", {**rv, "items": [[U(2), 0]]})
    add(A, "vlob_read_versions_version_u32max", {**rv, "items": [[U(2), 2**32 - 1]]})
    add(A, "vlob_read_versions_version_too_big", {**rv, "items": [[U(2), 2**32]]})
    add(A, "vlob_read_versions_item_map", {**rv, "items": [{"a": 1}]})
    cg = {
        "cmd": "certificate_get",
        "common_after": None,
        "sequester_after": D(BASE_US),
        "shamir_recovery_after": None,
        "realm_after": {U(1): D(BASE_US)},
    }
    add(A, "certificate_get", cg)
    add(A, "certificate_get_realm_after_empty", {**cg, "realm_after": {}})
    add(A, "certificate_get_realm_after_list", {**cg, "realm_after": []})
    add(A, "certificate_get_realm_after_str_key", {**cg, "realm_after": {"k": D(BASE_US)}})
    add(A, "certificate_get_realm_after_nil_value", {**cg, "realm_after": {U(1): None}})
    inu = {"cmd": "invite_new_user", "claimer_email": "a@b.com", "send_email": False}
    add(A, "invite_new_user", inu)
    add(A, "invite_new_user_send_email_int", {**inu, "send_email": 0})
    add(A, "invite_new_user_send_email_nil", {**inu, "send_email": None})
    for i, email in enumerate(EMAILS):
        add(A, f"invite_new_user_email_{i}_{email!r:.40}", {**inu, "claimer_email": email})
    gs = {"cmd": "invite_greeter_step", "greeting_attempt": U(1)}
    pk = p.PrivateKey(b"\x07" * 32).public_key.encode()
    for name, step in [
        ("step0", {"step": "NUMBER_0_WAIT_PEER", "public_key": pk}),
        ("step0_pk31", {"step": "NUMBER_0_WAIT_PEER", "public_key": pk[:31]}),
        ("step0_pk33", {"step": "NUMBER_0_WAIT_PEER", "public_key": pk + b"\x00"}),
        ("step0_pk_str", {"step": "NUMBER_0_WAIT_PEER", "public_key": "x" * 32}),
        ("step0_missing_pk", {"step": "NUMBER_0_WAIT_PEER"}),
        ("step1", {"step": "NUMBER_1_GET_HASHED_NONCE"}),
        ("step1_extra", {"step": "NUMBER_1_GET_HASHED_NONCE", "x": 1}),
        ("step2", {"step": "NUMBER_2_SEND_NONCE", "greeter_nonce": b"nonce"}),
        ("step5", {"step": "5"}),
        ("step5_long_name", {"step": "NUMBER_5_SIGNIFY_TRUST"}),
        ("step_int", {"step": 5}),
        ("step_unknown", {"step": "NUMBER_9"}),
        ("step_missing", {"public_key": pk}),
        ("step_claimer_side", {"step": "NUMBER_1_SEND_HASHED_NONCE", "hashed_nonce": b"\x00" * 32}),
        ("step_as_str", "NUMBER_1_GET_HASHED_NONCE"),
        ("step_nil", None),
    ]:
        add(A, f"invite_greeter_step_{name}", {**gs, "greeter_step": step})
    rrk = {
        "cmd": "realm_rotate_key",
        "realm_key_rotation_certificate": b"c",
        "per_participant_keys_bundle_access": {U(1): b"a"},
        "per_sequester_service_keys_bundle_access": None,
        "keys_bundle": b"k",
    }
    add(A, "realm_rotate_key", rrk)
    add(
        A,
        "realm_rotate_key_seq_map",
        {**rrk, "per_sequester_service_keys_bundle_access": {U(2): b"s"}},
    )
    add(
        A,
        "realm_rotate_key_missing_seq",
        {k: v for k, v in rrk.items() if not k.startswith("per_seq")},
    )
    add(
        A, "realm_rotate_key_bad_value", {**rrk, "per_participant_keys_bundle_access": {U(1): None}}
    )
    ea = {
        "cmd": "async_enrollment_accept",
        "enrollment_id": U(1),
        "submitter_user_certificate": b"u",
        "submitter_device_certificate": b"d",
        "submitter_redacted_user_certificate": b"ru",
        "submitter_redacted_device_certificate": b"rd",
        "accept_payload": b"p",
        "accept_payload_signature": {
            "type": "OPEN_BAO",
            "signature": "sig",
            "accepter_openbao_entity_id": "id",
        },
        "send_email": True,
    }
    add(A, "async_enrollment_accept", ea)
    add(
        A,
        "async_enrollment_accept_no_send_email",
        {k: v for k, v in ea.items() if k != "send_email"},
    )
    add(A, "async_enrollment_accept_send_email_nil", {**ea, "send_email": None})
    add(
        A,
        "async_enrollment_accept_pki",
        {
            **ea,
            "accept_payload_signature": {
                "type": "PKI",
                "signature": b"s",
                "algorithm": "RSASSA-PSS-SHA256",
                "accepter_der_x509_certificate": b"c",
                "intermediate_der_x509_certificates": [],
            },
        },
    )
    add(
        A,
        "async_enrollment_accept_pki_bad_algo",
        {
            **ea,
            "accept_payload_signature": {
                "type": "PKI",
                "signature": b"s",
                "algorithm": "RSA",
                "accepter_der_x509_certificate": b"c",
                "intermediate_der_x509_certificates": [],
            },
        },
    )
    add(
        A,
        "realm_share_key_index_u64",
        {
            "cmd": "realm_share",
            "realm_role_certificate": b"c",
            "recipient_keys_bundle_access": b"a",
            "key_index": 2**64 - 1,
        },
    )
    add(
        A,
        "invite_greeter_cancel_greeting_attempt",
        {
            "cmd": "invite_greeter_cancel_greeting_attempt",
            "greeting_attempt": U(1),
            "reason": "MANUALLY_CANCELLED",
        },
    )
    add(
        A,
        "invite_greeter_cancel_greeting_attempt_bad_reason",
        {
            "cmd": "invite_greeter_cancel_greeting_attempt",
            "greeting_attempt": U(1),
            "reason": "NOPE",
        },
    )
    add(
        A,
        "invite_new_shamir_recovery",
        {
            "cmd": "invite_new_shamir_recovery",
            "claimer_user_id": U(1),
            "send_email": True,
        },
    )
    add(A, "invite_cancel_token_15", {"cmd": "invite_cancel", "token": b"\x01" * 15})
    add(A, "invite_cancel_token_16", {"cmd": "invite_cancel", "token": b"\x01" * 16})
    add(A, "invite_cancel_token_ext", {"cmd": "invite_cancel", "token": U(1)})
    # other families
    ob = {
        "cmd": "organization_bootstrap",
        "bootstrap_token": None,
        "root_verify_key": p.SigningKey(b"\x05" * 32).verify_key.encode(),
        "user_certificate": b"u",
        "device_certificate": b"d",
        "redacted_user_certificate": b"ru",
        "redacted_device_certificate": b"rd",
        "sequester_authority_certificate": None,
    }
    N = "anonymous"
    add(N, "organization_bootstrap", ob)
    add(N, "organization_bootstrap_token", {**ob, "bootstrap_token": b"\x02" * 16})
    add(N, "organization_bootstrap_token_ext", {**ob, "bootstrap_token": U(3)})
    add(N, "organization_bootstrap_root_key_31", {**ob, "root_verify_key": b"\x00" * 31})
    add(N, "organization_bootstrap_root_key_not_point", {**ob, "root_verify_key": b"\xff" * 32})
    add(
        N,
        "organization_bootstrap_missing_sequester",
        {k: v for k, v in ob.items() if k != "sequester_authority_certificate"},
    )
    add(N, "vlob_create_on_anonymous", vc)
    add("invited", "invite_info", {"cmd": "invite_info"})
    add(
        "invited",
        "invite_claimer_step5",
        {
            "cmd": "invite_claimer_step",
            "greeting_attempt": U(1),
            "claimer_step": {"step": "NUMBER_5_WAIT_PEER_TRUST"},
        },
    )
    add(
        "invited",
        "invite_claimer_step_greeter_5",
        {
            "cmd": "invite_claimer_step",
            "greeting_attempt": U(1),
            "claimer_step": {"step": "5"},
        },
    )
    add(
        "invited",
        "invite_shamir_recovery_reveal",
        {"cmd": "invite_shamir_recovery_reveal", "reveal_token": b"\x03" * 16},
    )
    add("tos", "tos_accept", {"cmd": "tos_accept", "tos_updated_on": D(BASE_US)})
    add("tos", "tos_get", {"cmd": "tos_get"})
    add("tos", "tos_get_on_authenticated", {"cmd": "vlob_create"})
    S = "anonymous_server"
    add(S, "server_config", {"cmd": "server_config"})
    alg = {"type": "ARGON2ID", "memlimit_kb": 65536, "opslimit": 3, "parallelism": 1}
    acp = {
        "cmd": "account_create_proceed",
        "account_create_step": {
            "step": "NUMBER_1_CREATE",
            "validation_code": "ABC2DE",
            "human_handle": ["a@b.com", "Alice"],
            "auth_method_password_algorithm": alg,
            "auth_method_mac_key": b"\x01" * 32,
            "auth_method_id": U(4),
            "vault_key_access": b"v",
        },
    }
    add(S, "account_create_proceed", acp)
    for name, patch in [
        ("code_lower", {"validation_code": "abc2de"}),
        ("code_short", {"validation_code": "ABC2D"}),
        ("hh_bad_label", {"human_handle": ["a@b.com", "A<b>"]}),
        ("hh_empty_label", {"human_handle": ["a@b.com", ""]}),
        ("hh_3", {"human_handle": ["a@b.com", "A", "x"]}),
        ("hh_bad_email", {"human_handle": ["ab.com", "A"]}),
        ("hh_map", {"human_handle": {"email": "a@b.com", "label": "A"}}),
        ("alg_nil", {"auth_method_password_algorithm": None}),
        ("alg_bad_type", {"auth_method_password_algorithm": {**alg, "type": "SCRYPT"}}),
        ("alg_big", {"auth_method_password_algorithm": {**alg, "memlimit_kb": 2**32}}),
        ("alg_u32max", {"auth_method_password_algorithm": {**alg, "memlimit_kb": 2**32 - 1}}),
        ("alg_extra", {"auth_method_password_algorithm": {**alg, "x": 1}}),
        ("alg_missing", {"auth_method_password_algorithm": {"type": "ARGON2ID"}}),
        ("mac_key_31", {"auth_method_mac_key": b"\x01" * 31}),
    ]:
        body = {**acp, "account_create_step": {**acp["account_create_step"], **patch}}
        add(S, f"account_create_proceed_{name}", body)
    return [
        {"family": fam, "name": name, "hex": raw.hex(), "accepted": ok, "error": err}
        for fam, name, raw in cases
        for ok, err in [any_cmd_load(fam, raw)]
    ]


EMAILS = [
    "a@b.com",
    "a@b",
    "a.b@c.d",
    '"a b"@c.com',
    "a@[1.2.3.4]",
    "a+b@c.com",
    "@b.com",
    "a@",
    "a@@b.com",
    "a b@c.com",
    "a@b..com",
    ".a@b.com",
    "a.@b.com",
    "a..b@c.com",
    "a@-b.com",
    "a@b-.com",
    "A@B.COM",
    "a@b.c_m",
    "a@b_c.com",
    "a!#$%&'*+/=?^_`{|}~-@b.com",
    "a{b}@c.com",
    "a`b@c.com",
    "a@localhost",
    "a@b.com ",
    " a@b.com",
    "a@b.com\t",
    "a @b.com",
    "a@ b.com",
    "a@b .com",
    "a@b.com  ",
    "a@b.com\n",
    "a@xn--bcher-kva.com",
    "a(comment)@b.com",
    "é@b.com",
    "a@bé.com",
    "a\x00@b.com",
    "",
    "a@b.-com",
    "a@.b.com",
    "a@b.com.",
    'a"b@c.com',
    "a@b@c.com",
    '"a\\"b"@c.com',
    '""@b.com',
    "a@[x]",
    "a@[IPv6:::1]",
    "x" * 64 + "@b.com",
    "x" * 65 + "@b.com",
    "a@" + "b" * 64 + ".com",
    "john.doe@example.com",
    "first_last@sub.example.co.uk",
    "a-b@c-d.e-f",
]


# ---------------------------------------------------------------------------------------------
# certificates.json

SEQUESTER_SIGNING, SEQUESTER_VERIFY = p.SequesterSigningKeyDer.generate_pair(1024)
SEQUESTER_PUB_DER = SEQUESTER_VERIFY.dump()


def verdict(fn: Any) -> tuple[bool, str]:
    try:
        fn()
        return True, ""
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"[:200]


CERT_CLASSES = {
    "user_certificate": "UserCertificate",
    "device_certificate": "DeviceCertificate",
    "revoked_user_certificate": "RevokedUserCertificate",
    "user_update_certificate": "UserUpdateCertificate",
    "realm_role_certificate": "RealmRoleCertificate",
    "realm_name_certificate": "RealmNameCertificate",
    "realm_key_rotation_certificate": "RealmKeyRotationCertificate",
    "realm_archiving_certificate": "RealmArchivingCertificate",
    "shamir_recovery_brief_certificate": "ShamirRecoveryBriefCertificate",
    "shamir_recovery_share_certificate": "ShamirRecoveryShareCertificate",
    "shamir_recovery_deletion_certificate": "ShamirRecoveryDeletionCertificate",
    "sequester_authority_certificate": "SequesterAuthorityCertificate",
    "sequester_service_certificate": "SequesterServiceCertificate",
    "sequester_revoked_service_certificate": "SequesterRevokedServiceCertificate",
}
RSA_SIGNED = {"sequester_service_certificate", "sequester_revoked_service_certificate"}


def official_verify(tag: str, signed: bytes, key: Any, author: Any = "any") -> None:
    cls = getattr(p, CERT_CLASSES[tag])
    if tag in RSA_SIGNED:
        cls.load(key.verify(signed))
        return
    if tag == "sequester_authority_certificate":
        cls.verify_and_load(signed, author_verify_key=key)
        return
    if author == "any":
        # the bindings of some types insist on expected_author: take it from the content
        author = cls.unsecure_load(signed).author if hasattr(cls, "unsecure_load") else None
    cls.verify_and_load(signed, author_verify_key=key, expected_author=author)


def make_certificates(schema_dir: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    signing = p.SigningKey(hashlib.sha256(b"certif-signing-key").digest())
    verify = signing.verify_key
    for c in load_certifs(schema_dir):
        cls = getattr(p, CERT_CLASSES[c.type_tag])
        n_samples = max(2, count_variants([f.type for f in c.fields], c.nested))
        for i in range(n_samples):
            sampler = Sampler(p, c.nested, variant=i, none=i % 2 == 1)
            kwargs, expected = sampler.sample_fields(c.fields)
            if c.type_tag == "device_certificate" and kwargs.get("purpose") is None:
                kwargs["purpose"] = p.DevicePurpose.STANDARD
                expected["purpose"] = "STANDARD"
            if c.type_tag == "shamir_recovery_brief_certificate":
                kwargs["threshold"] = 1
                expected["threshold"] = 1
            cert = cls(**kwargs)
            if c.type_tag in RSA_SIGNED:
                signed = SEQUESTER_SIGNING.sign(cert.dump())
                key_hex = SEQUESTER_PUB_DER.hex()
            else:
                signed = cert.dump_and_sign(signing)
                key_hex = verify.encode().hex()
            key = verify if c.type_tag not in RSA_SIGNED else SEQUESTER_VERIFY
            ok, err = verdict(lambda t=c.type_tag, s=signed, k=key: official_verify(t, s, k))
            assert ok, (c.type_tag, err)
            out.append(
                {
                    "kind": "official",
                    "type": c.type_tag,
                    "signed": signed.hex(),
                    "verify_key": key_hex,
                    "fields": expected,
                    "accepted": True,
                }
            )
    out += make_crafted_certificates(signing, verify)
    return out


def make_crafted_certificates(signing: Any, verify: Any) -> list[dict[str, Any]]:
    """Contents we build by hand (msgpack + zstd raw frame), signed with the real key."""
    U = lambda n: ext_uuid(det_uuid(5000 + n))  # noqa: E731
    ts = ext_dt(BASE_US)
    author = U(0)
    pk = p.PrivateKey(b"\x09" * 32).public_key.encode()
    vk = p.SigningKey(b"\x0a" * 32).verify_key.encode()
    base: dict[str, dict[str, Any]] = {
        "user_certificate": {
            "type": "user_certificate",
            "author": author,
            "timestamp": ts,
            "user_id": U(1),
            "human_handle": ["a@b.com", "Alice"],
            "public_key": pk,
            "algorithm": "X25519_XSALSA20_POLY1305",
            "profile": "STANDARD",
        },
        "device_certificate": {
            "type": "device_certificate",
            "author": author,
            "timestamp": ts,
            "user_id": U(1),
            "device_id": U(2),
            "device_label": "My laptop",
            "verify_key": vk,
            "algorithm": "ED25519",
        },
        "realm_role_certificate": {
            "type": "realm_role_certificate",
            "author": author,
            "timestamp": ts,
            "realm_id": U(3),
            "user_id": U(1),
            "role": "OWNER",
        },
        "shamir_recovery_brief_certificate": {
            "type": "shamir_recovery_brief_certificate",
            "author": author,
            "timestamp": ts,
            "user_id": U(1),
            "threshold": 2,
            "per_recipient_shares": {U(4): 1, U(5): 2},
        },
        "shamir_recovery_deletion_certificate": {
            "type": "shamir_recovery_deletion_certificate",
            "author": author,
            "timestamp": ts,
            "setup_to_delete_timestamp": ts,
            "setup_to_delete_user_id": U(1),
            "share_recipients": [U(4), U(5)],
        },
        "realm_archiving_certificate": {
            "type": "realm_archiving_certificate",
            "author": author,
            "timestamp": ts,
            "realm_id": U(3),
            "configuration": {"type": "DELETION_PLANNED", "deletion_date": ts},
        },
        "realm_key_rotation_certificate": {
            "type": "realm_key_rotation_certificate",
            "author": author,
            "timestamp": ts,
            "realm_id": U(3),
            "key_index": 1,
            "encryption_algorithm": "BLAKE2_XSALSA20_POLY1305",
            "hash_algorithm": "SHA256",
            "key_canary": b"canary",
        },
    }
    mutations: list[tuple[str, str, Any]] = [
        ("user_certificate", "as_is", {}),
        ("user_certificate", "redacted", {"human_handle": None}),
        ("user_certificate", "root_author", {"author": None}),
        ("user_certificate", "extra_field", {"zzz": 1}),
        ("user_certificate", "missing_profile", {"profile": "$del"}),
        ("user_certificate", "bad_profile", {"profile": "ROOT"}),
        ("user_certificate", "bad_algorithm", {"algorithm": "RSA"}),
        ("user_certificate", "label_invalid", {"human_handle": ["a@b.com", "A<"]}),
        ("user_certificate", "label_nfd", {"human_handle": ["a@b.com", "Zoe\u0301"]}),
        ("user_certificate", "email_invalid", {"human_handle": ["ab.com", "A"]}),
        ("user_certificate", "public_key_31", {"public_key": pk[:31]}),
        ("user_certificate", "author_bin", {"author": b"\x00" * 16}),
        ("user_certificate", "wrong_type_tag", {"type": "device_certificate"}),
        ("user_certificate", "missing_type_tag", {"type": "$del"}),
        ("device_certificate", "as_is", {}),
        ("device_certificate", "purpose_absent_redacted", {"device_label": None}),
        ("device_certificate", "purpose_shamir", {"purpose": "SHAMIR_RECOVERY"}),
        ("device_certificate", "purpose_nil", {"purpose": None}),
        ("device_certificate", "purpose_bad", {"purpose": "FOO"}),
        ("device_certificate", "label_empty", {"device_label": ""}),
        ("device_certificate", "label_256", {"device_label": "x" * 256}),
        ("device_certificate", "verify_key_not_point", {"verify_key": b"\xff" * 32}),
        ("realm_role_certificate", "as_is", {}),
        ("realm_role_certificate", "role_nil", {"role": None}),
        ("realm_role_certificate", "role_bad", {"role": "ADMIN"}),
        ("realm_role_certificate", "author_nil", {"author": None}),
        ("shamir_recovery_brief_certificate", "as_is", {}),
        ("shamir_recovery_brief_certificate", "threshold_0", {"threshold": 0}),
        ("shamir_recovery_brief_certificate", "threshold_above_total", {"threshold": 4}),
        ("shamir_recovery_brief_certificate", "threshold_equal_total", {"threshold": 3}),
        ("shamir_recovery_brief_certificate", "no_recipient", {"per_recipient_shares": {}}),
        (
            "shamir_recovery_brief_certificate",
            "share_0",
            {"per_recipient_shares": {U(4): 0}, "threshold": 1},
        ),
        (
            "shamir_recovery_brief_certificate",
            "shares_total_256",
            {"per_recipient_shares": {U(4): 255, U(5): 1}, "threshold": 1},
        ),
        (
            "shamir_recovery_brief_certificate",
            "shares_total_255",
            {"per_recipient_shares": {U(4): 254, U(5): 1}, "threshold": 1},
        ),
        (
            "shamir_recovery_brief_certificate",
            "author_is_recipient",
            {"per_recipient_shares": {U(1): 1, U(5): 1}, "threshold": 1},
        ),
        ("shamir_recovery_deletion_certificate", "as_is", {}),
        (
            "shamir_recovery_deletion_certificate",
            "dup_recipients",
            {"share_recipients": [U(4), U(4)]},
        ),
        ("shamir_recovery_deletion_certificate", "no_recipients", {"share_recipients": []}),
        ("realm_archiving_certificate", "as_is", {}),
        ("realm_archiving_certificate", "available", {"configuration": {"type": "AVAILABLE"}}),
        ("realm_archiving_certificate", "archived", {"configuration": {"type": "ARCHIVED"}}),
        ("realm_archiving_certificate", "bad_config", {"configuration": {"type": "GONE"}}),
        (
            "realm_archiving_certificate",
            "deletion_without_date",
            {"configuration": {"type": "DELETION_PLANNED"}},
        ),
        ("realm_archiving_certificate", "config_as_str", {"configuration": "AVAILABLE"}),
        ("realm_key_rotation_certificate", "as_is", {}),
        ("realm_key_rotation_certificate", "key_index_0", {"key_index": 0}),
        ("realm_key_rotation_certificate", "bad_hash", {"hash_algorithm": "MD5"}),
    ]
    out: list[dict[str, Any]] = []
    for tag, name, patch in mutations:
        content = dict(base[tag])
        for k, v in patch.items():
            if v == "$del":
                content.pop(k, None)
            else:
                content[k] = v
        serialized = b"\x00" + zstd_raw_frame(pack(content))
        signed = signing.sign(serialized)
        target = tag
        ok, err = verdict(lambda t=target, s=signed: official_verify(t, s, verify))
        out.append(
            {
                "kind": "crafted",
                "type": tag,
                "name": name,
                "signed": signed.hex(),
                "verify_key": verify.encode().hex(),
                "accepted": ok,
                "error": err,
            }
        )
    # framing problems
    content = pack(base["realm_role_certificate"])
    for name, serialized in [
        ("version_1", b"\x01" + zstd_raw_frame(content)),
        ("no_zstd", b"\x00" + content),
        ("empty", b""),
        ("version_only", b"\x00"),
        ("zstd_trailing", b"\x00" + zstd_raw_frame(content) + b"\x00"),
        ("msgpack_trailing", b"\x00" + zstd_raw_frame(content + b"\xc0")),
    ]:
        signed = signing.sign(serialized)
        ok, err = verdict(lambda s=signed: official_verify("realm_role_certificate", s, verify))
        out.append(
            {
                "kind": "crafted",
                "type": "realm_role_certificate",
                "name": name,
                "signed": signed.hex(),
                "verify_key": verify.encode().hex(),
                "accepted": ok,
                "error": err,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# misc.json


def make_misc() -> dict[str, Any]:
    from parsec.components.auth import AuthenticatedToken

    out: dict[str, Any] = {}
    out["emails"] = [[e, verdict(lambda e=e: p.EmailAddress(e))[0]] for e in EMAILS]
    labels = [
        "Alice",
        "",
        " ",
        "a" * 254,
        "a" * 255,
        "a" * 256,
        "é" * 127,
        "é" * 128,
        "a\nb",
        "a\x00b",
        "<a>",
        "a@b",
        "a,b",
        "a:b",
        "a;b",
        "a[b",
        "a]b",
        "a\\b",
        'a"b',
        "a\u037eb",
        "e\u0301",
        "Zoe\u0301 " * 40,
    ]
    hh = []
    for label in labels:
        ok = verdict(lambda label=label: p.HumanHandle(p.EmailAddress("a@b.com"), label))[0]
        norm = p.HumanHandle(p.EmailAddress("a@b.com"), label).label if ok else None
        dl_ok = verdict(lambda label=label: p.DeviceLabel(label))[0]
        dl_norm = p.DeviceLabel(label).str if dl_ok else None
        hh.append(
            {
                "label": label,
                "human_ok": ok,
                "human_norm": norm,
                "device_ok": dl_ok,
                "device_norm": dl_norm,
            }
        )
    out["labels"] = hh
    orgs = [
        "Org",
        "a" * 32,
        "a" * 33,
        "é" * 16,
        "é" * 17,
        "a-b_c",
        "a.b",
        "a b",
        "",
        "e\u0301",
        "ÉCOLE",
        "١٢٣",
        "ß",
        "ᵃ",
        "a/b",
        "a\x00",
        "CoolOrg-2024_x",
    ]
    out["organization_ids"] = [[o, verdict(lambda o=o: p.OrganizationID(o))[0]] for o in orgs]
    codes = ["ABCDEF", "abcdef", "ABCDE", "ABCDEFG", "AB1DEF", "A2345Z", "0OIL89", "A7B7C7"]
    # Every character of the alphabet, alone (the official alphabet is 2-9 and A-Z without I and O).
    codes += [c * 6 for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"]
    out["validation_codes"] = [[c, verdict(lambda c=c: p.ValidationCode(c))[0]] for c in codes]
    u = det_uuid(42)
    texts = [
        u.hex,
        u.hex.upper(),
        str(u),
        str(u).upper(),
        "{" + str(u) + "}",
        "urn:uuid:" + str(u),
        "{" + u.hex + "}",
        u.hex[:-1],
        u.hex + "0",
        " " + u.hex,
        str(u).replace("-", "", 1),
        u.hex[:12] + "-" + u.hex[12:],
        "urn:uuid:" + u.hex,
        "g" * 32,
        "",
    ]
    out["uuid_texts"] = [
        [
            t,
            verdict(lambda t=t: p.DeviceID.from_hex(t))[0],
            verdict(lambda t=t: p.AccessToken.from_hex(t))[0],
        ]
        for t in texts
    ]
    # authenticated tokens
    sk = p.SigningKey(hashlib.sha256(b"token-signing-key").digest())
    device = p.DeviceID.from_hex(det_uuid(7).hex)
    now = p.DateTime.from_timestamp_seconds(1_795_572_044)
    good = AuthenticatedToken.generate_raw(device, now, sk)
    out["token_device_id"] = device.hex
    out["token_verify_key"] = sk.verify_key.encode().hex()
    out["token_good"] = good.decode()
    header, dev, secs, sig = good.decode().split(".")
    variants = {
        "good": good.decode(),
        "hyphenated": f"{header}.{uuid.UUID(dev)!s}.{secs}.{sig}",
        "upper_hex": f"{header}.{dev.upper()}.{secs}.{sig}",
        "no_padding": f"{header}.{dev}.{secs}.{sig.rstrip('=')}",
        "std_b64": f"{header}.{dev}.{secs}.{sig.replace('-', '+').replace('_', '/')}",
        "bad_header": f"PARSEC-SIGN-ED448.{dev}.{secs}.{sig}",
        "lower_header": f"{header.lower()}.{dev}.{secs}.{sig}",
        "missing_part": f"{header}.{dev}.{sig}",
        "extra_part": f"{header}.{dev}.{secs}.1.{sig}",
        "bad_uuid": f"{header}.{dev[:-1]}.{secs}.{sig}",
        "float_ts": f"{header}.{dev}.{secs}.5.{sig}",
        "neg_ts": f"{header}.{dev}.-{secs}.{sig}",
        "plus_ts": f"{header}.{dev}.+{secs}.{sig}",
        "underscore_ts": f"{header}.{dev}.{secs[:3]}_{secs[3:]}.{sig}",
        "hex_ts": f"{header}.{dev}.0x{int(secs):x}.{sig}",
        "empty_sig": f"{header}.{dev}.{secs}.",
        "junk_in_sig": f"{header}.{dev}.{secs}.{sig[:10]}!{sig[10:]}",
        "short_sig": f"{header}.{dev}.{secs}.{sig[:-8]}==",
        "empty": "",
    }
    tok = []
    for name, raw in variants.items():
        try:
            t = AuthenticatedToken.from_raw(raw.encode())
            tok.append(
                {
                    "name": name,
                    "raw": raw,
                    "parsed": True,
                    "device_id": t.device_id.hex,
                    "timestamp": t.timestamp.as_timestamp_seconds(),
                    "signed": t.header_and_payload.decode(),
                    "verifies": t.verify(sk.verify_key),
                }
            )
        except ValueError:
            tok.append({"name": name, "raw": raw, "parsed": False})
    out["tokens"] = tok
    # URLs
    org = p.OrganizationID("CoolOrg")
    token = p.AccessToken.from_bytes(det_bytes(99, 16))
    urls = []
    for host, port, ssl in [
        ("127.0.0.1", 6770, False),
        ("parsec.example.com", None, True),
        ("parsec.example.com", 443, True),
        ("example.org", 8443, True),
        ("localhost", 80, False),
    ]:
        for tok_value in (token, None):
            a = p.ParsecOrganizationBootstrapAddr(
                organization_id=org, token=tok_value, hostname=host, port=port, use_ssl=ssl
            )
            urls.append(
                {
                    "action": "bootstrap_organization",
                    "host": host,
                    "port": port,
                    "use_ssl": ssl,
                    "token": tok_value.hex if tok_value else None,
                    "url": a.to_url(),
                    "redirect": a.to_http_redirection_url(),
                }
            )
        for itype, action in [
            (p.InvitationType.USER, "claim_user"),
            (p.InvitationType.DEVICE, "claim_device"),
            (p.InvitationType.SHAMIR_RECOVERY, "claim_shamir_recovery"),
        ]:
            a = p.ParsecInvitationAddr(
                organization_id=org,
                invitation_type=itype,
                token=token,
                hostname=host,
                port=port,
                use_ssl=ssl,
            )
            urls.append(
                {
                    "action": action,
                    "host": host,
                    "port": port,
                    "use_ssl": ssl,
                    "token": token.hex,
                    "url": a.to_url(),
                    "redirect": a.to_http_redirection_url(),
                }
            )
    out["urls"] = urls
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schema")
    args = parser.parse_args()
    schema_dir = find_schema_dir(args.schema)
    OUT.mkdir(parents=True, exist_ok=True)
    requests, replies = make_command_vectors(schema_dir)
    files = {
        "requests.json": requests,
        "replies.json": replies,
        "req_acceptance.json": make_acceptance(),
        "certificates.json": make_certificates(schema_dir),
        "misc.json": make_misc(),
    }
    for name, data in files.items():
        (OUT / name).write_text(
            json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"wrote {OUT.relative_to(ROOT) / name} ({len(data)} entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
