"""deploy/compose.yaml: valid Compose, the services the trial promises, settings callrec
really reads (and accepts), the image the Containerfile builds, migrations before the
replicas, and no secret anywhere but in files it names."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from config.settings import Settings, load_settings
from tests.deploy.cli_lines import parse_command
from tests.deploy.settings_names import secret_variables, unknown_settings
from tests.fixtures_db import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
REPLICAS = ("callrec-1", "callrec-2")
SERVICES = {*REPLICAS, "migrate", "postgres", "minio", "kms", "bootstrap", "proxy"}
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE_KEY|ACCESS_KEY|CREDENTIAL")
# What a generated secret looks like: a word of 20 or more letters and digits (hex, base64),
# not part of a path, a name or a version.
_RANDOM_LOOKING = re.compile(r"(?<![\w/.-])[A-Za-z0-9+=]{20,}(?![\w/.-])")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def project_version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


def duration(text: str) -> timedelta:
    """A Compose duration (``35s``, ``1m30s``) or an ISO-8601 one (``PT25S``)."""
    if text.startswith("P"):
        return TypeAdapter(timedelta).validate_python(text)
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    assert text, "an empty duration"
    assert parts is not None, f"not a duration: {text!r}"
    hours, minutes, seconds = (int(part or 0) for part in parts.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def test_docker_compose_accepts_the_file() -> None:
    # Debian's docker-compose validates against its Compose Specification schema
    # (compose/config/compose_spec.json) and checks references (secrets, networks,
    # depends_on conditions) without a container engine.
    tool = shutil.which("docker-compose")
    if tool is None:
        skip_or_fail("docker-compose is not installed (make test installs it as root)")
        return
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SITE_", "CADDY_"))}  # noqa: TID251
    checked = subprocess.run(
        [tool, "-f", str(COMPOSE_FILE), "config"],
        cwd=DEPLOY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "WARN" not in checked.stderr, checked.stderr
    rendered = yaml.safe_load(checked.stdout)
    assert set(rendered["services"]) == SERVICES


def test_a_broken_file_is_refused_by_the_same_check(tmp_path: Path) -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        skip_or_fail("docker-compose is not installed (make test installs it as root)")
        return
    broken = COMPOSE_FILE.read_text().replace(
        "condition: service_completed_successfully", "condition: service_finished", 1
    )
    (tmp_path / "compose.yaml").write_text(broken)
    checked = subprocess.run(
        [tool, "-f", "compose.yaml", "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode != 0
    assert "service_finished" in checked.stderr


def test_the_trial_has_two_replicas_and_what_they_need(compose: dict[str, Any]) -> None:
    assert set(services(compose)) == SERVICES


def test_the_image_is_the_one_the_containerfile_is_tagged_as(compose: dict[str, Any]) -> None:
    expected = f"localhost/callrec:{project_version()}"
    for name in (*REPLICAS, "migrate"):
        assert services(compose)[name]["image"] == expected, name


def test_the_containerfile_names_the_same_image_and_version(compose: dict[str, Any]) -> None:
    containerfile = DEPLOY / "Containerfile"
    if not containerfile.exists():
        pytest.skip("deploy/Containerfile is not in this tree")
    text = containerfile.read_text()
    tags = set(re.findall(r"localhost/callrec:[\w.+-]+", text))
    assert tags == {services(compose)["callrec-1"]["image"]}
    assert re.findall(r"^ARG VERSION=(\S+)$", text, re.MULTILINE) == [project_version()]


def test_replicas_start_only_after_the_migration_completed(compose: dict[str, Any]) -> None:
    for name in REPLICAS:
        depends = services(compose)[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    migrate = services(compose)["migrate"]
    assert parse_command(migrate["command"]) == ["callrec", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["depends_on"]["bootstrap"]["condition"] == "service_completed_successfully"


def test_every_callrec_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        assert not unknown_settings(service.get("environment", {})), name


def test_secret_settings_come_from_files_only(compose: dict[str, Any]) -> None:
    declared = compose["secrets"]
    for name, service in services(compose).items():
        environment: dict[str, str] = service.get("environment", {})
        assert not secret_variables() & set(environment), name
        mounted = set(service.get("secrets", []))
        for variable, value in environment.items():
            if _SECRET_NAME.search(variable):
                assert variable.endswith("_FILE"), f"{name}: {variable} holds a secret inline"
            if variable.endswith("_FILE"):
                secret = str(value).removeprefix("/run/secrets/")
                assert secret in mounted, f"{name}: {variable} names a secret it does not mount"
    for secret in declared.values():
        assert set(secret) == {"file"}
        assert secret["file"].startswith("./trial/secrets/")


def test_no_secret_value_is_in_the_file_or_the_repository() -> None:
    text = COMPOSE_FILE.read_text()
    words = _RANDOM_LOOKING.findall(text)
    assert not [w for w in words if re.search(r"\d", w) and re.search(r"[A-Za-z]", w)]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/trial/secrets/database_url"],
        cwd=ROOT,
        check=False,
    )
    assert ignored.returncode == 0, "deploy/trial/secrets/ must be ignored by git"


def test_the_settings_it_gives_a_replica_are_accepted(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The replica's environment as compose sets it, with secret files like the ones
    # make-secrets.sh writes: start-up's own validation (shared keys for a shared
    # database, durations, addresses) must pass.
    for name in list(os.environ):  # noqa: TID251 - a clean slate for the settings
        if name.startswith("CALLREC_"):
            monkeypatch.delenv(name)
    secrets = {
        "database_url": "postgresql://callrec:x@postgres:5432/callrec",
        "push_secrets": "pbx1=" + "0" * 64,
    }
    for variable, value in services(compose)["callrec-1"]["environment"].items():
        if not variable.startswith("CALLREC_"):
            continue
        if variable.endswith("_FILE"):
            secret = tmp_path / Path(value).name
            secret.write_text(secrets[secret.name])
            value = str(secret)
        monkeypatch.setenv(variable, value.replace("${SITE_ADDRESS:-localhost}", "localhost"))
    settings: Settings = load_settings()
    assert settings.resolved_database_url.startswith("postgresql+asyncpg://")
    assert settings.kms_key_id == "alias/callrec-trial"
    assert settings.resolved_epoch_key_store_url.startswith("s3://")
    assert settings.push_secrets["pbx1"].get_secret_value() == "0" * 64
    grace = duration(services(compose)["callrec-1"]["stop_grace_period"])
    assert grace > settings.shutdown_grace, "SIGKILL would cut the drain short"


def test_each_replica_has_its_own_data_volume_and_a_memory_spool(
    compose: dict[str, Any],
) -> None:
    volumes = set()
    for name in REPLICAS:
        replica = services(compose)[name]
        (volume,) = replica["volumes"]
        source, target = volume.split(":")
        assert target == "/var/lib/callrec"
        volumes.add(source)
        assert replica["read_only"] is True
        (spool,) = replica["tmpfs"]
        assert spool.startswith("/var/lib/callrec/spool:")
        assert "uid=10001" in spool
        assert replica["stop_signal"] == "SIGTERM"
    assert len(volumes) == len(REPLICAS)


def test_the_proxy_balances_both_replicas_and_is_the_trusted_one(
    compose: dict[str, Any],
) -> None:
    proxy = services(compose)["proxy"]
    upstreams = proxy["environment"]["UPSTREAMS"].split()
    assert upstreams == [f"{name}:8080" for name in REPLICAS]
    assert "./caddy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    assert (DEPLOY / "caddy" / "Caddyfile").is_file()
    address = proxy["networks"]["edge"]["ipv4_address"]
    trusted = services(compose)["callrec-1"]["environment"]["CALLREC_TRUSTED_PROXIES"]
    assert trusted.split() == [address]


def test_the_bootstrap_makes_the_buckets_and_key_the_replicas_use(
    compose: dict[str, Any],
) -> None:
    bootstrap = services(compose)["bootstrap"]
    mounts = dict(volume.rsplit(":", 1)[0].split(":") for volume in bootstrap["volumes"])
    for source in mounts:
        assert (DEPLOY / source).is_file(), source
    assert mounts["./s3-lifecycle.json"] == "/bootstrap/s3-lifecycle.json"
    script = DEPLOY / mounts["./trial/bootstrap.sh"].replace("/bootstrap/", "trial/")
    buckets = dict(re.findall(r"^([A-Z_]+)=(\S+)$", script.read_text(), re.MULTILINE))
    settings = services(compose)["callrec-1"]["environment"]
    assert settings["CALLREC_STORE_URL"] == f"s3://{buckets['AUDIO']}"
    assert settings["CALLREC_EPOCH_KEY_STORE_URL"] == f"s3://{buckets['EPOCH_KEYS']}"
    assert settings["CALLREC_ANCHOR_STORE_URL"] == f"s3://{buckets['ANCHORS']}"
    assert bootstrap["environment"]["KMS_ALIAS"] == settings["CALLREC_KMS_KEY_ID"]
    for variable in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_KMS", "AWS_DEFAULT_REGION"):
        assert bootstrap["environment"][variable] == settings[variable]


def test_make_secrets_writes_every_secret_once(compose: dict[str, Any], tmp_path: Path) -> None:
    script = tmp_path / "make-secrets.sh"
    shutil.copy(DEPLOY / "trial" / "make-secrets.sh", script)
    for _ in range(2):
        subprocess.run(["sh", str(script)], check=True, capture_output=True, timeout=30)
    folder = tmp_path / "secrets"
    wanted = {Path(secret["file"]).name for secret in compose["secrets"].values()}
    assert {path.name for path in folder.iterdir()} == wanted
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    read = {name: (folder / name).read_text().strip() for name in wanted}
    password = read["postgres_password"]
    assert read["database_url"] == f"postgresql://callrec:{password}@postgres:5432/callrec"
    assert f"aws_access_key_id = {read['minio_root_user']}" in read["aws_credentials"]
    assert f"aws_secret_access_key = {read['minio_root_password']}" in read["aws_credentials"]
    name, _, secret = read["push_secrets"].partition("=")
    assert name == "pbx1"
    assert len(secret) >= 32


def test_the_region_is_one_boto3_reads(compose: dict[str, Any]) -> None:
    # boto3 takes the region from AWS_DEFAULT_REGION, not AWS_REGION: without it the KMS
    # client has no region and start-up stops.
    for name in (*REPLICAS, "migrate", "bootstrap"):
        environment = services(compose)[name]["environment"]
        assert environment.get("AWS_DEFAULT_REGION") == "eu-west-2", name
        assert "AWS_REGION" not in environment, name
