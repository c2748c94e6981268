"""The sender in docs/push.md retries what the guide says to retry, and nothing else."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from aiohttp import web

from tests.provider_fakes import serving
from tests.push_support import SECRET, make_wav, metadata

GUIDE = Path(__file__).parents[2] / "docs" / "push.md"


def scripted_receiver(
    answers: list[tuple[int, dict[str, str]]], seen: list[str]
) -> web.Application:
    """Answers each push with the next (status, headers) of ``answers``."""

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        seen.append(request.headers["X-Callrec-Timestamp"])
        status, headers = answers.pop(0)
        return web.json_response(
            {"status": "stored"} if status < 300 else {"error": "x"}, status=status, headers=headers
        )

    app = web.Application()
    app.router.add_post("/webhooks/push/pbx", receive)
    return app


async def run_sender(tmp_path: Path, base: str) -> tuple[int, str, str]:
    sender = GUIDE.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "push.py").write_text(sender)
    (tmp_path / "secret.txt").write_text(SECRET + "\n")
    (tmp_path / "call.wav").write_bytes(make_wav(1))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(tmp_path / "push.py"),
        base,
        "pbx",
        str(tmp_path / "secret.txt"),
        str(tmp_path / "call.wav"),
        json.dumps(metadata()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.mark.parametrize(
    ("answers", "attempts", "exit_code"),
    [
        # A replica stopping, a body that stalled, a proxy's 502: retried until stored.
        (
            [
                (503, {"Retry-After": "0"}),
                (408, {"Retry-After": "0"}),
                (502, {"Retry-After": "0"}),
                (201, {}),
            ],
            4,
            0,
        ),
        # Refusals that the same body would get again: not retried.
        ([(422, {})], 1, 1),
        ([(401, {})], 1, 1),
    ],
)
async def test_the_guides_sender_retries_503_and_408_but_not_a_refusal(
    tmp_path: Path, answers: list[tuple[int, dict[str, str]]], attempts: int, exit_code: int
) -> None:
    seen: list[str] = []
    async with serving(scripted_receiver(list(answers), seen)) as base:
        code, stdout, stderr = await run_sender(tmp_path, base)
    assert len(seen) == attempts, stderr
    assert code == exit_code
    assert stdout.startswith(str(answers[-1][0]))
