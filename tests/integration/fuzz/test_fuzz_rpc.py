"""Property tests: random and mutated bodies on every RPC route never get an HTTP 500, a status
outside protocol.md §1.4, an undecodable 200 or a traceback in the logs.

Each test runs one server (fixture `fz`, see fuzz_support) and sends one request per example, with
valid headers and a valid Authorization so the body reaches the decoder and the handlers.
"""

from __future__ import annotations

import pytest
from fuzz_schema import commands, garbage, keys, mutate, request, require_schemas
from fuzz_smart import SMART
from fuzz_support import ROUTE_FAMILIES, FuzzServer, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from parsec_server.protocol.codec import packb
from parsec_server.protocol.generated import FAMILIES


def _org(fz: FuzzServer, data: st.DataObject, family: str) -> str | None:
    """Mostly the bootstrapped organization; the anonymous route also gets the fresh one and
    unknown ones."""
    if family != "anonymous":
        return None
    return data.draw(st.sampled_from([fz.org_id, fz.fresh_org_id, fz.fresh_org_id, "NoSuchOrg"]))


@pytest.mark.parametrize("family", ROUTE_FAMILIES)
@fuzz_settings(200)
@given(data=st.data())
def test_garbage_bodies(fz: FuzzServer, family: str, data: st.DataObject) -> None:
    """Random bytes; random msgpack values (maps or not, any keys); the family's commands with
    random fields: 415 (or a protocol reply when it happens to decode), never a 500."""
    cmds = sorted(FAMILIES[family].REQS)
    kind = data.draw(st.sampled_from(["bytes", "msgpack", "map", "cmd"]))
    if kind == "bytes":
        body = data.draw(st.one_of(st.binary(max_size=300), st.binary(max_size=8)))
    elif kind == "msgpack":
        body = packb(data.draw(garbage))
    elif kind == "map":
        body = packb(data.draw(st.dictionaries(keys, garbage, max_size=6)))
    else:
        fields = data.draw(st.dictionaries(st.text(max_size=30), garbage, max_size=6))
        body = packb({"cmd": data.draw(st.sampled_from(cmds)), **fields})
    reply = fz.run(fz.rpc(family, body, org_id=_org(fz, data, family)))
    fz.check_rpc(reply)
    if kind == "bytes":
        assert reply.status in (200, 404, 415), (
            reply
        )  # 200 only if the bytes happen to be a valid request


# Examples per family: the authenticated family has 41 commands.
_EXAMPLES = {
    "anonymous": 300,
    "anonymous_server": 200,
    "invited": 250,
    "authenticated": 800,
    "tos": 200,
    "authenticated_account": 300,
}


@pytest.mark.parametrize("family", ROUTE_FAMILIES)
def test_mutated_requests(fz: FuzzServer, family: str) -> None:
    """A request of any command of the family, with one field mutated (wrong type, missing,
    huge/negative int, wrong-length bytes or ids, bad enum, garbage deep inside a nested union,
    extra keys, another `cmd`...) or none. The request is either well-typed with ids, tokens and
    certificates the server knows (fuzz_schema) or, for certificate-carrying commands, fully
    valid with consistent certificates (fuzz_smart), so the fuzz reaches the database writes."""
    require_schemas()
    specs = list(commands(family).values())
    pools = fz.pools(family)
    world = fz.world()
    smart = {cmd: make(world) for cmd, make in SMART.get(family, {}).items()}
    seen: dict[str, set[str]] = {}

    @fuzz_settings(_EXAMPLES[family])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        spec = data.draw(st.sampled_from(specs), label="command")
        if spec.cmd in smart and data.draw(st.integers(0, 2), label="smart") > 0:
            req = data.draw(smart[spec.cmd], label="valid request")
            if data.draw(st.booleans(), label="mutated"):
                req = data.draw(mutate(req), label="sent")
        else:
            req = data.draw(
                mutate(data.draw(request(spec, pools), label="well-typed request")), label="sent"
            )
        reply = fz.run(fz.rpc(family, packb(req), org_id=_org(fz, data, family)))
        cmd = req.get("cmd")
        if not (isinstance(cmd, str) and cmd in FAMILIES[family].REQS):
            fz.check_rpc(reply)
            return
        rep = fz.check_rpc(reply, family, cmd)
        if rep is not None:
            seen.setdefault(cmd, set()).add(rep["status"])

    run()
    # The fuzz reaches the handlers, not only the decoder.
    assert seen, "no request was decoded"
    if family == "authenticated":
        assert len(seen) >= 28, seen  # typically 36-40 of 41
        assert sum(len(v) for v in seen.values()) >= 45, seen  # typically 68-80
        ok = {cmd for cmd, statuses in seen.items() if "ok" in statuses}
        assert len(ok) >= 7, ok  # typically 11-15


@pytest.mark.parametrize("family", ROUTE_FAMILIES)
@fuzz_settings(150)
@given(data=st.data())
def test_mutated_wire_bytes(fz: FuzzServer, family: str, data: st.DataObject) -> None:
    """A well-typed request's bytes flipped, inserted, deleted or cut (invalid UTF-8, wrong
    lengths, bad map headers, duplicated keys...)."""
    require_schemas()
    spec = data.draw(st.sampled_from(list(commands(family).values())))
    body = bytearray(packb(data.draw(request(spec, fz.pools(family)))))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = data.draw(st.integers(0, 2**16)) % max(len(body), 1)  # lengths vary with the clock
        if op == "flip" and body:
            body[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            body[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif body:
            del body[pos]
    if data.draw(st.booleans()):
        body = body[: data.draw(st.integers(0, 2**16)) % (len(body) + 1)]
    reply = fz.run(fz.rpc(family, bytes(body), org_id=_org(fz, data, family)))
    fz.check_rpc(reply)


_ROUTE_CMDS = {f: set(FAMILIES[f].REQS) for f in ROUTE_FAMILIES}
_FOREIGN = sorted(
    (fam, cmd, route)
    for fam in FAMILIES
    for cmd in FAMILIES[fam].REQS
    for route in ROUTE_FAMILIES
    if cmd not in _ROUTE_CMDS[route]
)


@fuzz_settings(300)
@given(data=st.data())
def test_commands_of_another_family(fz: FuzzServer, data: st.DataObject) -> None:
    """A well-typed request of a command the route's family does not have (other families,
    authenticated_account included) is 415, whatever its fields."""
    require_schemas()
    fam, cmd, route = data.draw(st.sampled_from(_FOREIGN))
    spec = commands(fam)[cmd]
    req = data.draw(request(spec, fz.pools(fam)))
    reply = fz.run(fz.rpc(route, packb(req)))
    fz.check_rpc(reply)
    assert reply.status == 415, f"{fam}.{cmd} on the {route} route: HTTP {reply.status}"
