"""Hearing a recording through a grant: every decision playback makes, without HTTP.

A grant is honoured only for the person it was issued to, for the recording it names,
while their role still allows its purpose and they may still see the recording's team:
a grant narrows what the person may do now, never widens it, so a change of role or
team takes effect on the next request, not when the grant expires. The recording must
still be playable (not deleted, not past its deadline unless held) on every request.
Audit before serve: a download is audited range by range, a listening session's first
range is audited and the rest journalled in summary, all before the first byte of that
range leaves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from retrieval.access import RecordingAccess
from retrieval.auth import Principal
from retrieval.browsers import playback_serves, retry_after_s
from retrieval.errors import Forbidden, IntegrityProblem, NotFound, NotReadyYet
from retrieval.grants import Grant, GrantSigner, InvalidGrant
from retrieval.journal import PlaybackJournal
from retrieval.policy import may_download_original, may_see, purposes_for
from storage import (
    ORIGINAL,
    PLAYBACK,
    AuditRecord,
    IntegrityFailure,
    KeyringError,
    OpenAudio,
    RecordingView,
)


class AudioOpener(Protocol):
    """What playback needs from storage: a recording's state, and its verified audio.

    Storage keeps both for the ranges a player asks for in a row (the one cache, so each
    range costs one ranged read); whether the recording may still be played is decided
    here, on every request, before every open.
    """

    async def recording(self, recording_id: uuid.UUID) -> RecordingView | None: ...

    async def open(self, recording_id: uuid.UUID, kind: str) -> OpenAudio | None: ...


@dataclass(frozen=True, slots=True)
class Hearing:
    """One request's right to hear a recording, and the audio it may hear."""

    grant: Grant
    recording: RecordingView
    audio: OpenAudio
    download: bool
    """The original, as a file to keep, rather than the playback rendition."""


class Listening:
    """Opens a grant's recording for its holder, and puts each range on the record."""

    def __init__(
        self,
        *,
        access: RecordingAccess,
        audio: AudioOpener,
        signer: GrantSigner,
        journal: PlaybackJournal,
    ) -> None:
        self._access = access
        self._audio = audio
        self._signer = signer
        self._journal = journal

    async def open(self, principal: Principal, token: str, *, download: bool) -> Hearing:
        """The audio ``token`` grants ``principal``; refusals raised and audited.

        InvalidGrant (forged, expired, someone else's, a purpose the role lost, a team the
        person left), Forbidden for a download by a role that may only listen, NotFound,
        Gone once deleted or past its deadline, NotReadyYet while a rendition is being
        prepared for an original no browser plays, IntegrityProblem when the stored audio
        fails its checks.
        """
        grant = await self._valid_grant(principal, token)
        if download and not may_download_original(principal):
            await self._access.deny(principal, "recording.download", grant.recording_id, "role")
            raise Forbidden("this role may play recordings but not download the original")
        view = await self._playable(principal, grant.recording_id)
        if not download and playback_serves(view) is None:
            wait = retry_after_s(view)
            raise NotReadyYet(
                f"the playback copy is being prepared; ready in about {wait} s",
                retry_after_s=wait,
            )
        try:
            audio = await self._audio.open(view.id, ORIGINAL if download else PLAYBACK)
        except (IntegrityFailure, KeyringError):
            await self._record_failure(grant, {"grant": str(grant.grant_id)})
            raise IntegrityProblem("the stored recording failed its integrity checks") from None
        if audio is None:
            raise NotFound("no such recording")
        return Hearing(grant=grant, recording=view, audio=audio, download=download)

    async def broken_off(self, hearing: Hearing, start: int, end: int, sent: int) -> None:
        """Record that serving bytes [start, end) stopped after ``sent`` of them: the
        stored audio failed a check once its answer had begun, so the connection is
        dropped rather than finished (what was sent had verified; the rest never will)."""
        details = {"grant": str(hearing.grant.grant_id), "start": start, "end": end, "sent": sent}
        await self._record_failure(hearing.grant, details)

    async def _record_failure(self, grant: Grant, details: dict[str, object]) -> None:
        await self._access.audit.record(
            AuditRecord(
                actor=grant.actor,
                action="recording.integrity_failure",
                outcome="error",
                recording_id=grant.recording_id,
                details=details,
            )
        )

    async def hear(self, hearing: Hearing, start: int, end: int) -> None:
        """Record that bytes [start, end) are about to be served; raises if it cannot be.

        Downloads are rare and each is its own act: audited one by one. A listening
        session's first range is audited before its first byte; the ranges that follow
        are journalled and written in summary as it goes.
        """
        grant, view = hearing.grant, hearing.recording
        if hearing.download:
            await self._access.audit.record(
                AuditRecord(
                    actor=grant.actor,
                    action="recording.download",
                    recording_id=view.id,
                    purpose=grant.purpose,
                    details={"grant": str(grant.grant_id), "start": start, "end": end},
                )
            )
            return
        await self._journal.start(
            grant.grant_id, actor=grant.actor, recording_id=view.id, purpose=grant.purpose
        )
        seconds = _seconds(start, end, hearing.audio.info.size, view.duration_s)
        await self._journal.played(grant.grant_id, start, end, seconds)

    async def _valid_grant(self, principal: Principal, token: str) -> Grant:
        try:
            grant = self._signer.open(token, now=self._access.clock())
        except InvalidGrant as exc:
            await self._access.deny(principal, "recording.play", None, "invalid_grant", exc.detail)
            raise
        if grant.actor != principal.actor:
            await self._access.deny(
                principal, "recording.play", grant.recording_id, "another_person"
            )
            raise InvalidGrant("the grant belongs to someone else")
        if grant.purpose not in purposes_for(principal):
            await self._access.deny(principal, "recording.play", grant.recording_id, "purpose")
            raise InvalidGrant("this role may no longer use the grant's purpose")
        return grant

    async def _playable(self, principal: Principal, recording_id: uuid.UUID) -> RecordingView:
        """The recording, if this person may still see it and it may still be played."""
        view = await self._audio.recording(recording_id)
        if view is None:
            raise NotFound("no such recording")
        if not may_see(principal, view.team):
            # 403 like any grant that no longer holds, not 404: the holder was shown the
            # recording when the grant was issued, so there is nothing left to hide.
            await self._access.deny(principal, "recording.play", recording_id, "team")
            raise InvalidGrant("the grant's holder may no longer see this recording's team")
        await self._access.refuse_if_gone(view)
        return view


def _seconds(
    start: int, end: int, size: int, duration_s: float | None
) -> tuple[float, float] | None:
    # Which seconds were heard, so an auditor need not do byte arithmetic; exact for
    # constant-rate audio (WAV), close for the rest.
    if not duration_s or not size:
        return None
    return (round(start / size * duration_s, 2), round(end / size * duration_s, 2))
