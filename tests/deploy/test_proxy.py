"""deploy/caddy/Caddyfile, checked by Caddy itself (Debian's caddy): valid, and what it
adapts to balances every replica, takes a replica out by /readyz, keeps /metrics in, and
terminates TLS with the certificate it is given."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_db import skip_or_fail
from tests.service_support import free_port

CADDYFILE = Path(__file__).resolve().parents[2] / "deploy" / "caddy" / "Caddyfile"


def caddy(args: list[str], home: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    """Caddy with its storage under ``home`` and only the site settings given."""
    tool = shutil.which("caddy")
    if tool is None:
        skip_or_fail("caddy is not installed (make test installs Debian's caddy as root)")
    assert tool is not None
    env = {
        k: v
        for k, v in os.environ.items()  # noqa: TID251 - the tool's own environment
        if k not in {"SITE_ADDRESS", "CADDY_TLS", "UPSTREAMS"}
    }
    env |= {"HOME": str(home), "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    return subprocess.run(
        [tool, *args, "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env=env | environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def adapted(home: Path, **environment: str) -> dict[str, Any]:
    """The JSON configuration Caddy makes of the file."""
    done = caddy(["adapt"], home, **environment)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def site_routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    (server,) = config["apps"]["http"]["servers"].values()
    (site,) = server["routes"]
    routes: list[dict[str, Any]] = site["handle"][0]["routes"]
    return routes


def proxy(config: dict[str, Any]) -> dict[str, Any]:
    handler: dict[str, Any]
    (handler,) = (
        handler
        for route in site_routes(config)
        for handler in route["handle"]
        if handler["handler"] == "reverse_proxy"
    )
    return handler


def test_caddy_validates_the_file(tmp_path: Path) -> None:
    # Loopback upstreams that nothing listens on: validation provisions the health
    # checker, which asks each once.
    upstreams = f"127.0.0.1:{free_port()} 127.0.0.1:{free_port()}"
    done = caddy(["validate"], tmp_path, UPSTREAMS=upstreams)
    assert done.returncode == 0, done.stderr
    assert "Valid configuration" in done.stderr + done.stdout


def test_a_broken_file_is_refused_by_the_same_check(tmp_path: Path) -> None:
    broken = tmp_path / "Caddyfile"
    broken.write_text(CADDYFILE.read_text().replace("health_uri", "health_url"))
    tool = shutil.which("caddy")
    if tool is None:
        skip_or_fail("caddy is not installed (make test installs Debian's caddy as root)")
    assert tool is not None
    done = subprocess.run(
        [tool, "adapt", "--config", str(broken), "--adapter", "caddyfile"],
        env={"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")},  # noqa: TID251
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "health_url" in done.stderr


def test_every_replica_is_balanced_and_checked_by_readyz(tmp_path: Path) -> None:
    handler = proxy(adapted(tmp_path, UPSTREAMS="callrec-1:8080 callrec-2:8080"))
    assert [upstream["dial"] for upstream in handler["upstreams"]] == [
        "callrec-1:8080",
        "callrec-2:8080",
    ]
    assert handler["health_checks"]["active"]["uri"] == "/readyz"
    assert handler["health_checks"]["passive"]["fail_duration"] > 0


def test_by_default_it_fronts_the_single_machine_install(tmp_path: Path) -> None:
    # The unit serves on 127.0.0.1:8080 (deploy/systemd/callrec.service).
    config = adapted(tmp_path)
    assert [upstream["dial"] for upstream in proxy(config)["upstreams"]] == ["127.0.0.1:8080"]
    unit = (CADDYFILE.parents[1] / "systemd" / "callrec.service").read_text()
    assert "serve --host 127.0.0.1 --port 8080" in unit


def test_metrics_are_not_served_to_the_outside(tmp_path: Path) -> None:
    (route,) = (
        route
        for route in site_routes(adapted(tmp_path))
        if any("/metrics" in match.get("path", []) for match in route.get("match", []))
    )
    assert route["handle"] == [{"handler": "static_response", "status_code": 404}]


CADDYS_OWN_CA = {
    "automation": {"policies": [{"subjects": ["localhost"], "issuers": [{"module": "internal"}]}]}
}
COUNCILS_CERTIFICATE = {
    "certificates": {
        "load_files": [
            {"certificate": "/certs/cert.pem", "key": "/certs/key.pem", "tags": ["cert0"]}
        ]
    }
}


@pytest.mark.parametrize(
    ("tls", "expected"),
    [("", CADDYS_OWN_CA), ("/certs/cert.pem /certs/key.pem", COUNCILS_CERTIFICATE)],
    ids=["caddy's own CA by default", "the council's certificate"],
)
def test_tls_uses_the_certificate_it_is_given(
    tmp_path: Path, tls: str, expected: dict[str, Any]
) -> None:
    settings = {"CADDY_TLS": tls} if tls else {}
    config = adapted(tmp_path, **settings)
    assert config["apps"]["tls"] == expected
    (server,) = config["apps"]["http"]["servers"].values()
    assert server["listen"] == [":443"]
