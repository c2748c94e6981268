"""deploy/systemd/: the unit passes systemd's own checks and keeps its hardening, its
commands and settings are real, its stop timeout outlasts the drain, and the example
settings file is a configuration the service accepts."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from config.settings import Settings, load_settings
from tests.deploy.cli_lines import parse_command
from tests.deploy.settings_names import secret_variables, unknown_settings
from tests.fixtures_db import skip_or_fail

SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNIT = SYSTEMD / "callrec.service"
ENV_FILE = SYSTEMD / "callrec.env"
WRAPPER = SYSTEMD / "callrec-cli.sh"
INSTALLED_CALLREC = "/opt/callrec/bin/callrec"


def unit_entries(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) in file order; a key may repeat (Environment=, ...)."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, separator, value = line.partition("=")
        assert separator, f"not a key=value line: {raw!r}"
        entries.append((section, key.strip(), value.strip()))
    return entries


def service_values(key: str) -> list[str]:
    return [v for s, k, v in unit_entries(UNIT.read_text()) if s == "Service" and k == key]


def environment_file() -> dict[str, str]:
    """The EnvironmentFile's assignments, with quotes removed as systemd and sh remove them."""
    values: dict[str, str] = {}
    for line in ENV_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            (assignment,) = shlex.split(line)
            name, _, value = assignment.partition("=")
            values[name] = value
    return values


def seconds(value: str) -> float:
    """A systemd time span such as ``40s``, ``15min`` or ``2min 30s``, in seconds."""
    units = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+)\s*([a-z]*)", value):
        total += int(number) * units[unit or "s"]
    return total


def verifiable_copy(directory: Path) -> Path:
    """The unit with its commands pointing at an executable that exists here, since
    `systemd-analyze verify` checks that they do; everything else as written."""
    stand_in = directory / "callrec"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    copy = directory / "callrec.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED_CALLREC, str(stand_in)))
    return copy


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        skip_or_fail("systemd-analyze is not installed (Debian's systemd package)")
    assert tool is not None
    return tool


def test_systemd_verifies_the_unit_without_a_warning(tmp_path: Path) -> None:
    checked = subprocess.run(
        [systemd_analyze(), "verify", str(verifiable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 on unknown keys and bad specifiers, warning on stderr: both count.
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == "", checked.stderr


def test_a_misspelt_key_is_caught_by_the_same_check(tmp_path: Path) -> None:
    unit = verifiable_copy(tmp_path)
    unit.write_text(unit.read_text().replace("KillMode=mixed", "KilMode=mixed"))
    checked = subprocess.run(
        [systemd_analyze(), "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "KilMode" in checked.stderr


def test_systemd_rates_its_exposure_low(tmp_path: Path) -> None:
    checked = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", str(verifiable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for callrec\.service: ([\d.]+)", checked.stdout)
    assert found is not None, checked.stdout + checked.stderr
    # 1.5 when written; 10 is a unit with no hardening at all.
    assert float(found.group(1)) <= 2.0, checked.stdout


def test_the_unit_keeps_its_hardening() -> None:
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "MemoryDenyWriteExecute": "yes",
        "StateDirectory": "callrec",
        "User": "callrec",
    }
    for key, value in expected.items():
        assert service_values(key) == [value], key
    assert "@system-service" in service_values("SystemCallFilter")


def test_stopping_drains_before_anything_is_killed() -> None:
    assert service_values("KillSignal") == ["SIGTERM"]
    assert service_values("KillMode") == ["mixed"]
    (timeout,) = service_values("TimeoutStopSec")
    grace = environment_file().get("CALLREC_SHUTDOWN_GRACE")
    limit = Settings(shutdown_grace=grace) if grace else Settings()
    assert seconds(timeout) > limit.shutdown_grace.total_seconds() + 5


def test_migrations_run_before_the_service_and_both_commands_parse() -> None:
    (before,) = service_values("ExecStartPre")
    (start,) = service_values("ExecStart")
    for line, chain in ((before, ["callrec", "db", "upgrade"]), (start, ["callrec", "serve"])):
        program, *args = shlex.split(line)
        assert program == INSTALLED_CALLREC
        assert parse_command(args) == chain


def test_every_setting_the_unit_and_its_files_name_is_real() -> None:
    names = [v.partition("=")[0] for v in service_values("Environment")]
    assert not unknown_settings(names)
    assert not unknown_settings(environment_file())
    assert not unknown_settings(re.findall(r"CALLREC_[A-Z_]+", WRAPPER.read_text()))


def test_each_credential_is_named_to_the_service_by_a_file_setting() -> None:
    environment = dict(v.partition("=")[::2] for v in service_values("Environment"))
    for credential in service_values("LoadCredential"):
        name, _, path = credential.partition(":")
        assert path == f"/etc/callrec/credentials/{name}"
        files = [k for k, v in environment.items() if v == f"%d/{name}"]
        assert len(files) == 1, name
        assert files[0].endswith("_FILE")


def test_the_settings_file_holds_no_secret() -> None:
    settings = environment_file()
    # The database URL is typed as a secret because it may carry a password; here it is
    # peer authentication over the socket, with none.
    database = make_url(settings.pop("CALLREC_DATABASE_URL"))
    assert database.password is None
    assert not secret_variables() & set(settings)


def test_the_example_settings_are_a_configuration_the_service_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):  # noqa: TID251 - a clean slate for the settings
        if name.startswith("CALLREC_"):
            monkeypatch.delenv(name)
    for name, value in environment_file().items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.single_node
    assert settings.resolved_database_url.startswith("postgresql+asyncpg://callrec@/callrec")
    assert settings.auth_mode == "oidc"
    assert settings.oidc_scopes == ("openid", "profile", "api://your-client-id/access")


def test_the_operators_wrapper_runs_the_installed_command_as_the_service_user() -> None:
    text = WRAPPER.read_text()
    assert "runuser -u callrec" in text
    assert f'exec {INSTALLED_CALLREC} "$@"' in text
    assert ". /etc/callrec/callrec.env" in text
    checked = subprocess.run(["sh", "-n", str(WRAPPER)], capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
