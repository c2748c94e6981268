"""Typed settings, read once at start-up from ``CALLREC_*``, a TOML file and ``*_FILE`` secrets.

The only module that reads the environment. An invalid value stops start-up with one
line naming the variable; nothing falls back silently.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from config.siprec_settings import SiprecStreams, check_siprec
from storage import known_region

ENV_PREFIX = "CALLREC_"
# The hub's privacy notice promises that recordings are kept for up to 90 days.
MAX_RETENTION_PERIOD = timedelta(days=90)
_SOURCE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PROVIDERS = ("twilio", "telnyx", "vonage")


_DATABASE_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}
"""The database URL schemes accepted, and the driver each is used with."""


class SettingsError(Exception):
    """A setting is invalid; the message is one line naming the variable, never its value."""


class Settings(BaseSettings):
    """Everything the service can be configured with (see the README for each)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    data_dir: Path = Path("./var")
    database_url: SecretStr | None = None
    store_url: str | None = None
    # Where epoch keys live: never the database, and not backed up with it, or a restored
    # backup could open the keys of deleted recordings. Same URL forms as the store.
    epoch_key_store_url: str | None = None
    anchor_store_url: str | None = None
    public_url: str | None = None
    retention_period: timedelta = MAX_RETENTION_PERIOD
    auth_mode: Literal["dev", "oidc"] = "dev"
    push_secrets: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)
    # Who may deliver where: CIDRs per push source and per provider (none: anyone, as a
    # signature alone decides); outside its list a request is refused before its body.
    push_allowed_senders: Annotated[dict[str, tuple[str, ...]], NoDecode] = Field(
        default_factory=dict
    )
    provider_allowed_senders: Annotated[dict[str, tuple[str, ...]], NoDecode] = Field(
        default_factory=dict
    )
    # Reverse proxies whose X-Forwarded-For is believed; otherwise the socket peer counts.
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    # A KMS key (id, ARN or alias) for wrapping data keys; endpoint and credentials from
    # the AWS environment. Keys the local keyring wrapped before stay readable.
    kms_key_id: str | None = None
    # Says that every process of this service runs on one data directory (one machine):
    # only then may a shared database be used with a local keyring or file:// key store.
    single_node: bool = False
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_api_base: str = "https://api.twilio.com"
    # Where Twilio's media redirects may lead: host names (https, public addresses) or
    # exact origins.
    twilio_storage_hosts: Annotated[tuple[str, ...], NoDecode] = ("twilio.com",)
    twilio_media_format: Literal["wav", "mp3"] = "wav"
    # Delete Twilio's copy once ours is stored, so it does not outlive the period there.
    twilio_delete_recordings: bool = True
    # The account's Ed25519 public key (base64), from the Telnyx portal: enables the webhook.
    telnyx_public_key: str | None = None
    # For deleting Telnyx's copy once stored (none: the copy is left to Telnyx's own expiry).
    telnyx_api_key: SecretStr | None = None
    telnyx_api_base: str = "https://api.telnyx.com"
    # Where Telnyx's pre-signed recording URLs may point: host names or exact origins.
    telnyx_storage_hosts: Annotated[tuple[str, ...], NoDecode] = ("telnyx.com", "s3.amazonaws.com")
    telnyx_media_format: Literal["wav", "mp3"] = "wav"
    # The account's signature secret (signed webhooks): enables the Vonage webhook.
    vonage_signature_secret: SecretStr | None = None
    # The application whose private key signs the JWT that downloads its recordings.
    vonage_application_id: str | None = None
    vonage_private_key: SecretStr | None = None
    vonage_api_base: str = "https://api.nexmo.com"
    # Vonage's own hosts a recording_url may name (regional API hosts); https, public.
    vonage_hosts: Annotated[tuple[str, ...], NoDecode] = ("nexmo.com", "vonage.com")
    # Vonage documents no delete for recording files: off unless the account accepts one.
    vonage_delete_recordings: bool = False
    # Background workers fetching provider recordings (0: this replica only queues).
    fetch_workers: int = Field(default=2, ge=0, le=32)
    fetch_max_attempts: int = Field(default=8, ge=1, le=50)
    # How long a claimed fetch is a worker's unless renewed (it is, while the fetch runs);
    # a worker that dies stops renewing and leaves its job to others after this long.
    fetch_lease: timedelta = Field(
        default=timedelta(minutes=10), ge=timedelta(seconds=1), le=timedelta(hours=1)
    )
    fetch_first_retry: timedelta = Field(
        default=timedelta(seconds=5), gt=timedelta(0), le=timedelta(hours=1)
    )
    # How long `serve` finishes work in flight after SIGTERM; under Kubernetes' default 30 s
    # grace period, so the process is gone before the kubelet would kill it.
    shutdown_grace: timedelta = Field(
        default=timedelta(seconds=25), ge=timedelta(seconds=1), le=timedelta(minutes=10)
    )
    max_upload_bytes: int = Field(default=1024**3, gt=0)
    max_concurrent_pushes: int = Field(default=32, gt=0, le=1024)
    # Of those, how many may be uploads whose sender is not proven yet (half by default):
    # the rest are kept for pre-authenticated pushes and those being stored.
    max_unauthenticated_pushes: int | None = Field(default=None, gt=0, le=1024)
    # Worker processes that decode and encode audio; by default one per core but one.
    media_workers: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 1) - 1), gt=0, le=64
    )
    # Worker processes that make the queued playback renditions, at a lower CPU priority
    # than the captures' checks; 0 makes none here (another replica does).
    rendition_workers: int = Field(default=1, ge=0, le=64)
    # How long one capture may hold a media worker; past it the worker is killed and the
    # capture refused (recorder/workers.py). 25 hours of two channels renders in about 15
    # minutes on one core here, so only a file built to be slow reaches the default.
    media_job_deadline: timedelta = Field(
        default=timedelta(minutes=30), ge=timedelta(seconds=1), le=timedelta(hours=6)
    )
    # More channels than this is not a call recording (caller and staff: two).
    max_audio_channels: int = Field(default=2, ge=1, le=8)
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_algorithms: Annotated[tuple[str, ...], NoDecode] = ("RS256", "ES256")
    # The review page's sign-in (authorization code with PKCE); without these the page
    # cannot sign anyone in while the API still takes the IdP's tokens.
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_authorization_url: str | None = None
    oidc_token_url: str | None = None
    oidc_scopes: Annotated[tuple[str, ...], NoDecode] = ("openid", "profile")
    oidc_role_claim: str = "roles"
    oidc_team_claim: str = "teams"
    token_leeway: timedelta = Field(default=timedelta(seconds=30), ge=timedelta(0))
    retention_sweep_interval: timedelta = Field(
        default=timedelta(minutes=15), ge=timedelta(minutes=1), le=timedelta(days=1)
    )
    retention_margin: timedelta = Field(default=timedelta(minutes=5), ge=timedelta(0))
    # How far ahead a hold's review date may be; holds are renewed, never open-ended.
    hold_max_review: timedelta = Field(
        default=timedelta(days=90), ge=timedelta(days=1), le=timedelta(days=366)
    )
    # DPOs an early erasure needs: 2 makes one DPO's erasure a request another DPO approves
    # or rejects; 1 is for a hub with a single DPO (audited and attested as such).
    erasure_approvals: int = Field(default=2, ge=1, le=2)
    # How long a recording may stay linked to no referral before its team's supervisors
    # are asked to link it or to say why it needs none (within the retention period).
    unlinked_review_after: timedelta = timedelta(days=7)
    # Where a number without its country code was dialled from: numbers are stored and
    # searched in E.164, and "020 7946 0000" from a PBX is +442079460000 in the UK.
    phone_region: str = Field(default="GB", min_length=2, max_length=2)
    # The service checks this many stored objects, chosen at random, every interval
    # (`callrec verify` checks them all).
    integrity_scrub_interval: timedelta = Field(
        default=timedelta(hours=6), ge=timedelta(seconds=1), le=timedelta(days=7)
    )
    integrity_scrub_sample: int = Field(default=100, ge=1, le=100_000)
    # How often the service writes a signed checkpoint of the audit chain's head outside
    # the database (it also writes one after every deletion batch); and how the anchors
    # are locked on an S3 bucket with Object Lock (docs/operations.md).
    audit_checkpoint_interval: timedelta = Field(
        default=timedelta(minutes=5), ge=timedelta(seconds=1), le=timedelta(hours=1)
    )
    anchor_lock_mode: Literal["none", "governance", "compliance"] = "none"
    anchor_lock_period: timedelta = Field(
        default=timedelta(days=730), ge=timedelta(days=1), le=timedelta(days=36500)
    )
    # How often the service rotates keys by itself (then re-wraps every data key under the
    # new generation and retires what nothing uses); P0D turns scheduled rotation off.
    key_rotation_interval: timedelta = Field(default=timedelta(days=90), ge=timedelta(0))
    # The review page's sessions: ended after this long unused, and at most this long.
    session_idle_timeout: timedelta = Field(
        default=timedelta(minutes=15), ge=timedelta(minutes=1), le=timedelta(hours=12)
    )
    session_max_age: timedelta = Field(
        default=timedelta(hours=8), ge=timedelta(minutes=5), le=timedelta(hours=24)
    )
    # A listening session's played ranges are written to the audit trail, merged, once it
    # has been idle this long (its first range is written before any audio is served).
    playback_summary_after: timedelta = Field(
        default=timedelta(seconds=30), ge=timedelta(seconds=1), le=timedelta(minutes=10)
    )
    grant_lifetime: timedelta = Field(
        default=timedelta(minutes=15), gt=timedelta(0), le=timedelta(hours=1)
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # The SIPREC recording server (README, "Recording from an SBC"): off until LISTEN is
    # set ("0.0.0.0:5060", UDP); RTP to MEDIA_ADDRESS on RTP_PORTS, from ALLOWED_SOURCES.
    siprec_listen: str | None = None
    siprec_media_address: str | None = None
    siprec_allowed_sources: Annotated[tuple[str, ...], NoDecode] = ()
    siprec_rtp_ports: str = "40000-40999"
    siprec_rtp_timeout: timedelta = Field(
        default=timedelta(seconds=30), ge=timedelta(seconds=5), le=timedelta(minutes=10)
    )
    siprec_max_sessions: int = Field(default=100, ge=1, le=5000)
    # SIP over TCP and TLS beside UDP ("0.0.0.0:5060", "0.0.0.0:5061"); TLS with a PEM
    # certificate and key, and client certificates checked against CLIENT_CA_FILE if set.
    siprec_tcp_listen: str | None = None
    siprec_tls_listen: str | None = None
    siprec_tls_cert_file: str | None = None
    siprec_tls_key_file: str | None = None
    siprec_tls_client_ca_file: str | None = None
    # Which keys of an SBC's extension data hold "agent", "team" and "referral".
    siprec_extension_fields: dict[str, str] = Field(default_factory=dict)

    @field_validator("phone_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        if not known_region(value):
            raise ValueError("must be a two-letter region such as GB")
        return value

    @field_validator("retention_period")
    @classmethod
    def _within_the_promise(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive ISO-8601 duration such as P90D")
        if value > MAX_RETENTION_PERIOD:
            raise ValueError("longer than P90D: the privacy notice promises at most 90 days")
        return value

    @field_validator("unlinked_review_after")
    @classmethod
    def _positive_review_delay(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive ISO-8601 duration such as P7D")
        return value

    @model_validator(mode="after")
    def _review_before_deletion(self) -> Settings:
        # Listed only at or after its deletion, a call could never be triaged. Only a value
        # given is held to it: the default stays valid beside a short period (a test rig's
        # PT1H), where it lists nothing, as the README says.
        given = "unlinked_review_after" in self.model_fields_set
        if given and self.unlinked_review_after >= self.retention_period:
            raise ValueError(
                f"{ENV_PREFIX}UNLINKED_REVIEW_AFTER: must be shorter than "
                f"{ENV_PREFIX}RETENTION_PERIOD, or no call is listed before its deletion"
            )
        return self

    @field_validator("push_secrets", mode="before")
    @classmethod
    def _parse_push_secrets(cls, value: Any) -> Any:
        if isinstance(value, str):
            secrets: dict[str, str] = {}
            for item in filter(None, (part.strip() for part in value.split(","))):
                name, sep, secret = item.partition("=")
                if not sep:
                    raise ValueError("expected name=secret[,name2=secret2]")
                secrets[name.strip()] = secret
            return secrets
        return value

    @field_validator("push_secrets")
    @classmethod
    def _sound_push_secrets(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        # Checked here, after parsing, so secrets from TOML meet the same rules.
        for name, secret in value.items():
            if not _SOURCE_NAME.fullmatch(name):
                raise ValueError(
                    "source names are 1-64 letters, digits, - and _ (as in name=secret)"
                )
            if len(secret.get_secret_value()) < 16:
                raise ValueError(f"the secret of {name!r} is shorter than 16 characters")
        return value

    @field_validator("push_allowed_senders", "provider_allowed_senders", mode="before")
    @classmethod
    def _parse_allowed_senders(cls, value: Any) -> Any:
        # name=cidr cidr,name2=cidr: commas between webhooks, spaces between networks.
        if isinstance(value, str):
            lists: dict[str, tuple[str, ...]] = {}
            for item in filter(None, (part.strip() for part in value.split(","))):
                name, sep, cidrs = item.partition("=")
                if not sep or not cidrs.split():
                    raise ValueError("expected name=cidr [cidr ...][,name2=cidr]")
                lists[name.strip()] = tuple(cidrs.split())
            return lists
        return value

    @field_validator("push_allowed_senders", "provider_allowed_senders")
    @classmethod
    def _sound_networks(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for name, cidrs in value.items():
            _check_networks(cidrs, f"the list of {name!r}")
        return value

    @field_validator("provider_allowed_senders")
    @classmethod
    def _known_providers(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        unknown = sorted(set(value) - set(_PROVIDERS))
        if unknown:
            raise ValueError(f"providers are {', '.join(_PROVIDERS)}, not {unknown[0]!r}")
        return value

    @field_validator("siprec_allowed_sources", mode="before")
    @classmethod
    def _source_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(part for part in value.replace(",", " ").split() if part)
        return value

    @field_validator("siprec_allowed_sources")
    @classmethod
    def _sound_sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _check_networks(value, "an SBC's address")
        return value

    @model_validator(mode="after")
    def _siprec_can_run(self) -> Settings:
        check_siprec(
            listen=self.siprec_listen,
            media_address=self.siprec_media_address,
            allowed_sources=self.siprec_allowed_sources,
            rtp_ports=self.siprec_rtp_ports,
            extension_fields=self.siprec_extension_fields,
            streams=self.siprec_streams,
        )
        return self

    @property
    def siprec_streams(self) -> SiprecStreams:
        """The TCP and TLS settings together, for ``siprec_settings.stream_listens``."""
        return SiprecStreams(
            self.siprec_tcp_listen,
            self.siprec_tls_listen,
            self.siprec_tls_cert_file,
            self.siprec_tls_key_file,
            self.siprec_tls_client_ca_file,
        )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(part for part in value.replace(",", " ").split() if part)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _sound_proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _check_networks(value, "a proxy")
        return value

    @model_validator(mode="after")
    def _lists_name_sources(self) -> Settings:
        unknown = sorted(set(self.push_allowed_senders) - set(self.push_secrets))
        if unknown:
            raise ValueError(
                f"{ENV_PREFIX}PUSH_ALLOWED_SENDERS: {unknown[0]!r} is not a source in "
                f"{ENV_PREFIX}PUSH_SECRETS"
            )
        return self

    @model_validator(mode="after")
    def _unauthenticated_within_total(self) -> Settings:
        limit = self.max_unauthenticated_pushes
        if limit is not None and limit > self.max_concurrent_pushes:
            raise ValueError(
                f"{ENV_PREFIX}MAX_UNAUTHENTICATED_PUSHES: at most "
                f"{ENV_PREFIX}MAX_CONCURRENT_PUSHES ({self.max_concurrent_pushes})"
            )
        return self

    @field_validator("oidc_scopes", mode="before")
    @classmethod
    def _scope_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(part for part in value.replace(",", " ").split() if part)
        return value

    @field_validator("oidc_algorithms", mode="before")
    @classmethod
    def _parse_algorithms(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"}
        allowed |= {"ES512", "EdDSA"}
        if not value or set(value) - allowed:
            raise ValueError("asymmetric JWS algorithms only, e.g. RS256,ES256")
        return value

    @field_validator("twilio_storage_hosts", "telnyx_storage_hosts", "vonage_hosts", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("oidc_jwks_url", "oidc_authorization_url", "oidc_token_url")
    @classmethod
    def _https_jwks(cls, value: str | None) -> str | None:
        # Keys fetched over plain HTTP could be swapped in transit; loopback is for tests.
        if value is not None and not (
            value.startswith("https://")
            or value.startswith(("http://127.0.0.1", "http://localhost"))
        ):
            raise ValueError("must be an https:// URL")
        return value

    @model_validator(mode="after")
    def _oidc_is_complete(self) -> Settings:
        if self.auth_mode == "oidc":
            for name in ("oidc_issuer", "oidc_audience", "oidc_jwks_url"):
                if not getattr(self, name):
                    raise ValueError(f"{ENV_PREFIX}{name.upper()} is required in oidc auth mode")
            page = ("oidc_client_id", "oidc_authorization_url", "oidc_token_url")
            given = [name for name in page if getattr(self, name)]
            if given and len(given) != len(page):
                missing = next(name for name in page if not getattr(self, name))
                raise ValueError(
                    f"{ENV_PREFIX}{missing.upper()} is required for the page's sign-in"
                )
        return self

    @model_validator(mode="after")
    def _vonage_is_complete(self) -> Settings:
        if self.vonage_signature_secret is not None:
            for name in ("vonage_application_id", "vonage_private_key"):
                if not getattr(self, name):
                    raise ValueError(
                        f"{ENV_PREFIX}{name.upper()} is required to fetch Vonage recordings"
                    )
        return self

    @field_validator("database_url", mode="before")
    @classmethod
    def _supported_database(cls, value: Any) -> Any:
        # The usual spellings of the two databases callrec runs on get their async driver;
        # anything else is refused here, in one line, not by a driver import much later.
        if not isinstance(value, str):
            return value
        scheme, found, rest = value.partition("://")
        if not found:
            raise ValueError("must be a URL such as postgresql://user@host:5432/callrec")
        driver = _DATABASE_DRIVERS.get(scheme)
        if driver is None:
            raise ValueError(
                "callrec runs on PostgreSQL (postgresql://user@host:5432/db) or SQLite "
                "(sqlite:///path/callrec.db)"
            )
        return f"{driver}://{rest}"

    @model_validator(mode="after")
    def _replicas_share_their_keys(self) -> Settings:
        # A PostgreSQL database is shared by replicas; what they need to read each other's
        # recordings must then be shared too, or a recording captured on one is an
        # integrity failure on another.
        if self.single_node or self.uses_embedded_database:
            return self
        unshared = []
        if not self.kms_key_id:
            unshared.append(f"{ENV_PREFIX}KMS_KEY_ID")
        if self.store_url is None:
            unshared.append(f"an s3:// {ENV_PREFIX}STORE_URL")
        if self.resolved_epoch_key_store_url.startswith("file://"):
            unshared.append(f"an s3:// {ENV_PREFIX}EPOCH_KEY_STORE_URL")
        if unshared:
            raise ValueError(
                f"{ENV_PREFIX}DATABASE_URL: a shared database needs keys shared too: set "
                f"{' and '.join(unshared)} (or {ENV_PREFIX}SINGLE_NODE=true if every process "
                "uses this one data directory)"
            )
        return self

    @field_validator("store_url", "epoch_key_store_url", "anchor_store_url")
    @classmethod
    def _known_store(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("file://", "s3://")):
            raise ValueError("must start with file:// or s3://")
        if value is not None and value.startswith("s3://") and not value[5:].split("/")[0]:
            raise ValueError("s3:// URLs need a bucket: s3://bucket/prefix")
        return value

    @field_validator("twilio_api_base", "telnyx_api_base", "vonage_api_base", "public_url")
    @classmethod
    def _http_origin(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value is not None else None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            SecretFileSource(settings_cls),
        ]
        toml_file = os.environ.get(f"{ENV_PREFIX}CONFIG")
        if toml_file:
            if not Path(toml_file).is_file():
                raise SettingsError(f"{ENV_PREFIX}CONFIG: no such file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_file)))
        return tuple(sources)

    # Derived values: defaults that depend on other settings.

    @property
    def resolved_database_url(self) -> str:
        """The database URL; a SQLite file in the data directory by default."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{(self.data_dir / 'callrec.db').resolve()}"

    @property
    def resolved_store_url(self) -> str:
        """The object store URL; a directory in the data directory by default."""
        return self.store_url or f"file://{(self.data_dir / 'objects').resolve()}"

    @property
    def resolved_anchor_store_url(self) -> str:
        """Where the audit checkpoints and the deletion ledger go (under ``anchors/``).

        An S3 store's own bucket by default (replicas then share them); beside the data
        directory's objects otherwise, never among them, so the audio's store holds only
        audio.
        """
        if self.anchor_store_url is not None:
            return self.anchor_store_url
        if self.store_url is not None and self.store_url.startswith("s3://"):
            return self.store_url
        return f"file://{(self.data_dir / 'anchors').resolve()}"

    @property
    def resolved_epoch_key_store_url(self) -> str:
        """The epoch-key store URL; its own directory in the data directory by default."""
        return self.epoch_key_store_url or f"file://{(self.data_dir / 'epoch-keys').resolve()}"

    @property
    def uses_embedded_database(self) -> bool:
        """True on the embedded default (SQLite), which migrates itself at start-up."""
        return self.resolved_database_url.startswith("sqlite")

    def push_secret_bytes(self) -> dict[str, bytes]:
        """The push sources and their HMAC keys as bytes."""
        return {
            name: value.get_secret_value().encode() for name, value in self.push_secrets.items()
        }


def _check_networks(cidrs: tuple[str, ...], whose: str) -> None:
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            raise ValueError(
                f"{whose} holds something that is not an address or network "
                "(a network's host bits must be zero, as in 10.1.0.0/24)"
            ) from None


class SecretFileSource(PydanticBaseSettingsSource):
    """``CALLREC_<NAME>_FILE=/path``: read a secret from a file (Docker and Kubernetes secrets)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = f"{ENV_PREFIX}{field_name.upper()}_FILE"
        path = os.environ.get(variable)
        if not path:
            return None, field_name, False
        try:
            return Path(path).read_text().strip(), field_name, False
        except OSError as exc:
            raise SettingsError(f"{variable}: cannot read the file ({exc.strerror})") from None

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = value
        return values


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read the settings; SettingsError with one line naming the bad variable."""
    try:
        return Settings(**dict(overrides or {}))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{ENV_PREFIX}CONFIG: the file is not valid TOML ({exc})") from None
    except ValidationError as exc:
        error = exc.errors(include_input=False, include_url=False)[0]
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # a rule across settings names its variables itself
            raise SettingsError(message) from None
        field = str(error["loc"][0])
        raise SettingsError(f"{ENV_PREFIX}{field.upper()}: {message}") from None
