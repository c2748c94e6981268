"""The OpenAPI document describes exactly the routes the API has, is a valid OpenAPI 3.1
document, states the rules the code enforces, and is served without a token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from openapi_spec_validator import validate

from retrieval import GrantSigner, PlaybackJournal, create_api_app, staff_accesses, trail, triage
from retrieval.grants import REASON_LENGTH
from retrieval.openapi import OPENAPI
from retrieval.parsing import SEARCH_PARAMETERS
from storage import HOLD_KINDS
from tests.service_support import running_service


def routes_of_the_api() -> set[tuple[str, str]]:
    unused = cast(Any, None)
    app = create_api_app(
        tokens=unused,
        queries=unused,
        audio=unused,
        audit=unused,
        trail=unused,
        call_accesses=unused,
        triage=unused,
        unlinked_review_after=timedelta(days=7),
        referrals=unused,
        peaks=unused,
        holds=unused,
        erasures=unused,
        subject_access=unused,
        exports=unused,
        phone_region="GB",
        signer=GrantSigner(bytes(32)),
        journal=PlaybackJournal(unused),
        retention_report=unused,
        dead_letters=unused,
        clock=lambda: datetime.now(UTC),
        grant_lifetime=timedelta(minutes=15),
        public_url=None,
    )
    return {
        (route.method.lower(), route.resource.canonical if route.resource else "")
        for route in app.router.routes()
    }


def described() -> set[tuple[str, str]]:
    return {(method, path) for path, item in OPENAPI["paths"].items() for method in item}


def test_the_documents_operations_are_exactly_the_routers_routes() -> None:
    # HEAD included: aiohttp answers it wherever it answers GET, and so does the document.
    assert described() == routes_of_the_api()


def test_the_document_is_valid_openapi_3_1() -> None:
    assert OPENAPI["openapi"].startswith("3.1")
    validate(OPENAPI)


def test_every_protected_operation_documents_its_errors_in_the_api_shape() -> None:
    for path, item in OPENAPI["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if operation.get("security") == []:
                assert path == "/openapi.json"
                continue
            for status in ("401", "503"):
                assert status in responses, (method, path, status)
            if method != "head":
                content = responses["401"]["content"]["application/json"]
                assert content["schema"]["allOf"] == [{"$ref": "#/components/schemas/Error"}]


def test_the_audio_url_documents_ranges_on_get_and_head() -> None:
    for method in ("get", "head"):
        responses = OPENAPI["paths"]["/play/{grant}"][method]["responses"]
        assert {"200", "206", "416"} <= set(responses), method
        assert "Content-Range" in responses["206"]["headers"]
        assert "Content-Range" in responses["416"]["headers"]


def test_every_object_schema_says_which_fields_it_always_has() -> None:
    for name, schema in OPENAPI["components"]["schemas"].items():
        if schema.get("type") == "object":
            assert schema["required"], name


def test_the_rules_are_those_the_code_enforces() -> None:
    schemas = OPENAPI["components"]["schemas"]
    assert schemas["HoldRequest"]["properties"]["type"]["enum"] == list(HOLD_KINDS)
    assert schemas["Hold"]["properties"]["type"]["enum"] == list(HOLD_KINDS)
    for body in ("Reason", "HoldRequest", "HoldRelease", "GrantRequest"):
        assert schemas[body]["properties"]["reason"]["minLength"] == REASON_LENGTH[0], body
    assert schemas["Gone"]["required"] == ["status", "deleted_at"]


async def test_the_document_is_served_without_a_token(tmp_path: Path, database_url: str) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        response = await service.client.get("/api/v1/openapi.json")
        assert response.status == 200
        assert await response.json() == OPENAPI
        refused = await service.client.get("/api/v1/recordings")
        assert refused.status == 401


def test_the_documented_query_parameters_are_those_the_handlers_accept() -> None:
    def names(path: str) -> set[str]:
        parameters = OPENAPI["paths"][path]["get"]["parameters"]
        return {parameter["name"] for parameter in parameters if parameter["in"] == "query"}

    assert names("/recordings") == set(SEARCH_PARAMETERS)
    assert names("/audit") == set(trail.PARAMETERS)
    assert names("/me/accesses") == set(staff_accesses.PARAMETERS)
    assert names("/unlinked-recordings") == set(triage.PARAMETERS)
