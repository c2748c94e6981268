"""Where each configured call platform's recordings may be fetched from, and with what."""

from __future__ import annotations

import base64

from config.settings import Settings
from recorder import ProviderOrigin, application_token

TWILIO = "twilio"
TELNYX = "telnyx"
VONAGE = "vonage"


def provider_origins(settings: Settings) -> dict[str, ProviderOrigin]:
    """Where each configured provider's recordings may be fetched from, with credentials."""
    origins = {}
    if settings.twilio_account_sid and settings.twilio_auth_token:
        pair = f"{settings.twilio_account_sid}:{settings.twilio_auth_token.get_secret_value()}"
        origins[TWILIO] = ProviderOrigin(
            settings.twilio_api_base,
            authorization="Basic " + base64.b64encode(pair.encode()).decode(),
            redirect_hosts=settings.twilio_storage_hosts,
        )
    if settings.telnyx_public_key:
        key = settings.telnyx_api_key
        origins[TELNYX] = ProviderOrigin(
            settings.telnyx_api_base,
            authorization=None if key is None else f"Bearer {key.get_secret_value()}",
            redirect_hosts=settings.telnyx_storage_hosts,
            storage_urls=True,
        )
    if (
        settings.vonage_signature_secret
        and settings.vonage_application_id
        and settings.vonage_private_key
    ):
        origins[VONAGE] = ProviderOrigin(
            settings.vonage_api_base,
            authorization=application_token(
                settings.vonage_application_id, settings.vonage_private_key.get_secret_value()
            ),
            credential_hosts=settings.vonage_hosts,
        )
    return origins
