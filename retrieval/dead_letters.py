"""``GET /api/v1/fetches/dead``: the provider fetches given up, for the retention operator.

Each is a call the hub was told about and does not have. What is shown is the provider's
ids, the attempts and the last error; never what the callback said about the call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from retrieval.access import RecordingAccess
from retrieval.errors import Forbidden
from retrieval.middleware import principal_of
from retrieval.policy import may_read_dead_letters


class DeadLetterHandlers:
    """The dead letters as the fetch queue lists them, behind a role check."""

    def __init__(
        self, access: RecordingAccess, report: Callable[[], Awaitable[dict[str, Any]]]
    ) -> None:
        self._access = access
        self._report = report

    async def listed(self, request: web.Request) -> web.Response:
        """How many fetches are dead, and the newest of them."""
        principal = principal_of(request)
        if not may_read_dead_letters(principal):
            await self._access.deny(principal, "fetches.dead", None, "role")
            raise Forbidden("only retention operators see the fetches given up")
        return web.json_response(await self._report())
