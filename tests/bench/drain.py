"""How long `callrec serve` takes from SIGTERM to exit, with the default grace period.

``python -m tests.bench.drain``: one real process per case, on the embedded default, and
a Markdown table of what each sender was told and how long the process took to go.
Timings are printed, never asserted (the tests assert the bound, with a short grace).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.audio_factory import BY_NAME, make_audio
from tests.push_support import make_wav
from tests.serve_support import Answer, Served, SlowPush, start_serve

GRACE_S = 25.0
"""CALLREC_SHUTDOWN_GRACE's default."""


async def idle(_served: Served) -> tuple[str, Callable[[], Awaitable[Answer]] | None]:
    return "nothing in flight", None


async def upload_that_finishes(served: Served) -> tuple[str, Callable[[], Awaitable[Answer]]]:
    push = SlowPush(served.port, "finishes", pieces=10, pause_s=0.3)  # 3 s of body
    return "a push whose body takes 3 s more to arrive", await _started(push)


async def upload_that_cannot_finish(
    served: Served,
) -> tuple[str, Callable[[], Awaitable[Answer]]]:
    # A minute of body at about 53 KB/s: slow to finish, but above the minimum pace.
    push = SlowPush(served.port, "endless", pieces=60, pause_s=1.0, audio=make_wav(200))
    return "a push whose body would take a minute more", await _started(push)


async def long_capture_storing(served: Served) -> tuple[str, Callable[[], Awaitable[Answer]]]:
    audio = make_audio(BY_NAME["pcm-wav"], 20 * 60.0)
    push = SlowPush(served.port, "long", pieces=1, pause_s=0.0, audio=audio)
    return "a 20-minute recording received, its rendition under way", await _started(push)


async def _started(push: SlowPush) -> Callable[[], Awaitable[Answer]]:
    upload = asyncio.create_task(push.send())
    await push.headers_sent.wait()
    await asyncio.sleep(0.5)  # the handler has the request

    async def answer() -> Answer:
        return await upload

    return answer


CASES = (idle, upload_that_finishes, upload_that_cannot_finish, long_capture_storing)


async def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for number, case in enumerate(CASES):
            root = Path(folder) / str(number)
            root.mkdir()
            served = await start_serve(root / "var", root / "serve.log", grace_s=GRACE_S)
            what, answer = await case(served)
            seconds = await served.terminate_and_time()
            told = "-"
            if answer is not None:
                got = await answer()
                told = f"{got.status} {got.headers.get('retry-after', '') and 'Retry-After'}"
            rows.append((what, told.strip(), seconds, served.process.returncode))
    print(f"CALLREC_SHUTDOWN_GRACE=PT{GRACE_S:g}S")
    print("| in flight at SIGTERM | the sender was told | SIGTERM to exit | exit code |")
    print("| --- | --- | --- | --- |")
    for what, told, seconds, code in rows:
        print(f"| {what} | {told} | {seconds:.2f} s | {code} |")


if __name__ == "__main__":
    asyncio.run(main())
