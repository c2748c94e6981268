"""A built image's file system run the way a container runtime runs it, without a runtime.

`podman run` cannot start containers on the test machines (their cgroups are not usable),
so the image test does by hand what a runtime does with a read-only root: new mount, PID
and network namespaces; the image's root mounted read-only; the data volume bound in, a
tmpfs over its spool and on /dev/shm; then the image's entrypoint and command as its user,
in its working directory, with its environment. Needs root, `unshare` and `nsenter`.

The steps inside the namespaces are this file run as a script (``start`` and ``enter``),
so they happen in the process that then becomes the image's program.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What /dev holds in a container: the host's harmless character devices, bound in.
_DEVICES = ("null", "zero", "full", "random", "urandom")
_SIOCSIFFLAGS = 0x8914
_IFF_UP_LOOPBACK_RUNNING = 0x1 | 0x8 | 0x40


@dataclass(frozen=True)
class ImageConfig:
    """What an image tells a runtime to run, read from `podman image inspect`."""

    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    uid: int
    gid: int
    workdir: str
    healthcheck: list[str]

    @classmethod
    def from_inspect(cls, inspected: dict[str, Any]) -> ImageConfig:
        """From one image's `podman image inspect` document; the user must be numeric."""
        config = inspected["Config"]
        uid, _, gid = config["User"].partition(":")
        env = dict(item.split("=", 1) for item in config.get("Env") or [])
        health = inspected.get("Healthcheck") or {}
        return cls(
            entrypoint=list(config.get("Entrypoint") or []),
            cmd=list(config.get("Cmd") or []),
            env=env,
            uid=int(uid),
            gid=int(gid or uid),
            workdir=config.get("WorkingDir") or "/",
            healthcheck=list(health.get("Test") or []),
        )


@dataclass
class Container:
    """The image's program running in its own namespaces; ``pid`` as the host sees it."""

    launcher: subprocess.Popen[bytes]
    pid: int
    root: Path
    config: ImageConfig
    env: dict[str, str]

    def enter(self, argv: list[str], *, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside, as the image's user with the container's environment
        (what `podman exec` does)."""
        spec = _spec(self.root, self.config, self.env, argv)
        return subprocess.run(
            [
                "nsenter",
                f"--target={self.pid}",
                "--mount",
                "--net",
                "--pid",
                "--",
                sys.executable,
                __file__,
                "enter",
                json.dumps(spec),
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def in_network(
        self, argv: list[str], *, cwd: Path, timeout_s: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a host program in the container's network namespace: a client that reaches
        the service at 127.0.0.1 as the container's own loopback."""
        return subprocess.run(
            ["nsenter", f"--target={self.pid}", "--net", "--", *argv],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def listening(self) -> set[tuple[str, int]]:
        """The (address, port) pairs of the TCP sockets listening in the container."""
        found = set()
        for line in Path(f"/proc/{self.pid}/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            address, port = fields[1].split(":")
            if fields[3] == "0A":  # LISTEN
                packed = struct.pack("<I", int(address, 16))
                found.add((socket.inet_ntoa(packed), int(port, 16)))
        return found

    def processes(self) -> dict[int, tuple[int, ...]]:
        """Every process in the container (the program, its fork server and workers), each
        with its real, effective, saved and file-system uids."""
        namespace = os.readlink(f"/proc/{self.pid}/ns/pid")
        found = {}
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                if os.readlink(entry / "ns" / "pid") != namespace:
                    continue
                status = (entry / "status").read_text()
            except OSError:
                continue  # gone meanwhile
            (uids,) = [line for line in status.splitlines() if line.startswith("Uid:")]
            found[int(entry.name)] = tuple(int(field) for field in uids.split()[1:])
        return found

    def mounts(self) -> dict[str, set[str]]:
        """The container's view of its mounts: each mount point with its options."""
        found = {}
        for line in Path(f"/proc/{self.pid}/mountinfo").read_text().splitlines():
            fields = line.split()
            found[fields[4]] = set(fields[5].split(","))
        return found

    def stop(self, *, timeout_s: float = 30) -> int:
        """SIGTERM to the program (as a runtime's stop sends it); its exit status."""
        os.kill(self.pid, signal.SIGTERM)
        return self.launcher.wait(timeout=timeout_s)

    def kill(self) -> None:
        """End everything that was started, if it is still running."""
        if self.launcher.poll() is None:
            # The first process of its PID namespace: when it dies, every process in the
            # namespace does. (unshare's --kill-child does not reach it: changing user
            # cleared the parent-death signal it had set.)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.launcher.wait(timeout=30)


def start(
    image_root: Path,
    mount_point: Path,
    config: ImageConfig,
    *,
    volume: str,
    data: Path,
    tmpfs: str,
    env: dict[str, str],
    log: Path,
) -> Container:
    """Start the image's entrypoint and command with ``data`` as its ``volume`` and a tmpfs
    at ``tmpfs``; the image's root is mounted read-only at ``mount_point``."""
    spec = _spec(mount_point, config, env, [*config.entrypoint, *config.cmd])
    spec |= {"image_root": str(image_root), "volume": volume, "data": str(data), "tmpfs": tmpfs}
    with log.open("wb") as output:
        launcher = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation=private",
                "--pid",
                "--net",
                "--fork",
                "--kill-child",
                "--",
                sys.executable,
                __file__,
                "start",
                json.dumps(spec),
            ],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        pid = _child_of(launcher)
    except BaseException:
        launcher.kill()
        launcher.wait()
        raise
    return Container(launcher, pid, mount_point, config, env)


def _spec(root: Path, config: ImageConfig, env: dict[str, str], argv: list[str]) -> dict[str, Any]:
    return {
        "root": str(root),
        "uid": config.uid,
        "gid": config.gid,
        "workdir": config.workdir,
        "env": config.env | env,
        "argv": argv,
    }


def _child_of(launcher: subprocess.Popen[bytes]) -> int:
    """The pid of unshare's one child, the process that becomes the image's program."""
    for _ in range(100):
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == launcher.pid:
                return int(stat.parent.name)
        if launcher.poll() is not None:
            raise AssertionError(f"unshare exited with {launcher.returncode}")
        time.sleep(0.05)
    raise AssertionError("unshare started no child")


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _prepare_root(spec: dict[str, Any]) -> None:
    """Inside the new namespaces, as root: the container's file system at ``root``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH", b"lo", _IFF_UP_LOOPBACK_RUNNING))
    root = Path(spec["root"])
    _mount("--bind", spec["image_root"], str(root))
    _mount("-o", "remount,bind,ro", str(root))
    volume = root / spec["volume"].lstrip("/")
    _mount("--bind", spec["data"], str(volume))
    tmpfs = root / spec["tmpfs"].lstrip("/")
    # A runtime makes a missing mount point, owned as the volume is; the tmpfs hides it.
    tmpfs.mkdir(exist_ok=True)
    os.chown(tmpfs, spec["uid"], spec["gid"])
    owner = f"uid={spec['uid']},gid={spec['gid']}"
    _mount("-t", "tmpfs", "-o", f"mode=0700,{owner},size=64m", "spool", str(tmpfs))
    _mount("-t", "proc", "proc", str(root / "proc"))
    dev = root / "dev"
    _mount("-t", "tmpfs", "-o", "mode=0755,size=1m", "dev", str(dev))
    for name in _DEVICES:
        (dev / name).touch()
        _mount("--bind", f"/dev/{name}", str(dev / name))
    (dev / "shm").mkdir()
    _mount("-t", "tmpfs", "-o", "mode=1777,size=64m", "shm", str(dev / "shm"))
    (dev / "fd").symlink_to("/proc/self/fd")
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        (dev / name).symlink_to(f"/proc/self/fd/{number}")


def _become(spec: dict[str, Any]) -> None:
    """Into the container's root and working directory, as its user with no privilege."""
    os.chroot(spec["root"])
    os.chdir(spec["workdir"])
    os.setgroups([])
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])  # noqa: S606 - as a runtime does


if __name__ == "__main__":
    step, document = sys.argv[1], json.loads(sys.argv[2])
    if step == "start":
        _prepare_root(document)
    _become(document)
