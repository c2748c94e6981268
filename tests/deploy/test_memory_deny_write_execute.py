"""The systemd unit sets MemoryDenyWriteExecute=yes: no memory both writable and
executable, nor made executable later. A library that generates code at run time would
crash under it, at its first capture rather than at start-up; so a real `callrec serve`
runs here under the kernel's own form of the rule (PR_SET_MDWE, inherited by its worker
processes), takes a push, checks it and makes its rendition.

What systemd 252 installs is a seccomp filter with the same effect on mmap and mprotect;
the kernel's flag is what an unprivileged test can set on itself.
"""

from __future__ import annotations

import asyncio
import ctypes
import platform
import re
import sys
from pathlib import Path

import aiohttp

from tests.cli_support import clean_environment
from tests.fixtures_db import skip_or_fail
from tests.push_support import SECRET, make_wav, metadata, push_body, push_headers
from tests.service_support import free_port

PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
# Sets the flag on this process, then runs `callrec` in it: the flag cannot be unset, so
# it is set here and not in the test's own process.
_UNDER_MDWE = (
    "import ctypes, runpy, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    f"if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:\n"
    "    sys.exit('PR_SET_MDWE refused')\n"
    "sys.argv = ['callrec', *sys.argv[1:]]\n"
    "runpy.run_module('config', run_name='__main__')\n"
)
_DONE = re.compile(r'^callrec_rendition_jobs\{state="done"\} (\S+)$', re.MULTILINE)


def kernel_has_mdwe() -> bool:
    """PR_GET_MDWE answers (Linux 6.3 and later) rather than EINVAL."""
    if platform.system() != "Linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(PR_GET_MDWE, 0, 0, 0, 0)) >= 0


async def test_capture_and_rendition_work_without_writable_executable_memory(
    tmp_path: Path,
) -> None:
    if not kernel_has_mdwe():
        skip_or_fail(f"this kernel has no PR_SET_MDWE ({platform.release()})")
    port = free_port()
    log = tmp_path / "serve.log"
    environment = clean_environment(
        CALLREC_DATA_DIR=str(tmp_path / "data"),
        CALLREC_PUSH_SECRETS=f"pbx={SECRET}",
        CALLREC_MEDIA_WORKERS="1",
    )
    with log.open("wb") as stderr:
        served = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _UNDER_MDWE,
            "serve",
            "--port",
            str(port),
            env=environment,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as client:
            await until_ready(client, base, served, log)
            body = push_body(metadata(recording_id="mdwe-1"), make_wav(5.0))
            async with client.post(
                f"{base}/webhooks/push/pbx", data=body, headers=push_headers(body)
            ) as answer:
                assert answer.status == 201, await answer.text()
            for _ in range(600):
                async with client.get(f"{base}/metrics") as answer:
                    done = _DONE.search(await answer.text())
                if done is not None and float(done.group(1)) >= 1:
                    break
                await asyncio.sleep(0.2)
            else:
                written = await asyncio.to_thread(log.read_text)
                raise AssertionError(f"no rendition made: {written[-2000:]}")
    finally:
        served.terminate()
        await asyncio.wait_for(served.wait(), 60)
    assert served.returncode == 0, (await asyncio.to_thread(log.read_text))[-2000:]


async def until_ready(
    client: aiohttp.ClientSession, base: str, served: asyncio.subprocess.Process, log: Path
) -> None:
    for _ in range(300):
        if served.returncode is not None:
            break
        try:
            async with client.get(f"{base}/readyz") as answer:
                if answer.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    written = await asyncio.to_thread(log.read_text)
    raise AssertionError(f"serve did not become ready: {written[-2000:]}")
