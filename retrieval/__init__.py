"""People in, audio out: authentication, need-to-know access, grants and Range playback.

Imports storage only; never recorder, retention or config.
"""

from retrieval.roles import PURPOSES, ROLES
from retrieval.tokens import AUDIENCE, DEV_ISSUER, issue_dev_token

__all__ = ["AUDIENCE", "DEV_ISSUER", "PURPOSES", "ROLES", "issue_dev_token"]
