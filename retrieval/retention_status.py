"""``GET /api/v1/retention``: the sweeps' record, for those who watch them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from retrieval.access import RecordingAccess
from retrieval.errors import Forbidden
from retrieval.middleware import principal_of
from retrieval.policy import may_read_retention


class RetentionHandlers:
    """The retention report, as the retention feature writes it, behind a role check."""

    def __init__(
        self, access: RecordingAccess, report: Callable[[], Awaitable[dict[str, Any]]]
    ) -> None:
        self._access = access
        self._report = report

    async def status(self, request: web.Request) -> web.Response:
        """Last and next sweep, due and overdue counts, holds."""
        principal = principal_of(request)
        if not may_read_retention(principal):
            await self._access.deny(principal, "retention.status", None, "role")
            raise Forbidden("only retention operators and auditors see the retention status")
        return web.json_response(await self._report())
