"""``POST /subject-access-requests/{id}/export``: the case's bundle, streamed to the DPO.

The bundle is made while it is sent and kept nowhere: it exists only in this answer,
encrypted to the recipient's age key or a passphrase given in the body (never a URL). A
case not ready (closed, or a recording's redaction not chosen) is refused before any byte
is sent; a failure once the bundle has begun drops the connection, so a partial download
is never mistaken for a bundle (it would not decrypt or verify anyway).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from aiohttp import web

from retrieval.access import RecordingAccess
from retrieval.errors import AnswerBrokenOff, Conflict, Forbidden, NotFound, Unprocessable
from retrieval.middleware import principal_of
from retrieval.parsing import json_object
from retrieval.policy import may_handle_subject_access
from retrieval.sar_bundle import BundleRefused, Encryption, ToPassphrase, ToRecipients
from retrieval.subject_export import ExportParts, NotReadyToExport, export_case, exportable
from storage import CaseMissing

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 5
MIN_PASSPHRASE = 12
_SHAPE = '{"recipients": ["age1..."]} or {"passphrase": ...}[, "include_staff_names": false]'


class ExportHandlers:
    """Streams a case's bundle to the DPO who asks."""

    def __init__(self, access: RecordingAccess, parts: ExportParts) -> None:
        self._access = access
        self._parts = parts

    async def export(self, request: web.Request) -> web.StreamResponse:
        """The encrypted bundle as ``application/octet-stream``, audited once written."""
        principal = principal_of(request)
        if not may_handle_subject_access(principal):
            await self._access.deny(principal, "subject_access.export", None, "role")
            raise Forbidden("only the DPO exports subject access requests")
        try:
            case_id = uuid.UUID(request.match_info["id"])
        except ValueError:
            raise NotFound("no such subject access request") from None
        body = await json_object(request, _SHAPE)
        encryption = encryption_of(body)
        include = body.get("include_staff_names", False)
        if not isinstance(include, bool):
            raise Unprocessable("include_staff_names must be true or false")
        try:
            case = await self._parts.cases.get(case_id)
            exportable(case)
        except CaseMissing:
            raise NotFound("no such subject access request") from None
        except NotReadyToExport as exc:
            raise Conflict(str(exc)) from None
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f'attachment; filename="{case.reference}.tar.age"',
                "Cache-Control": "no-store",
            }
        )
        await response.prepare(request)
        try:
            await export_case(
                self._parts,
                case_id,
                encryption=encryption,
                sink=response,
                actor=principal.actor,
                include_staff_names=include,
            )
        except Exception:
            log.exception("a subject access export failed after it began")
            raise AnswerBrokenOff("the bundle could not be finished") from None
        await response.write_eof()
        return response


def encryption_of(body: dict[str, Any]) -> Encryption:
    """Exactly one of an age recipient list or a passphrase, each checked."""
    recipients, passphrase = body.get("recipients"), body.get("passphrase")
    if (recipients is None) == (passphrase is None):
        raise Unprocessable("give either recipients (age public keys) or a passphrase")
    try:
        if recipients is not None:
            if (
                not isinstance(recipients, list)
                or not 0 < len(recipients) <= MAX_RECIPIENTS
                or not all(isinstance(item, str) and len(item) < 200 for item in recipients)
            ):
                raise Unprocessable(f"recipients must list 1 to {MAX_RECIPIENTS} age public keys")
            return ToRecipients(tuple(recipients))
        if not isinstance(passphrase, str) or not MIN_PASSPHRASE <= len(passphrase) <= 1000:
            raise Unprocessable(f"the passphrase must be {MIN_PASSPHRASE} to 1000 characters")
        return ToPassphrase(passphrase)
    except BundleRefused as exc:
        raise Unprocessable(str(exc)) from None
