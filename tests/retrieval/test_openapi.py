"""The OpenAPI document describes exactly the routes the API has, and is served without a token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from retrieval import GrantSigner, PlaybackJournal, create_api_app
from retrieval.openapi import OPENAPI
from tests.service_support import running_service


def routes_of_the_api() -> set[tuple[str, str]]:
    unused = cast(Any, None)
    app = create_api_app(
        tokens=unused,
        queries=unused,
        audio=unused,
        audit=unused,
        trail=unused,
        referrals=unused,
        peaks=unused,
        holds=unused,
        signer=GrantSigner(bytes(32)),
        journal=PlaybackJournal(unused),
        retention_report=unused,
        clock=lambda: datetime.now(UTC),
        grant_lifetime=timedelta(minutes=15),
        public_url=None,
    )
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path != "/openapi.json":
            found.add((route.method.lower(), path))
    return found


def described() -> set[tuple[str, str]]:
    return {(method, path) for path, item in OPENAPI["paths"].items() for method in item}


def test_every_route_is_described_and_every_description_is_a_route() -> None:
    routes = routes_of_the_api()
    documented = described()
    # aiohttp answers HEAD wherever it answers GET; only the audio documents it.
    undocumented = {
        (method, path)
        for method, path in routes - documented
        if not (method == "head" and ("get", path) in documented)
    }
    assert undocumented == set()
    assert documented - routes == set()


def test_every_operation_documents_its_errors_in_the_api_shape() -> None:
    for path, item in OPENAPI["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "401" in responses, (method, path)
            assert responses["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }
    assert OPENAPI["openapi"].startswith("3.1")


async def test_the_document_is_served_without_a_token(tmp_path: Path, database_url: str) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        response = await service.client.get("/api/v1/openapi.json")
        assert response.status == 200
        assert await response.json() == OPENAPI
        refused = await service.client.get("/api/v1/recordings")
        assert refused.status == 401
