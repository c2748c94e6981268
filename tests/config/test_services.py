"""Services are built on first use: a command builds, and closes, only what it touches."""

from __future__ import annotations

from pathlib import Path

from config.services import build_services
from config.settings import Settings
from tests.cli_support import invoke


async def test_touching_the_keys_builds_neither_the_media_workers_nor_sign_in(
    tmp_path: Path, database_url: str
) -> None:
    services = build_services(
        Settings(data_dir=tmp_path / "var", database_url=database_url, single_node=True)
    )
    assert services.built == []
    try:
        status = await services.keys.status()
        assert status.root_kek_id
        built = set(services.built)
        assert {"database", "keyring", "keys"} <= built
        assert not built & {"media", "spool", "capture", "tokens", "oidc_sign_in", "fetcher"}
        assert services.built.index("database") < services.built.index("keys")
    finally:
        await services.close()
    # Closed parts are forgotten, so closing again does nothing.
    assert services.built == []
    await services.close()


async def test_nothing_is_built_or_closed_for_a_command_that_touches_nothing(
    tmp_path: Path,
) -> None:
    services = build_services(Settings(data_dir=tmp_path / "var"))
    await services.close()
    assert services.built == []
    assert not (tmp_path / "var").exists()


def test_keys_status_never_makes_a_spool_or_a_sign_in_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    assert invoke("db", "upgrade", CALLREC_DATA_DIR=str(data_dir)).returncode == 0
    result = invoke("keys", "status", CALLREC_DATA_DIR=str(data_dir))
    assert result.returncode == 0, result.stderr
    assert '"root_kek_id"' in result.stdout
    # The media workers' spool and the dev sign-in key belong to parts it never built.
    assert not (data_dir / "spool").exists()
    assert not (data_dir / "dev-signing-key.pem").exists()
