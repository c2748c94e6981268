"""The container image: built once from deploy/Containerfile, then run as a runtime runs it.

The image is built on a Debian base made here (tests/deploy/image_build.py) and its file
system run read-only, with the data volume and the spool's tmpfs, as its own user
(tests/deploy/sandbox.py). Where podman, mmdebstrap or root are missing the tests skip,
except under CI=true. Each run adds the build's time to the suite (printed with -s).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.image_build import (
    REPOSITORY,
    base_image,
    build_context,
    build_image,
    cache_lock,
    image_size,
    inspect,
    missing_tools,
    mounted,
    project_version,
)
from tests.deploy.push_client import AUDIO_SECONDS
from tests.deploy.sandbox import Container, ImageConfig, start
from tests.fixtures_db import skip_or_fail
from tests.push_support import SECRET, make_wav

# A minute or more when nothing is cached (the base and every wheel are made).
pytestmark = pytest.mark.long

VOLUME = "/var/lib/callrec"
SPOOL = f"{VOLUME}/spool"
USER = 10001
PORT = 8080
EVERY_ADDRESS = "0.0.0.0"  # noqa: S104 - what the image must listen on
# What a container runtime adds to an image's environment, and what this test sets.
RUN_SETTINGS = {
    "HOME": VOLUME,
    "CALLREC_PUSH_SECRETS": f"pbx={SECRET}",
    "CALLREC_SHUTDOWN_GRACE": "PT2S",
    "CALLREC_MEDIA_WORKERS": "1",
}
PACKAGES = ("config", "recorder", "retention", "retrieval", "storage")
# Nothing in the image compiles, nor fetches (the healthcheck uses python). The official
# python base keeps its own pip; the environment the image runs has none (checked below).
ABSENT = ("cc", "c++", "gcc", "g++", "clang", "tcc", "ld", "as", "make", "curl", "wget")


@dataclass
class Image:
    """The built image: its name, what `podman image inspect` says, its root mounted, and
    the base it was built on."""

    tag: str
    inspected: dict[str, Any]
    root: Path
    base: str

    @property
    def config(self) -> ImageConfig:
        return ImageConfig.from_inspect(self.inspected)


@dataclass
class Running:
    """The image's default command running, with the host folder that is its volume."""

    container: Container
    data: Path
    log: Path


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """localhost/callrec:<version>, built once for the module."""
    if os.geteuid() != 0:
        skip_or_fail("the image test mounts and enters namespaces: it runs as root")
    missing = missing_tools()
    if missing:
        skip_or_fail(f"missing {', '.join(missing)} (make system-tools installs them as root)")
    tag = f"localhost/callrec:{project_version()}"
    log = tmp_path_factory.mktemp("image") / "build.log"
    began = time.monotonic()
    with cache_lock() as cache:
        base = base_image(cache)
        build_image(tag, base, cache, log)
    print(f"\n{tag}: built in {time.monotonic() - began:.1f} s, {image_size(tag)}")
    with mounted(tag) as root:
        yield Image(tag, inspect(tag), root, base)


@pytest.fixture(scope="module")
def running(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The image's entrypoint and default command, up, listening and healthy."""
    work = tmp_path_factory.mktemp("container")
    data = work / "data"
    data.mkdir(mode=0o700)
    os.chown(data, USER, USER)  # a volume made for the image, owned as its user
    (work / "root").mkdir()
    log = work / "output.log"
    container = start(
        image.root,
        work / "root",
        image.config,
        volume=VOLUME,
        data=data,
        tmpfs=SPOOL,
        env=RUN_SETTINGS,
        log=log,
    )
    try:
        deadline = time.monotonic() + 60
        while container.launcher.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # not started, or gone: the loop will tell
                if (EVERY_ADDRESS, PORT) in container.listening():
                    break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the image's command did not listen:\n{log.read_text()}")
        # Healthy, as a runtime would see it: the image's healthcheck within a start period.
        while container.enter(image.config.healthcheck[1:]).returncode != 0:
            if container.launcher.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the healthcheck never passed:\n{log.read_text()}")
            time.sleep(0.3)
        yield Running(container, data, log)
    finally:
        container.kill()


def test_the_image_is_named_labelled_and_set_up_as_its_runtime_expects(image: Image) -> None:
    inspected, version = image.inspected, project_version()
    config = inspected["Config"]
    assert f"localhost/callrec:{version}" in inspected["RepoTags"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "callrec"
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.licenses"] == "AGPL-3.0-or-later"
    assert labels["org.opencontainers.image.description"]
    assert labels["org.opencontainers.image.base.name"].startswith("localhost/callrec-test-base")
    assert config["User"] == f"{USER}:{USER}"
    assert config["Entrypoint"] == ["/opt/callrec/bin/callrec"]
    assert config["Cmd"] == ["serve", "--host", EVERY_ADDRESS, "--port", str(PORT)]
    assert config["WorkingDir"] == VOLUME
    assert set(config["Volumes"]) == {VOLUME}
    assert set(config["ExposedPorts"]) == {f"{PORT}/tcp"}
    assert image.config.env["CALLREC_DATA_DIR"] == VOLUME
    test = inspected["Healthcheck"]["Test"]
    assert test[0] == "CMD"
    assert f"http://127.0.0.1:{PORT}/healthz" in test[-1]
    # The user exists by name, and the volume's mount point is its own and private.
    passwd = (image.root / "etc" / "passwd").read_text().splitlines()
    assert f"callrec:x:{USER}:{USER}:" in "\n".join(passwd)
    volume = (image.root / VOLUME.lstrip("/")).stat()
    assert (volume.st_uid, volume.st_gid, stat.S_IMODE(volume.st_mode)) == (USER, USER, 0o700)


def test_the_build_context_holds_only_what_the_build_copies(image: Image, tmp_path: Path) -> None:
    files = build_context(image.base, tmp_path)
    tops = {name.split("/")[0] for name in files}
    assert tops == {"pyproject.toml", "README.md", *PACKAGES}
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]


def test_the_image_has_no_compiler_no_build_tools_no_curl_and_no_secret(image: Image) -> None:
    path = image.config.env["PATH"].split(":")
    found = [
        f"{directory}/{name}"
        for directory in path
        for name in ABSENT
        if os.path.lexists(image.root / directory.lstrip("/") / name)
    ]
    assert found == []
    assert not list((image.root / "usr" / "bin").glob("*-linux-gnu-gcc*"))
    site = next((image.root / "opt" / "callrec" / "lib").glob("python3*/site-packages"))
    shipped = {entry.name.split("-")[0].lower() for entry in site.iterdir()}
    assert {*PACKAGES, "aiohttp", "av", "cryptography"} <= shipped
    assert shipped.isdisjoint({"pip", "setuptools", "wheel", "build", "tests"})
    for left_by_the_build in (
        "opt/build",
        "wheels",
        "src",
        "root/.cache",
        "etc/pip.conf",
        "run/callrec-build",
    ):
        assert not (image.root / left_by_the_build).exists(), left_by_the_build
    # Nothing of a service's own: no data, keys or settings with secrets.
    assert [entry.name for entry in (image.root / VOLUME.lstrip("/")).iterdir()] == ["spool"]
    settings = [name for name in image.config.env if name.startswith("CALLREC_")]
    assert settings == ["CALLREC_DATA_DIR"]
    assert not [
        name
        for name in image.config.env
        if any(word in name for word in ("SECRET", "PASSWORD", "TOKEN", "KEY"))
    ]


def test_it_runs_as_its_user_listening_on_every_address_on_a_read_only_root(
    running: Running,
) -> None:
    container = running.container
    assert (EVERY_ADDRESS, PORT) in container.listening()
    processes = container.processes()
    assert len(processes) >= 2  # the service and its media workers' fork server
    assert set(processes.values()) == {(USER,) * 4}
    mounts = container.mounts()  # as the service sees them
    assert "ro" in mounts["/"]
    writable = {point for point, options in mounts.items() if "rw" in options}
    # Where it can write, besides the runtime's /proc and /dev (device nodes, /dev/shm).
    assert {point for point in writable if point.split("/")[1] not in ("proc", "dev")} == {
        VOLUME,
        SPOOL,
    }


def test_its_healthcheck_asks_healthz_and_fails_when_nothing_answers(
    running: Running, image: Image
) -> None:
    command = image.config.healthcheck[1:]
    assert running.container.enter(command).returncode == 0
    elsewhere = [part.replace(f":{PORT}/", f":{PORT + 1}/") for part in command]
    assert running.container.enter(elsewhere).returncode != 0


def test_it_stores_a_signed_push_encrypted_in_its_volume(running: Running, image: Image) -> None:
    pushed = running.container.in_network(
        [sys.executable, "-m", "tests.deploy.push_client", str(PORT), "pbx"], cwd=REPOSITORY
    )
    assert pushed.returncode == 0, pushed.stderr
    answer = json.loads(pushed.stdout)
    assert answer["status"] == 201, answer
    assert json.loads(answer["body"])["status"] == "stored"
    stored = [path for path in (running.data / "objects").rglob("*") if path.is_file()]
    assert stored
    samples = make_wav(AUDIO_SECONDS)[44:]
    for path in stored:
        assert samples[:4096] not in path.read_bytes()
    # Any subcommand, beside the running service: the integrity scrub reads it back.
    verified = running.container.enter([*image.config.entrypoint, "verify"])
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "problems: 0" in verified.stdout
    assert "objects: 0," not in verified.stdout


def test_it_stops_on_sigterm_leaving_only_its_users_files_in_the_volume(
    running: Running,
) -> None:
    assert running.container.stop() == 0, running.log.read_text()
    strangers = [
        path
        for path in [running.data, *running.data.rglob("*")]
        if path.lstat().st_uid != USER or path.lstat().st_gid != USER
    ]
    assert strangers == []
    assert (running.data / "callrec.db").exists()
    # Temporary files went to /dev/shm, not into the volume.
    names = [path.name for path in running.data.iterdir()]
    assert not [name for name in names if name.startswith(("tmp", "pymp", "callrec-"))]
