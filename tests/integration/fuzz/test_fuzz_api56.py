"""The commands added last (cryptpad_register_session, API 5.6; scws_service_mutual_challenges, SCWS)
under fuzz: well-typed requests with the realm, ids and keys the server knows, then mutated (wrong
types, missing fields, huge indexes, garbage); the SCWS one on a server with SCWS configured. Never a
500, a traceback or a reply outside the schema, and the fuzz reaches the handlers' outcomes.
"""

from __future__ import annotations

import uuid
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fuzz_schema import commands, mutate, request, require_schemas
from fuzz_support import FuzzServer, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from parsec_server.config import ScwsConfig
from parsec_server.crypto import scws
from parsec_server.protocol.codec import now, packb


def test_cryptpad_register_session(fz: FuzzServer) -> None:
    require_schemas()
    spec = commands("authenticated")["cryptpad_register_session"]
    pools = fz.pools("authenticated")
    seen: set[str] = set()

    def valid(data: st.DataObject) -> dict[str, Any]:
        return {
            "cmd": "cryptpad_register_session",
            "realm_id": fz.realm_id,
            "document_id": data.draw(st.sampled_from([fz.vlob_id, uuid.UUID(int=7)])),
            "key_index": 1,
            "timestamp": now(),
            "encrypted_candidate_view_key": b"view",
            "encrypted_candidate_edit_key": data.draw(st.sampled_from([b"edit", None])),
        }

    @fuzz_settings(150)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["valid", "mutated", "typed"]))
        if kind == "typed":
            req = data.draw(mutate(data.draw(request(spec, pools))))
        else:
            req = valid(data)
            if kind == "mutated":
                req = data.draw(mutate(req))
        reply = fz.run(fz.rpc("authenticated", packb(req)))
        cmd = req.get("cmd")
        rep = fz.check_rpc(
            reply, "authenticated", cmd if cmd == "cryptpad_register_session" else None
        )
        if rep is not None and cmd == "cryptpad_register_session":
            seen.add(rep["status"])

    run()
    assert "ok" in seen, seen
    assert len(seen) >= 3, seen  # typically ok, author_not_allowed, realm_not_found, bad_key_index


def test_scws_service_mutual_challenges(fz: FuzzServer) -> None:
    require_schemas()
    idopte = rsa.generate_private_key(65537, 2048)
    web_app = rsa.generate_private_key(65537, 2048)
    public = idopte.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fz.app.backend.config = _with_scws(
        fz.app.backend.config,
        ScwsConfig(
            idopte_public_keys=scws.load_idopte_public_keys(public),
            web_application_private_key=web_app,
        ),
    )
    spec = commands("anonymous_server")["scws_service_mutual_challenges"]
    pools = fz.pools("anonymous_server")
    seen: set[str] = set()

    @fuzz_settings(120)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        payload = data.draw(st.binary(max_size=300))
        signature = scws.raw_sign(idopte, payload[:200]) or b""
        req: dict[str, Any] = {
            "cmd": "scws_service_mutual_challenges",
            "scws_service_challenge_payload": payload[:200],
            "scws_service_challenge_signature": signature,
            "scws_service_challenge_key_id": data.draw(st.sampled_from([0, 0, 1, 2**64 - 1])),
            "web_application_challenge_payload": payload,
        }
        kind = data.draw(st.sampled_from(["valid", "mutated", "typed"]))
        if kind == "typed":
            req = data.draw(mutate(data.draw(request(spec, pools))))
        elif kind == "mutated":
            req = data.draw(mutate(req))
        reply = fz.run(fz.rpc("anonymous_server", packb(req)))
        cmd = req.get("cmd")
        rep = fz.check_rpc(
            reply, "anonymous_server", cmd if cmd == "scws_service_mutual_challenges" else None
        )
        if rep is not None and cmd == "scws_service_mutual_challenges":
            seen.add(rep["status"])

    run()
    assert {"ok", "unknown_scws_service_challenge_key_id"} <= seen, seen


def _with_scws(config: Any, scws_config: ScwsConfig) -> Any:
    from dataclasses import replace

    return replace(config, scws=scws_config)
