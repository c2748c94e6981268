"""Why a person's request was refused, as facts; statuses are chosen in retrieval.middleware.

RetrievalError
├── Unauthenticated     no token, or one that does not verify (expired, wrong issuer, ...)
├── Forbidden           a verified person whose role may not do this at all
├── NotFound            no such recording, or one this person may not know exists
├── Gone                the recording was deleted, or is past its retention deadline
├── BadRequest          a malformed parameter or cursor
├── Unprocessable       a well-formed request whose content is not acceptable (a trivial reason)
├── Conflict            the recording's state forbids this now (held, already being deleted)
├── NotReadyYet         what was asked for is being made (a playback copy): ask again later
└── IntegrityProblem    the stored audio failed verification: nothing is served

AnswerBrokenOff is no refusal: an answer already under way cannot be finished, and the
connection that carries it must be dropped rather than answered a second time.
"""

from __future__ import annotations

from datetime import datetime


class RetrievalError(Exception):
    """Base of every refusal raised by the retrieval package; ``detail`` is safe to show."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unauthenticated(RetrievalError):
    """The bearer token is missing or does not verify; the detail never echoes the token."""


class Forbidden(RetrievalError):
    """The person's role does not allow this action on any recording."""


class NotFound(RetrievalError):
    """Missing, or not visible to this person: the two must look the same."""


class Gone(RetrievalError):
    """The recording existed and was deleted (or is past its deadline)."""

    def __init__(self, detail: str, *, status: str, deleted_at: datetime) -> None:
        super().__init__(detail)
        self.status = status
        self.deleted_at = deleted_at


class BadRequest(RetrievalError):
    """A query parameter or cursor is malformed."""


class Unprocessable(RetrievalError):
    """The request is well formed but its content cannot be accepted."""


class Conflict(RetrievalError):
    """The recording's state forbids the change now; another change must come first."""


class NotReadyYet(RetrievalError):
    """What was asked for is being prepared; ``retry_after_s`` says when to ask again."""

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class IntegrityProblem(RetrievalError):
    """Stored audio failed its checks (missing, cut short, altered); nothing is served."""


class AnswerBrokenOff(Exception):
    """Audio stopped verifying after its headers and some bytes had gone out.

    No status can be chosen any more: the only honest answer left is to drop the
    connection, which the outermost request middleware does for any answer that fails
    after it began.
    """
