"""People in, audio out: authentication, need-to-know access, grants and Range playback.

Imports storage only; never recorder, retention or config.
"""

from retrieval.app import create_api_app
from retrieval.auth import (
    DevTokenVerifier,
    OidcSettings,
    OidcTokenVerifier,
    Principal,
    TokenVerifier,
    bearer_token,
)
from retrieval.errors import AnswerBrokenOff, RetrievalError, Unauthenticated
from retrieval.grants import GrantSigner
from retrieval.journal import PlaybackJournal
from retrieval.playback import CAPABILITY_PARAMETERS
from retrieval.roles import PURPOSES, ROLES
from retrieval.sessions import SessionRules, WebSessions
from retrieval.subject_export import ExportParts, NotReadyToExport, export_case
from retrieval.tokens import AUDIENCE, DEV_ISSUER, issue_dev_token
from retrieval.web import OidcClient, OidcSignIn, ReviewPages

__all__ = [
    "AUDIENCE",
    "CAPABILITY_PARAMETERS",
    "DEV_ISSUER",
    "PURPOSES",
    "ROLES",
    "AnswerBrokenOff",
    "DevTokenVerifier",
    "ExportParts",
    "GrantSigner",
    "NotReadyToExport",
    "OidcClient",
    "OidcSettings",
    "OidcSignIn",
    "OidcTokenVerifier",
    "PlaybackJournal",
    "Principal",
    "RetrievalError",
    "ReviewPages",
    "SessionRules",
    "TokenVerifier",
    "Unauthenticated",
    "WebSessions",
    "bearer_token",
    "create_api_app",
    "export_case",
    "issue_dev_token",
]
