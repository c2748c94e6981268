"""Property: whatever the recording's size and the range asked, the bytes served are exactly
that slice of the original (hypothesis over sizes and ranges, through the real HTTP path)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import create_engine, upgrade_database
from tests.push_support import make_wav, metadata, push_body, push_headers
from tests.service_support import running_service

# (first, last) pairs as fractions of the size, turned into every Range form there is.
RANGE_FORMS = st.sampled_from(["closed", "open", "suffix"])


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    frames=st.integers(min_value=1, max_value=220_000),
    picks=st.lists(
        st.tuples(st.floats(0, 1), st.floats(0, 1), RANGE_FORMS), min_size=1, max_size=6
    ),
)
def test_any_range_of_any_recording_is_served_exactly(
    frames: int, picks: list[tuple[float, float, str]]
) -> None:
    audio = make_wav(frames / 8000)
    asyncio.run(_check(audio, picks))


async def _check(audio: bytes, picks: list[tuple[float, float, str]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        url = f"sqlite+aiosqlite:///{root / 'callrec.db'}"
        engine = create_engine(url)
        await upgrade_database(engine)
        await engine.dispose()
        async with running_service(root / "var", url) as service:
            body = push_body(metadata(recording_id="prop"), audio)
            pushed = await service.client.post(
                "/webhooks/push/pbx", data=body, headers=push_headers(body)
            )
            assert pushed.status == 201, await pushed.text()
            rid = (await pushed.json())["id"]
            token = service.token("dpo", subject="prop")
            auth = {"Authorization": f"Bearer {token}"}
            granted = await service.client.post(
                f"/api/v1/recordings/{rid}/grants",
                json={"purpose": "subject_access", "reason": "property check of ranges"},
                headers=auth,
            )
            # The original: byte for byte what was pushed, so its size is the one drawn here.
            path = "/" + (await granted.json())["audio_url"].split("/", 3)[3] + "?variant=original"
            size = len(audio)
            for low, high, form in picks:
                first = min(int(low * size), size - 1)
                last = max(first, min(int(high * size), size - 1))
                if form == "closed":
                    header, expected = f"bytes={first}-{last}", audio[first : last + 1]
                elif form == "open":
                    header, expected = f"bytes={first}-", audio[first:]
                else:
                    count = last - first + 1
                    header, expected = f"bytes=-{count}", audio[-count:]
                response = await service.client.get(path, headers=auth | {"Range": header})
                assert response.status == 206, header
                assert await response.read() == expected, header
