"""`GET /administration/openapi.json`: an OpenAPI 3 document of the administration API that matches
the routes that really exist: every route of asgi/admin.py documented with its methods, every
documented operation answered by the server (not 404 Not Found / 405), every other method 405."""

# ruff: noqa: F811  (pytest fixtures imported from core_helpers are redefined as arguments)
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "commands"))
from core_helpers import ADMIN_TOKEN, Server, server  # noqa: F401

from parsec_server.asgi import admin

METHODS = ("get", "post", "patch", "put", "delete")


async def _document(server: Server) -> dict[str, Any]:
    r = await server.http.get("/administration/openapi.json")  # no token needed
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    doc: dict[str, Any] = r.json()
    return doc


def _operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


async def test_document_is_openapi_3_and_well_formed(server: Server) -> None:
    doc = await _document(server)
    assert doc["openapi"].startswith("3.")
    assert doc["servers"] == [{"url": "/administration"}]
    assert "administrationToken" in doc["components"]["securitySchemes"]
    # Every $ref resolves, every path parameter is declared.
    text = str(doc)
    for ref in re.findall(r"#/components/schemas/(\w+)", text):
        assert ref in doc["components"]["schemas"], ref
    for path, item in doc["paths"].items():
        declared = {p["name"] for p in item.get("parameters", [])}
        assert set(re.findall(r"\{(\w+)\}", path)) == declared, path
        for method in METHODS:
            if method in item:
                assert "200" in item[method]["responses"], (path, method)
                assert item[method].get("operationId"), (path, method)


async def test_document_matches_the_route_table(server: Server) -> None:
    doc = await _document(server)
    assert _operations(doc) == set(admin.ROUTES)


def _concrete(path: str, org: str) -> str:
    return "/administration" + path.replace("{organization_id}", org)


async def test_documented_operations_exist_and_others_do_not(server: Server) -> None:
    doc = await _document(server)
    org, _token = await server.create_org()
    documented = _operations(doc)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for path in doc["paths"]:
        for method in METHODS:
            r = await server.http.request(
                method.upper(), _concrete(path, org), headers=auth, json={}
            )
            if (method.upper(), path) in documented:
                # Answered by its handler: 200, or a validation/business error of that route
                # (a 404 only for the organization or user, not the route).
                assert r.status_code in (200, 400, 404, 422), (method, path, r.status_code)
                assert r.json() != {"detail": "Not Found"}, (method, path)
            else:
                assert r.status_code == 405, (method, path, r.status_code)
    # A path that is not documented does not exist.
    for path in ("/organizations/X/realms", "/users", "/organizations/X/users/unfreeze"):
        r = await server.http.get("/administration" + path, headers=auth)
        assert r.status_code == 404


@pytest.mark.parametrize("path", ["/organizations/{organization_id}", "/stats"])
async def test_documented_reply_fields_are_the_real_ones(server: Server, path: str) -> None:
    doc = await _document(server)
    org, _token = await server.create_org()
    r = await server.admin("GET", path.replace("{organization_id}", org))
    assert r.status_code == 200
    schema = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert set(schema["required"]) == set(r.json())


def test_document_ships_with_the_package() -> None:
    from parsec_server.asgi.openapi import openapi_document

    assert httpx.Response(200, content=openapi_document()).json()["paths"]
