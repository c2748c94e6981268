"""Checks a real answer of the API against the OpenAPI document: status, media and body."""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import Draft202012Validator

from retrieval.openapi import OPENAPI

_PREFIX = "/api/v1"


def operation_for(method: str, path: str) -> dict[str, Any]:
    """The document's operation for a request, found by matching its path templates."""
    relative = path.removeprefix(_PREFIX)
    found = [
        item[method.lower()]
        for template, item in OPENAPI["paths"].items()
        if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), relative)
        and method.lower() in item
    ]
    assert len(found) == 1, f"{method} {path} is not one documented operation"
    operation: dict[str, Any] = found[0]
    return operation


def assert_documented(method: str, path: str, status: int, media: str, body: bytes) -> None:
    """Fail unless the document lists this status for this operation, and the body fits."""
    responses = operation_for(method, path)["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, which is undocumented"
    content = responses[str(status)].get("content")
    if content is None:
        assert body == b"", f"{method} {path} {status} is documented without a body"
        return
    if media != "application/json":
        kinds = [re.escape(kind).replace(r"\*", "[^/]+") for kind in content]
        assert any(re.fullmatch(kind, media) for kind in kinds), (method, path, status, media)
        return
    schema = content["application/json"]["schema"]
    validator = Draft202012Validator(
        {**schema, "components": OPENAPI["components"]},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    errors = [error.message for error in validator.iter_errors(json.loads(body))]
    assert not errors, f"{method} {path} {status}: {errors}"
