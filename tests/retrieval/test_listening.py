"""Listening through a grant, without HTTP: who may hear what, and what goes on the record."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from retrieval.access import RecordingAccess
from retrieval.auth import Principal
from retrieval.errors import Forbidden, Gone, NotFound
from retrieval.grants import Grant, GrantSigner, InvalidGrant
from retrieval.journal import PlaybackJournal
from retrieval.listening import Listening
from storage import ORIGINAL, PLAYBACK, AudioInfo, AuditRecord, OpenAudio, RecordingView

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
SIZE = 48_000


def principal(subject: str, role: str = "supervisor") -> Principal:
    return Principal("https://idp.example", subject, frozenset({role}), frozenset({"mash"}))


def recording(**changes: Any) -> RecordingView:
    view = RecordingView(
        id=uuid.uuid4(),
        source="pbx",
        source_recording_id="call-1",
        state="stored",
        started_at=NOW - timedelta(days=1),
        ended_at=None,
        direction=None,
        from_number=None,
        to_number=None,
        agent=None,
        team="mash",
        referrals=(),
        container="wav",
        codec="pcm_s16le",
        sample_rate=8000,
        channels=1,
        duration_s=3.0,
        declared_duration_s=None,
        audio_problems=(),
        retention_deadline=NOW + timedelta(days=89),
        deleted_at=None,
    )
    return replace(view, **changes)


@dataclass
class Store:
    """Recordings, the trail and the audio, as storage would hold them."""

    views: dict[uuid.UUID, RecordingView] = field(default_factory=dict)
    trail: list[AuditRecord] = field(default_factory=list)
    opened: list[tuple[uuid.UUID, str]] = field(default_factory=list)

    async def get(self, recording_id: uuid.UUID) -> RecordingView | None:
        return self.views.get(recording_id)

    async def recording(self, recording_id: uuid.UUID) -> RecordingView | None:
        return self.views.get(recording_id)

    async def search(self, query: object) -> list[RecordingView]:
        raise AssertionError("listening never searches")

    async def record(self, record: AuditRecord) -> None:
        self.trail.append(record)

    async def open(self, recording_id: uuid.UUID, kind: str) -> OpenAudio | None:
        self.opened.append((recording_id, kind))
        info = AudioInfo(recording_id, uuid.uuid4(), "audio/wav", SIZE, '"etag"')
        return cast(OpenAudio, type("Audio", (), {"info": info})())

    def actions(self) -> list[tuple[str, str, str | None]]:
        return [
            (entry.action, entry.outcome, (entry.details or {}).get("reason"))
            for entry in self.trail
        ]


@dataclass
class Hub:
    store: Store
    signer: GrantSigner
    listening: Listening
    view: RecordingView

    def grant(self, holder: Principal, purpose: str = "quality_review", **changes: Any) -> str:
        grant = Grant(
            uuid.uuid4(), self.view.id, holder.actor, purpose, NOW + timedelta(minutes=15)
        )
        return self.signer.issue(replace(grant, **changes))


@pytest.fixture
def hub() -> Hub:
    store = Store()
    view = recording()
    store.views[view.id] = view
    signer = GrantSigner(bytes(range(32)))
    listening = Listening(
        access=RecordingAccess(store, store, lambda: NOW),
        audio=store,
        signer=signer,
        journal=PlaybackJournal(store),
    )
    return Hub(store, signer, listening, view)


async def test_a_valid_grant_plays_its_recording_and_the_first_range_is_on_the_record(
    hub: Hub,
) -> None:
    alice = principal("alice")
    hearing = await hub.listening.open(alice, hub.grant(alice), download=False)
    assert hearing.recording.id == hub.view.id
    assert hub.store.opened == [(hub.view.id, PLAYBACK)]
    assert hub.store.trail == []  # nothing is served by opening
    await hub.listening.hear(hearing, 0, SIZE // 2)
    assert hub.store.actions() == [("recording.play_open", "allow", None)]


async def test_a_download_opens_the_original_and_each_range_is_audited(hub: Hub) -> None:
    reviewer = principal("rita", "safety_reviewer")
    grant = hub.grant(reviewer, "staff_safety")
    hearing = await hub.listening.open(reviewer, grant, download=True)
    await hub.listening.hear(hearing, 0, 10)
    await hub.listening.hear(hearing, 10, 20)
    assert hub.store.opened == [(hub.view.id, ORIGINAL)]
    assert [entry.action for entry in hub.store.trail] == ["recording.download"] * 2


async def test_a_role_that_only_listens_may_not_download(hub: Hub) -> None:
    alice = principal("alice")
    with pytest.raises(Forbidden):
        await hub.listening.open(alice, hub.grant(alice), download=True)
    assert hub.store.actions() == [("recording.download", "deny", "role")]
    assert hub.store.opened == []


async def test_another_persons_grant_is_refused(hub: Hub) -> None:
    with pytest.raises(InvalidGrant):
        await hub.listening.open(principal("bob"), hub.grant(principal("alice")), download=False)
    assert hub.store.actions() == [("recording.play", "deny", "another_person")]
    assert hub.store.opened == []


async def test_a_grant_altered_to_name_another_recording_is_refused(hub: Hub) -> None:
    alice = principal("alice")
    other = recording()
    hub.store.views[other.id] = other
    payload, _, signature = hub.grant(alice).partition(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    fields[1] = str(other.id)
    altered = base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidGrant):
        await hub.listening.open(alice, f"{altered}.{signature}", download=False)
    assert hub.store.actions() == [("recording.play", "deny", "invalid_grant")]
    assert hub.store.opened == []


async def test_an_expired_grant_is_refused(hub: Hub) -> None:
    alice = principal("alice")
    with pytest.raises(InvalidGrant, match="expired"):
        await hub.listening.open(alice, hub.grant(alice, expires_at=NOW), download=False)
    assert hub.store.actions() == [("recording.play", "deny", "invalid_grant")]


async def test_a_purpose_the_role_no_longer_has_is_refused(hub: Hub) -> None:
    alice = principal("alice")
    with pytest.raises(InvalidGrant):
        await hub.listening.open(alice, hub.grant(alice, purpose="staff_safety"), download=False)
    assert hub.store.actions() == [("recording.play", "deny", "purpose")]


async def test_a_grant_stops_playing_once_its_holder_leaves_the_recordings_team(hub: Hub) -> None:
    issued_to = principal("alice")  # in team mash when the grant was issued
    grant = hub.grant(issued_to)
    moved = replace(issued_to, teams=frozenset({"adults"}))
    with pytest.raises(InvalidGrant, match="team"):
        await hub.listening.open(moved, grant, download=False)
    assert hub.store.actions() == [("recording.play", "deny", "team")]
    assert hub.store.opened == []


async def test_a_team_left_is_refused_before_anything_is_said_of_the_recordings_state(
    hub: Hub,
) -> None:
    # Whether it was deleted is not the former team member's business any more.
    alice = principal("alice")
    grant = hub.grant(alice)
    hub.store.views[hub.view.id] = replace(hub.view, state="deleted", deleted_at=NOW)
    with pytest.raises(InvalidGrant):
        await hub.listening.open(replace(alice, teams=frozenset()), grant, download=False)


async def test_a_deleted_recording_is_refused(hub: Hub) -> None:
    alice = principal("alice")
    hub.store.views[hub.view.id] = replace(hub.view, state="deleted", deleted_at=NOW)
    with pytest.raises(Gone):
        await hub.listening.open(alice, hub.grant(alice), download=False)
    assert hub.store.opened == []


async def test_an_erasure_begun_after_an_open_refuses_the_next(hub: Hub) -> None:
    alice = principal("alice")
    grant = hub.grant(alice)
    await hub.listening.open(alice, grant, download=False)
    hub.store.views[hub.view.id] = replace(hub.view, state="deleting")
    with pytest.raises(Gone):
        await hub.listening.open(alice, grant, download=False)
    assert hub.store.opened == [(hub.view.id, PLAYBACK)]


async def test_a_recording_past_its_deadline_without_a_hold_is_refused(hub: Hub) -> None:
    alice = principal("alice")
    hub.store.views[hub.view.id] = replace(hub.view, retention_deadline=NOW)
    with pytest.raises(Gone):
        await hub.listening.open(alice, hub.grant(alice), download=False)


async def test_a_grant_for_a_recording_that_is_not_there_is_not_found(hub: Hub) -> None:
    alice = principal("alice")
    with pytest.raises(NotFound):
        await hub.listening.open(alice, hub.grant(alice, recording_id=uuid.uuid4()), download=False)
