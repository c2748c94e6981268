"""What a route of the API is: its method and path, handler, summary, answers and inputs.

Kept apart from the route tables (routes.py, routes_subject_access.py) so each table can
be read on its own and the OpenAPI document is built from the same declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp.typedefs import Handler

from retrieval.parsing import MAX_LABEL

if TYPE_CHECKING:
    from retrieval.routes import ApiHandlers


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful answer: what it means, and its body's schema (None: no JSON body)."""

    description: str
    schema: str | None = None
    media: str = "application/json"


@dataclass(frozen=True, slots=True)
class Route:
    """One method on one path, relative to ``/api/v1``."""

    method: str
    path: str
    handler: Callable[[ApiHandlers], Handler]
    summary: str
    answers: Mapping[int, Answer]
    refusals: tuple[int, ...] = ()
    query: tuple[dict[str, Any], ...] = ()
    headers: tuple[dict[str, Any], ...] = ()
    body: str | None = None
    public: bool = False


def query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    """An optional query parameter."""
    schema = schema or {"type": "string"}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def label_query(name: str, description: str) -> dict[str, Any]:
    return query(name, description, type="string", minLength=1, maxLength=MAX_LABEL)


def whole_query(name: str, description: str, low: int, high: int, default: int) -> dict[str, Any]:
    return query(name, description, type="integer", minimum=low, maximum=high, default=default)


def header_query(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }
