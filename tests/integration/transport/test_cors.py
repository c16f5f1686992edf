"""`--cors-allow-origins`: what a browser running the web client on another origin needs, over real
HTTP: the preflight of every kind of request the client makes (RPC, event stream with
`Last-Event-ID`, administration PATCH) and the CORS headers on the real replies, the protocol headers
the client reads exposed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "commands"))
from conftest import RunningServer, run_server
from core_helpers import ADMIN_TOKEN, Org, Server

APP = "https://app.example.com"
OTHER = "https://evil.example.net"


@pytest.fixture
def srv(db_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    with run_server(db_url, tmp_path, "--cors-allow-origins", APP, token=ADMIN_TOKEN) as s:
        yield s


def _preflight(
    srv: RunningServer, path: str, origin: str, method: str, headers: str
) -> httpx.Response:
    return httpx.options(
        srv.url() + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def _listed(value: str | None) -> set[str]:
    return {v.strip().lower() for v in (value or "").split(",") if v.strip()}


@pytest.mark.parametrize(
    ("path", "method", "headers"),
    [
        ("/authenticated/MyOrg", "POST", "api-version, authorization, content-type"),
        ("/authenticated/MyOrg/events", "GET", "api-version, authorization, last-event-id"),
        ("/anonymous/MyOrg", "POST", "api-version, content-type, user-agent"),
        ("/invited/MyOrg", "POST", "Api-Version, Authorization, Content-Type"),
        ("/administration/organizations/MyOrg", "PATCH", "authorization, content-type"),
    ],
)
def test_preflight_of_an_allowed_origin(
    srv: RunningServer, path: str, method: str, headers: str
) -> None:
    r = _preflight(srv, path, APP, method, headers)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == APP
    assert "origin" in _listed(r.headers.get("vary"))
    assert method in r.headers["access-control-allow-methods"]
    assert _listed(headers) <= _listed(r.headers["access-control-allow-headers"])
    assert int(r.headers["access-control-max-age"]) > 0


@pytest.mark.parametrize(
    ("origin", "method", "headers", "reason"),
    [
        (OTHER, "POST", "api-version", "origin"),
        (APP, "DELETE", "api-version", "method"),
        (APP, "POST", "x-unknown", "headers"),
    ],
)
def test_preflight_refused(
    srv: RunningServer, origin: str, method: str, headers: str, reason: str
) -> None:
    r = _preflight(srv, "/authenticated/MyOrg", origin, method, headers)
    assert r.status_code == 400
    assert reason in r.text
    assert r.headers.get("access-control-allow-origin") != OTHER


async def test_real_replies_carry_the_cors_headers(srv: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=srv.url()) as http:
        # A handshake error: the client reads Supported-Api-Versions, so it must be exposed.
        r = await http.post("/anonymous/MyOrg", headers={"Origin": APP}, content=b"")
        assert r.status_code == 422
        assert "supported-api-versions" in r.headers
        assert r.headers["access-control-allow-origin"] == APP
        exposed = _listed(r.headers["access-control-expose-headers"])
        assert {"api-version", "supported-api-versions", "retry-after", "server"} <= exposed

        # An organization, a device, then its event stream from the browser's origin, resumed
        # with a Last-Event-ID as the browser sends it after a disconnection.
        server = Server(None, http)  # type: ignore[arg-type]  # a remote server: no app object
        org: Org = await server.bootstrap_org()
        device = org.alice
        async with http.stream(
            "GET",
            f"/authenticated/{device.organization_id}/events",
            headers={
                **device.headers(),
                "Accept": "text/event-stream",
                "Origin": APP,
                "Last-Event-ID": "00" * 16,
            },
            timeout=10,
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["access-control-allow-origin"] == APP
            assert "api-version" in _listed(stream.headers["access-control-expose-headers"])

        r = await http.post(
            f"/authenticated/{device.organization_id}",
            headers={**device.headers(), "Origin": APP},
            content=b"\x80",
        )
        assert r.headers["access-control-allow-origin"] == APP
        assert r.headers["api-version"] == "5.6"

        # Another origin gets no CORS header at all (the browser then hides the reply); no Origin
        # (a native client) neither.
        r = await http.get("/", headers={"Origin": OTHER})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        r = await http.get("/")
        assert "access-control-allow-origin" not in r.headers


def test_without_the_option_there_is_no_cors(db_url: str, tmp_path: Path) -> None:
    with run_server(db_url, tmp_path) as srv:
        r = _preflight(srv, "/authenticated/MyOrg", APP, "POST", "api-version")
        assert "access-control-allow-origin" not in r.headers
        r = httpx.get(srv.url() + "/", headers={"Origin": APP})
        assert "access-control-allow-origin" not in r.headers


def test_any_origin(db_url: str, tmp_path: Path) -> None:
    with run_server(db_url, tmp_path, "--cors-allow-origins", "*") as srv:
        r = _preflight(srv, "/anonymous/MyOrg", OTHER, "POST", "api-version, content-type")
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "*"
