"""A real `parsec-server run --trusted-x509-root-dir` process: the ASYNC_ENROLLMENT event on the
event streams of ADMINs only, and the trusted roots applied end to end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

from pki_support import Pki, pki_signature, submit_payload
from sse_support import ServerProcess, http_server, open_events


async def test_admins_hear_async_enrollment_and_untrusted_chains_are_refused(
    spawn_server: Callable[..., ServerProcess], pki: Pki, tmp_path: Path
) -> None:
    roots = pki.write_root_dir(tmp_path / "roots")
    proc = spawn_server("--trusted-x509-root-dir", str(roots))
    async with http_server(proc) as server:
        org = await server.bootstrap_org()
        alice = org.alice
        bob = await alice.create_user("bob")
        payload = submit_payload()

        async def submit(signer_sig: dict[str, object]) -> dict[str, object]:
            return await server.anonymous(
                org.organization_id,
                "async_enrollment_submit",
                enrollment_id=uuid.uuid4(),
                force=False,
                submit_payload=payload,
                submit_payload_signature=signer_sig,
            )

        async with open_events(alice) as a_stream, open_events(bob) as b_stream:
            assert (await a_stream.next_data())["event"] == "ORGANIZATION_CONFIG"
            assert (await b_stream.next_data())["event"] == "ORGANIZATION_CONFIG"
            untrusted = pki_signature("submitter", pki.untrusted_leaf, payload, [])
            assert await submit(untrusted) == {"status": "invalid_x509_trustchain"}
            trusted = pki_signature("submitter", pki.leaf, payload, [pki.intermediate])
            assert (await submit(trusted))["status"] == "ok"
            got = await asyncio.wait_for(a_stream.next_data(), 10)
            assert got == {"status": "ok", "event": "ASYNC_ENROLLMENT"}
            assert await alice.rpc("ping", ping="after") == {"status": "ok", "pong": "after"}
            # bob (STANDARD) hears the ping, not the enrollment event committed before it.
            got = await asyncio.wait_for(b_stream.next_data(), 10)
            assert got == {"status": "ok", "event": "PINGED", "ping": "after"}
