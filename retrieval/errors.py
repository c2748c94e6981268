"""Why a person's request was refused, as facts; statuses are chosen by the API handlers.

RetrievalError
└── Unauthenticated     no token, or one that does not verify (expired, wrong issuer, ...)
"""

from __future__ import annotations


class RetrievalError(Exception):
    """Base of every refusal raised by the retrieval package; ``detail`` is safe to show."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unauthenticated(RetrievalError):
    """The bearer token is missing or does not verify; the detail never echoes the token."""
