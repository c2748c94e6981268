"""The provider fetcher against a fake Twilio: credentials to the origin only, redirects
only where allowed, no private addresses, and each fault sorted into retry or give up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from recorder.fetcher import (
    AddressRefused,
    FetchFailed,
    FetchRefused,
    GuardedResolver,
    ProviderOrigin,
    SafeFetcher,
)
from tests.provider_fakes import BASIC, FakeStorage, FakeTwilio, serving

AUDIO = b"RIFF" + bytes(range(256)) * 40


@dataclass
class Rig:
    twilio: FakeTwilio
    storage: FakeStorage
    fetcher: SafeFetcher

    async def fetch(self, url: str) -> bytes:
        received: list[bytes] = []

        async def collect(chunk: bytes) -> None:
            received.append(chunk)

        await self.fetcher.fetch("twilio", url, collect)
        return b"".join(received)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    twilio, storage = FakeTwilio(), FakeStorage(body=AUDIO)
    twilio.recordings["RE1"] = AUDIO
    async with serving(twilio.app()) as twilio.url, serving(storage.app()) as storage.url:
        fetcher = SafeFetcher(
            {
                "twilio": ProviderOrigin(
                    twilio.url, authorization=BASIC, redirect_hosts=(storage.url,)
                )
            },
            max_bytes=1024 * 1024,
            read_timeout=timedelta(seconds=0.5),
        )
        try:
            yield Rig(twilio, storage, fetcher)
        finally:
            await fetcher.close()


async def test_a_recording_is_fetched_with_basic_auth_from_its_origin(rig: Rig) -> None:
    assert await rig.fetch(rig.twilio.recording_url("RE1") + ".wav") == AUDIO
    (seen,) = rig.twilio.seen
    assert seen.authorization == BASIC


async def test_a_redirect_to_the_providers_storage_is_followed_without_credentials(
    rig: Rig,
) -> None:
    rig.twilio.scripts["RE1"] = [f"redirect:{rig.storage.url}/signed/RE1?sig=abc"]
    assert await rig.fetch(rig.twilio.recording_url("RE1") + ".wav") == AUDIO
    (seen,) = rig.storage.seen
    assert seen.authorization is None


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:9/elsewhere",  # another origin on the same host
        "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
        "http://[::1]:8080/",
        "file:///etc/passwd",
    ],
)
async def test_a_redirect_off_origin_is_refused_and_nothing_is_fetched_there(
    rig: Rig, target: str
) -> None:
    rig.twilio.scripts["RE1"] = [f"redirect:{target}"]
    with pytest.raises(FetchRefused):
        await rig.fetch(rig.twilio.recording_url("RE1") + ".wav")
    assert rig.storage.seen == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.5/2010-04-01/Accounts/AC1/Recordings/RE1.wav",
        "http://localhost/2010-04-01/Accounts/AC1/Recordings/RE1.wav",
        "https://api.twilio.com.evil.example/2010-04-01/Accounts/AC1/Recordings/RE1.wav",
        "gopher://127.0.0.1:70/",
    ],
)
async def test_a_recording_url_off_the_configured_origin_is_never_requested(
    rig: Rig, url: str
) -> None:
    assert not rig.fetcher.allowed("twilio", url)
    with pytest.raises(FetchRefused):
        await rig.fetch(url)
    assert rig.twilio.seen == []


async def test_credentials_never_follow_a_redirect_back_through_another_origin(
    rig: Rig,
) -> None:
    # Twilio -> storage (allowed) -> storage again: no request but the first carries them.
    rig.twilio.scripts["RE1"] = [f"redirect:{rig.storage.url}/hop"]
    await rig.fetch(rig.twilio.recording_url("RE1") + ".wav")
    assert [seen.authorization for seen in rig.twilio.seen] == [BASIC]
    assert all(seen.authorization is None for seen in rig.storage.seen)


async def test_names_that_resolve_to_private_addresses_are_refused() -> None:
    resolver = GuardedResolver(trusted={("localhost", 8080)})
    try:
        with pytest.raises(AddressRefused):
            await resolver.resolve("localhost", 443)
        # The exact configured origin may be private (a fake, a proxy on the network).
        assert await resolver.resolve("localhost", 8080)
    finally:
        await resolver.close()


@pytest.mark.parametrize(
    ("script", "retry_after"),
    [(["500"], None), (["404"], None), (["429:7"], timedelta(seconds=7)), (["stall"], None)],
    ids=["5xx", "404-just-after-completed", "429-retry-after", "stall"],
)
async def test_passing_failures_are_retried(
    rig: Rig, script: list[str], retry_after: timedelta | None
) -> None:
    rig.twilio.scripts["RE1"] = script
    with pytest.raises(FetchFailed) as failure:
        await rig.fetch(rig.twilio.recording_url("RE1") + ".wav")
    assert failure.value.retry_after == retry_after
    assert await rig.fetch(rig.twilio.recording_url("RE1") + ".wav") == AUDIO


@pytest.mark.parametrize(
    ("script", "reason"),
    [(["403"], "403"), (["html"], "not audio"), (["huge"], "over 1048576 bytes")],
)
async def test_lasting_failures_are_refused(rig: Rig, script: list[str], reason: str) -> None:
    rig.twilio.scripts["RE1"] = script
    with pytest.raises(FetchRefused, match=reason):
        await rig.fetch(rig.twilio.recording_url("RE1") + ".wav")


async def test_wrong_credentials_are_refused_not_retried(rig: Rig) -> None:
    fetcher = SafeFetcher(
        {"twilio": ProviderOrigin(rig.twilio.url, authorization="Basic d3Jvbmc6d3Jvbmc=")},
        max_bytes=1024 * 1024,
    )
    try:
        with pytest.raises(FetchRefused, match="401") as refused:
            await fetcher.fetch("twilio", rig.twilio.recording_url("RE1") + ".wav", _ignore)
        assert "d3Jvbmc" not in str(refused.value)
    finally:
        await fetcher.close()


async def _ignore(_chunk: bytes) -> None:
    return None
