"""The review page served at ``/``: templates, static files and the handlers behind them."""

from retrieval.web.oidc_sign_in import OidcClient, OidcSignIn
from retrieval.web.pages import CONTENT_SECURITY_POLICY, ReviewPages

__all__ = ["CONTENT_SECURITY_POLICY", "OidcClient", "OidcSignIn", "ReviewPages"]
