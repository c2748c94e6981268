"""Settings: the contract's variables, TOML, *_FILE secrets, and one clear line for bad values."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from config.auth import build_verifier
from config.settings import Settings, SettingsError, load_settings
from config.siprec_settings import stream_listens
from recorder.siprec.transports import StreamListen, TlsFiles
from retrieval import OidcTokenVerifier
from tests.recorder.siprec.stream_support import self_signed

POSTGRES = "postgresql+asyncpg://callrec@db.internal/callrec"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean slate: no CALLREC_* variable leaks in from the developer's shell."""
    for name in list(os.environ):  # noqa: TID251 - clearing the real environment for the test
        if name.startswith("CALLREC_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_are_the_embedded_service(environment: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.retention_period == timedelta(days=90)
    assert settings.auth_mode == "dev"
    assert settings.data_dir == Path("var")
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.resolved_store_url == f"file://{Path('var/objects').resolve()}"
    assert settings.twilio_api_base == "https://api.twilio.com"
    assert settings.push_secrets == {}


def test_variables_are_read_with_their_prefix(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    environment.setenv("CALLREC_DATA_DIR", str(tmp_path))
    environment.setenv("CALLREC_RETENTION_PERIOD", "P30D")
    environment.setenv("CALLREC_STORE_URL", "s3://recordings/hub-a")
    environment.setenv(
        "CALLREC_PUSH_SECRETS", "pbx1=0123456789abcdef0123, sbc=fedcba9876543210fedc"
    )
    settings = load_settings()
    assert settings.data_dir == tmp_path
    assert settings.retention_period == timedelta(days=30)
    assert settings.resolved_store_url == "s3://recordings/hub-a"
    assert settings.push_secret_bytes() == {
        "pbx1": b"0123456789abcdef0123",
        "sbc": b"fedcba9876543210fedc",
    }


def test_secrets_never_show_in_repr(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("CALLREC_PUSH_SECRETS", "pbx1=very-secret-value-123456")
    environment.setenv("CALLREC_DATABASE_URL", "postgresql+asyncpg://u:hunter2@db/callrec")
    environment.setenv("CALLREC_SINGLE_NODE", "true")
    text = repr(load_settings())
    assert "very-secret-value" not in text
    assert "hunter2" not in text


def test_a_secret_can_come_from_a_file(environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret_file = tmp_path / "push"
    secret_file.write_text("pbx1=from-a-file-0123456789\n")
    environment.setenv("CALLREC_PUSH_SECRETS_FILE", str(secret_file))
    assert load_settings().push_secret_bytes() == {"pbx1": b"from-a-file-0123456789"}


def test_a_toml_file_sits_under_the_environment(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "callrec.toml"
    config.write_text('retention_period = "P60D"\nlog_level = "debug"\n')
    environment.setenv("CALLREC_CONFIG", str(config))
    environment.setenv("CALLREC_LOG_LEVEL", "warning")
    settings = load_settings()
    assert settings.retention_period == timedelta(days=60)
    assert settings.log_level == "warning"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CALLREC_RETENTION_PERIOD", "P120D", "at most 90 days"),
        ("CALLREC_RETENTION_PERIOD", "P91D", "at most 90 days"),
        ("CALLREC_RETENTION_PERIOD", "PT0S", "positive"),
        ("CALLREC_RETENTION_PERIOD", "ninety days", ""),
        ("CALLREC_AUTH_MODE", "ldap", ""),
        ("CALLREC_STORE_URL", "ftp://somewhere", "file:// or s3://"),
        ("CALLREC_STORE_URL", "s3://", "bucket"),
        ("CALLREC_PUSH_SECRETS", "pbx1", "name=secret"),
        ("CALLREC_PUSH_SECRETS", "=0123456789abcdef", "source names"),
        ("CALLREC_PUSH_SECRETS", "a/b=0123456789abcdef", "source names"),
        ("CALLREC_PUSH_SECRETS", "x" * 65 + "=0123456789abcdef", "source names"),
        ("CALLREC_PUSH_SECRETS", "pbx1=short", "shorter than 16"),
        ("CALLREC_TWILIO_API_BASE", "api.twilio.com", "http"),
        ("CALLREC_MAX_UPLOAD_BYTES", "-1", ""),
        ("CALLREC_OIDC_ALGORITHMS", "RS256,HS256", "asymmetric"),
        ("CALLREC_OIDC_ALGORITHMS", "none", "asymmetric"),
        ("CALLREC_OIDC_JWKS_URL", "http://idp.example.test/keys", "https"),
        ("CALLREC_TOKEN_LEEWAY", "-PT5S", ""),
        ("CALLREC_SHUTDOWN_GRACE", "PT0S", ""),
        ("CALLREC_SHUTDOWN_GRACE", "PT1H", ""),
        ("CALLREC_SHUTDOWN_GRACE", "25", ""),
        ("CALLREC_ERASURE_APPROVALS", "0", ""),
        ("CALLREC_ERASURE_APPROVALS", "3", ""),
        ("CALLREC_ERASURE_APPROVALS", "two", ""),
        ("CALLREC_UNLINKED_REVIEW_AFTER", "P0D", "positive"),
        ("CALLREC_UNLINKED_REVIEW_AFTER", "-P1D", "positive"),
        ("CALLREC_UNLINKED_REVIEW_AFTER", "P90D", "shorter than CALLREC_RETENTION_PERIOD"),
        ("CALLREC_UNLINKED_REVIEW_AFTER", "P120D", "shorter than CALLREC_RETENTION_PERIOD"),
        ("CALLREC_UNLINKED_REVIEW_AFTER", "seven days", ""),
        ("CALLREC_SIPREC_LISTEN", "sbc.example:5060", "address:port"),
        ("CALLREC_SIPREC_LISTEN", "0.0.0.0:70000", "address:port"),
        ("CALLREC_SIPREC_RTP_PORTS", "40000", "first-last"),
        ("CALLREC_SIPREC_RTP_PORTS", "50000-40000", "low first"),
        ("CALLREC_SIPREC_ALLOWED_SOURCES", "10.1.0.1/24", "host bits"),
        ("CALLREC_SIPREC_EXTENSION_FIELDS", '{"caller": "x"}', "agent, team or referral"),
        ("CALLREC_SIPREC_RTP_TIMEOUT", "PT1S", ""),
        ("CALLREC_SIPREC_TCP_LISTEN", "0.0.0.0:5060", "needs CALLREC_SIPREC_LISTEN"),
        ("CALLREC_SIPREC_TLS_LISTEN", "0.0.0.0:5061", "needs CALLREC_SIPREC_LISTEN"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(
    environment: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    environment.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    text = str(refused.value)
    assert text.startswith(f"{variable}: ")
    assert message in text
    assert "\n" not in text


def test_siprec_needs_its_media_address_and_the_sbcs_allowed(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("CALLREC_SIPREC_LISTEN", "0.0.0.0:5060")
    with pytest.raises(SettingsError, match=r"^CALLREC_SIPREC_MEDIA_ADDRESS: required"):
        load_settings()
    environment.setenv("CALLREC_SIPREC_MEDIA_ADDRESS", "192.0.2.10")
    with pytest.raises(SettingsError, match=r"^CALLREC_SIPREC_ALLOWED_SOURCES: required"):
        load_settings()
    environment.setenv("CALLREC_SIPREC_ALLOWED_SOURCES", "192.0.2.0/28, 198.51.100.7")
    environment.setenv("CALLREC_SIPREC_EXTENSION_FIELDS", '{"agent": "userId", "team": "group"}')
    settings = load_settings()
    assert settings.siprec_allowed_sources == ("192.0.2.0/28", "198.51.100.7")
    assert settings.siprec_extension_fields == {"agent": "userId", "team": "group"}
    assert settings.siprec_rtp_ports == "40000-40999"


def _refused(variable: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings()
    text = str(refused.value)
    assert text.startswith(f"{variable}: ")
    assert message in text
    assert "\n" not in text


def test_siprec_over_tcp_and_tls_is_checked_setting_by_setting(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    environment.setenv("CALLREC_SIPREC_LISTEN", "0.0.0.0:5060")
    environment.setenv("CALLREC_SIPREC_MEDIA_ADDRESS", "192.0.2.10")
    environment.setenv("CALLREC_SIPREC_ALLOWED_SOURCES", "192.0.2.0/28")
    environment.setenv("CALLREC_SIPREC_TCP_LISTEN", "sbc.example:5060")
    _refused("CALLREC_SIPREC_TCP_LISTEN", "address:port")
    environment.setenv("CALLREC_SIPREC_TCP_LISTEN", "192.0.2.10:5060")
    environment.setenv("CALLREC_SIPREC_TLS_LISTEN", "192.0.2.10:5061")
    _refused("CALLREC_SIPREC_TLS_CERT_FILE", "required")
    ours = self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    other = self_signed(tmp_path / "other")
    environment.setenv("CALLREC_SIPREC_TLS_CERT_FILE", str(tmp_path / "missing.crt"))
    environment.setenv("CALLREC_SIPREC_TLS_KEY_FILE", ours.key_file)
    _refused("CALLREC_SIPREC_TLS_CERT_FILE", "no such file")
    environment.setenv("CALLREC_SIPREC_TLS_CERT_FILE", ours.cert_file)
    environment.setenv("CALLREC_SIPREC_TLS_KEY_FILE", other.key_file)
    _refused("CALLREC_SIPREC_TLS_KEY_FILE", "cannot be read")
    environment.setenv("CALLREC_SIPREC_TLS_KEY_FILE", ours.key_file)
    environment.setenv("CALLREC_SIPREC_TLS_CLIENT_CA_FILE", ours.key_file)
    _refused("CALLREC_SIPREC_TLS_CLIENT_CA_FILE", "CA certificates")
    environment.setenv("CALLREC_SIPREC_TLS_CLIENT_CA_FILE", other.cert_file)

    settings = load_settings()

    assert stream_listens(settings.siprec_streams) == (
        StreamListen("192.0.2.10", 5060),
        StreamListen("192.0.2.10", 5061, TlsFiles(ours.cert_file, ours.key_file, other.cert_file)),
    )
    environment.delenv("CALLREC_SIPREC_TLS_LISTEN")
    _refused("CALLREC_SIPREC_TLS_LISTEN", "required when the TLS files are set")


def test_a_secret_value_is_not_echoed_when_refused(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("CALLREC_PUSH_SECRETS", "pbx1=tooshort")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "tooshort" not in str(refused.value)


def test_serve_stops_with_one_line_when_retention_is_too_long(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLREC_")}  # noqa: TID251
    env |= {"CALLREC_RETENTION_PERIOD": "P120D", "CALLREC_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "config", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "callrec: invalid setting CALLREC_RETENTION_PERIOD: "
        "longer than P90D: the privacy notice promises at most 90 days"
    ]
    assert not (tmp_path / "callrec.db").exists()


def test_serve_on_a_shared_database_with_keys_of_its_own_stops_with_one_line(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLREC_")}  # noqa: TID251
    env |= {"CALLREC_DATABASE_URL": POSTGRES, "CALLREC_DATA_DIR": str(tmp_path / "var")}
    result = subprocess.run(
        [sys.executable, "-m", "config", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "callrec: invalid setting CALLREC_DATABASE_URL: a shared database needs keys shared "
        "too: set CALLREC_KMS_KEY_ID and an s3:// CALLREC_STORE_URL and an s3:// "
        "CALLREC_EPOCH_KEY_STORE_URL (or CALLREC_SINGLE_NODE=true if every process uses "
        "this one data directory)"
    ]
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize(
    ("settings", "unshared"),
    [
        # The epoch-key store left in the data directory, or any file:// one.
        ({"store_url": "s3://b/o", "kms_key_id": "alias/k"}, ["EPOCH_KEY_STORE_URL"]),
        (
            {"store_url": "s3://b/o", "kms_key_id": "k", "epoch_key_store_url": "file:///m/k"},
            ["EPOCH_KEY_STORE_URL"],
        ),
        ({"store_url": "s3://b/o", "epoch_key_store_url": "s3://b/keys"}, ["KMS_KEY_ID"]),
        ({"kms_key_id": "k", "epoch_key_store_url": "s3://b/keys"}, ["STORE_URL"]),
    ],
)
def test_a_shared_database_names_each_key_it_is_not_sharing(
    environment: pytest.MonkeyPatch, settings: dict[str, str], unshared: list[str]
) -> None:
    environment.setenv("CALLREC_DATABASE_URL", POSTGRES)
    for name, value in settings.items():
        environment.setenv(f"CALLREC_{name.upper()}", value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    named = {
        name
        for name in ("KMS_KEY_ID", "STORE_URL", "EPOCH_KEY_STORE_URL")
        if f"CALLREC_{name}" in str(refused.value)
    }
    assert named == set(unshared)
    # Every key shared, or one node said outright: accepted.
    environment.setenv("CALLREC_SINGLE_NODE", "true")
    assert load_settings().single_node
    environment.delenv("CALLREC_SINGLE_NODE")
    for name, value in {
        "store_url": "s3://b/o",
        "epoch_key_store_url": "s3://b/keys",
        "kms_key_id": "k",
    }.items():
        environment.setenv(f"CALLREC_{name.upper()}", value)
    assert not load_settings().single_node


def test_settings_can_be_built_directly_for_tests(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, retention_period=timedelta(days=7))
    assert settings.resolved_database_url.endswith(f"{tmp_path}/callrec.db")


def test_push_secrets_from_toml_meet_the_same_rules(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "callrec.toml"
    config.write_text('[push_secrets]\npbx1 = "x"\n')
    environment.setenv("CALLREC_CONFIG", str(config))
    with pytest.raises(SettingsError, match=r"^CALLREC_PUSH_SECRETS: .*shorter than 16"):
        load_settings()


def test_a_broken_toml_file_is_one_clear_line(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "callrec.toml"
    config.write_text("retention_period = \n")
    environment.setenv("CALLREC_CONFIG", str(config))
    with pytest.raises(SettingsError, match=r"^CALLREC_CONFIG: the file is not valid TOML"):
        load_settings()


def test_oidc_mode_names_the_setting_it_is_missing(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("CALLREC_AUTH_MODE", "oidc")
    environment.setenv("CALLREC_OIDC_ISSUER", "https://login.example.test/hub")
    environment.setenv("CALLREC_OIDC_JWKS_URL", "https://login.example.test/keys")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value) == "CALLREC_OIDC_AUDIENCE is required in oidc auth mode"


def test_a_complete_oidc_configuration_builds_an_idp_verifier(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    environment.setenv("CALLREC_DATA_DIR", str(tmp_path))
    environment.setenv("CALLREC_AUTH_MODE", "oidc")
    environment.setenv("CALLREC_OIDC_ISSUER", "https://login.example.test/hub")
    environment.setenv("CALLREC_OIDC_AUDIENCE", "api://callrec")
    environment.setenv("CALLREC_OIDC_JWKS_URL", "https://login.example.test/keys")
    environment.setenv("CALLREC_OIDC_ALGORITHMS", "RS256, PS256")
    environment.setenv("CALLREC_OIDC_ROLE_CLAIM", "realm_access.roles")
    settings = load_settings()
    assert settings.oidc_algorithms == ("RS256", "PS256")
    assert isinstance(build_verifier(settings), OidcTokenVerifier)
    # No dev key is made in oidc mode: nothing signs tokens locally.
    assert not (tmp_path / "dev-signing-key.pem").exists()


def test_allowed_senders_are_read_from_the_environment(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("CALLREC_PUSH_SECRETS", "pbx1=0123456789abcdef,pbx2=0123456789abcdef")
    environment.setenv(
        "CALLREC_PUSH_ALLOWED_SENDERS", "pbx1=10.20.0.0/24 10.20.1.7,pbx2=2001:db8::/32"
    )
    environment.setenv("CALLREC_PROVIDER_ALLOWED_SENDERS", "twilio=192.0.2.0/24")
    environment.setenv("CALLREC_TRUSTED_PROXIES", "10.0.0.1, 10.0.1.0/24")
    settings = load_settings()
    assert settings.push_allowed_senders == {
        "pbx1": ("10.20.0.0/24", "10.20.1.7"),
        "pbx2": ("2001:db8::/32",),
    }
    assert settings.provider_allowed_senders == {"twilio": ("192.0.2.0/24",)}
    assert settings.trusted_proxies == ("10.0.0.1", "10.0.1.0/24")


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CALLREC_PUSH_ALLOWED_SENDERS", "pbx1=10.20.0.1/24", "host bits"),
        ("CALLREC_PUSH_ALLOWED_SENDERS", "pbx1=not-an-address", "not an address"),
        ("CALLREC_PUSH_ALLOWED_SENDERS", "pbx1", "name=cidr"),
        ("CALLREC_PUSH_ALLOWED_SENDERS", "stranger=10.0.0.0/8", "not a source"),
        ("CALLREC_PROVIDER_ALLOWED_SENDERS", "plivo=10.0.0.0/8", "providers are"),
        ("CALLREC_TRUSTED_PROXIES", "10.0.0.0/33", "not an address"),
        ("CALLREC_MAX_UNAUTHENTICATED_PUSHES", "33", "at most CALLREC_MAX_CONCURRENT_PUSHES"),
    ],
)
def test_a_bad_sender_setting_is_one_line_naming_it(
    environment: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    environment.setenv("CALLREC_PUSH_SECRETS", "pbx1=0123456789abcdef")
    environment.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    message = str(refused.value)
    assert message.startswith(f"{variable}: "), message
    assert says in message, message
    assert "\n" not in message
