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


def build_verifier(settings: Settings, dev_public_pem: bytes | None = None) -> TokenVerifier:
    """The bearer-token verifier of the configured auth mode.

    In dev mode ``dev_public_pem`` is the shared dev token key's public half.
    """
    if settings.auth_mode == "dev":
        if dev_public_pem is None:
            raise ValueError("dev mode needs the dev token key")
        return DevTokenVerifier(dev_public_pem, leeway=settings.token_leeway)
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
