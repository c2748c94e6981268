"""Building deploy/Containerfile for its test, on a base made here from Debian's packages.

No registry but PyPI and Debian's mirror is reachable from the test machines, so the
official python image cannot be pulled: mmdebstrap makes a minimal bookworm with python3
and python3-venv, podman imports it, and the Containerfile is built on it with
``--build-arg BASE_IMAGE``. What is slow is kept between runs, outside the repository
(CALLREC_TEST_CACHE, else ~/.cache/callrec-tests): the base's root file system as a tar
and as a podman image, both named by a digest of what makes them, and the wheels every
build made, which the next one mounts at /wheels. Podman's own layer cache does the rest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPOSITORY / "deploy" / "Containerfile"
CACHE = (
    Path(
        os.environ.get("CALLREC_TEST_CACHE")  # noqa: TID251 - the tests' own cache folder
        or Path.home() / ".cache" / "callrec-tests"
    )
    / "image"
)
# What the tests run besides podman: mounts, namespaces (util-linux, always on Debian).
TOOLS = ("podman", "mmdebstrap", "unshare", "nsenter", "mount")
# The base: what the official slim image offers the Containerfile (python3, venv, a shell,
# groupadd), from Debian's packages; docs and translations are left out to keep it small.
MMDEBSTRAP = (
    "mmdebstrap",
    "--quiet",
    "--variant=minbase",
    "--format=tar",
    "--include=python3,python3-venv",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "bookworm",
)
BUILD_TIMEOUT_S = 20 * 60


def missing_tools() -> list[str]:
    """The tools the image test needs that this machine lacks."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def project_version() -> str:
    """The version pyproject.toml gives: the image's tag and its version label."""
    with (REPOSITORY / "pyproject.toml").open("rb") as file:
        version: str = tomllib.load(file)["project"]["version"]
    return version


@contextlib.contextmanager
def cache_lock() -> Iterator[Path]:
    """The cache folder, held by this process alone: two test runs build one at a time."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield CACHE


def base_image(cache: Path) -> str:
    """A podman image of a Debian minbase with python3: made once, then found by name."""
    digest = hashlib.sha256(json.dumps(MMDEBSTRAP).encode()).hexdigest()[:16]
    name = f"localhost/callrec-test-base:{digest}"
    if _podman("image", "exists", name, check=False).returncode == 0:
        return name
    tar = cache / f"base-{digest}.tar"
    if not tar.exists():
        partial = tar.with_suffix(".partial")
        made = subprocess.run(
            [*MMDEBSTRAP, str(partial)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
        if made.returncode != 0:
            raise AssertionError(f"mmdebstrap failed ({made.returncode}): {made.stderr[-4000:]}")
        partial.rename(tar)
    _podman("import", "--quiet", str(tar), name)
    return name


def build_image(tag: str, base: str, cache: Path, log: Path) -> None:
    """``podman build`` of deploy/Containerfile from the repository on ``base``, with this
    machine's CA bundle and the wheels of earlier builds; then the image it replaces (if
    any) is removed."""
    before = _image_id(tag)
    # pip's own cache keeps nothing here (a proxy strips the answers' caching headers), so
    # the wheels themselves are kept: the build takes those in /wheels before downloading.
    volumes = [f"--volume={cache / 'wheels'}:/wheels"]
    bundle = _ca_bundle()
    if bundle is not None:
        # Behind a TLS-inspecting proxy, pip in the build must trust what the machine trusts.
        config = cache / "pip.conf"
        config.write_text("[global]\ncert = /run/callrec-build/ca.crt\n")
        volumes += [
            f"--volume={bundle}:/run/callrec-build/ca.crt:ro",
            f"--volume={config}:/etc/pip.conf:ro",
        ]
    (cache / "wheels").mkdir(exist_ok=True)
    with log.open("wb") as output:
        built = subprocess.run(
            [
                "podman",
                "build",
                "--isolation=chroot",
                "--format=docker",
                f"--tag={tag}",
                f"--build-arg=BASE_IMAGE={base}",
                f"--build-arg=VERSION={project_version()}",
                *volumes,
                f"--file={CONTAINERFILE}",
                str(REPOSITORY),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    if built.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise AssertionError(f"podman build failed ({built.returncode}):\n{tail}")
    after = _image_id(tag)
    if before is not None and before != after:
        # Each build of changed code would otherwise leave its predecessor (hundreds of MB).
        _podman("rmi", before, check=False)


def build_context(base: str, scratch: Path) -> list[str]:
    """Every file podman sends to a build of this repository (what .dockerignore lets
    through), found by building an image that copies the whole context and listing it."""
    containerfile = scratch / "Containerfile.context"
    containerfile.write_text(f"FROM {base}\nCOPY . /context/\n")
    tag = "localhost/callrec-test-context:latest"
    _podman("build", "--quiet", f"--tag={tag}", f"--file={containerfile}", str(REPOSITORY))
    try:
        with mounted(tag) as root:
            context = root / "context"
            return sorted(str(path.relative_to(context)) for path in context.rglob("*"))
    finally:
        _podman("rmi", tag, check=False)


def inspect(tag: str) -> dict[str, Any]:
    """`podman image inspect` of one image."""
    document: dict[str, Any] = json.loads(_podman("image", "inspect", tag).stdout)[0]
    return document


def image_size(tag: str) -> str:
    """The size `podman image ls` gives the image, for people to read."""
    return _podman("image", "ls", "--format={{.Size}}", tag).stdout.strip()


@contextlib.contextmanager
def mounted(tag: str) -> Iterator[Path]:
    """The image's root file system, mounted read-only for as long as the context lasts."""
    path = Path(_podman("image", "mount", tag).stdout.strip())
    try:
        yield path
    finally:
        _podman("image", "unmount", tag, check=False)


def _image_id(tag: str) -> str | None:
    found = _podman("image", "inspect", "--format={{.Id}}", tag, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def _ca_bundle() -> Path | None:
    for setting in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(setting)  # noqa: TID251 - how this machine reaches PyPI
        if value and Path(value).is_file():
            return Path(value)
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    return system if system.is_file() else None


def _podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, check=check, timeout=BUILD_TIMEOUT_S
    )
