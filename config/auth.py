"""Who may call the API and sign in to the page: the token verifier and OIDC sign-in."""

from __future__ import annotations

from config.settings import Settings
from retrieval import (
    DevTokenVerifier,
    OidcClient,
    OidcSettings,
    OidcSignIn,
    OidcTokenVerifier,
    TokenVerifier,
)
from storage import load_signing_key

DEV_SIGNING_KEY = "dev-signing-key.pem"


def build_verifier(settings: Settings) -> TokenVerifier:
    """The bearer-token verifier of the configured auth mode."""
    if settings.auth_mode == "dev":
        return DevTokenVerifier(
            load_signing_key(settings.data_dir / DEV_SIGNING_KEY).public_pem,
            leeway=settings.token_leeway,
        )
    if not (settings.oidc_issuer and settings.oidc_audience and settings.oidc_jwks_url):
        raise ValueError("oidc mode needs an issuer, an audience and a JWKS URL")
    return OidcTokenVerifier(
        OidcSettings(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            algorithms=settings.oidc_algorithms,
            role_claim=settings.oidc_role_claim,
            team_claim=settings.oidc_team_claim,
            leeway=settings.token_leeway,
        )
    )


def build_oidc_sign_in(
    settings: Settings, tokens: TokenVerifier, signing_key: bytes
) -> OidcSignIn | None:
    """The page's sign-in through the IdP, when oidc mode has a client configured."""
    if settings.auth_mode != "oidc" or not (
        settings.oidc_client_id
        and settings.oidc_authorization_url
        and settings.oidc_token_url
        and settings.oidc_issuer
        and settings.oidc_jwks_url
    ):
        return None
    secret = settings.oidc_client_secret
    return OidcSignIn(
        OidcClient(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            authorization_url=settings.oidc_authorization_url,
            token_url=settings.oidc_token_url,
            jwks_url=settings.oidc_jwks_url,
            public_url=settings.public_url,
            scopes=settings.oidc_scopes,
            client_secret=None if secret is None else secret.get_secret_value(),
            algorithms=settings.oidc_algorithms,
        ),
        tokens,
        signing_key,
    )
