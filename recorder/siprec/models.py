"""The recording metadata of RFC 7865 as typed values, and the rules that keep it consistent.

Parsing lives in ``metadata.py``; this module holds what the parser produces, how a partial
update (a re-INVITE's metadata) is folded into what is already known, and the checks that a
whole picture must pass, so a snapshot and a merged update are judged by the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeVar

from recorder.siprec.errors import InconsistentMetadata


class Dialect(StrEnum):
    """Which namespace the document was written in."""

    RFC7865 = "urn:ietf:params:xml:ns:recording:1"
    # The draft-ietf-siprec-metadata namespace that BroadWorks, Acme/Oracle and older
    # SBCs still send: ``id``/``session`` attributes, ``dataMode``, send/recv in participant.
    DRAFT = "urn:ietf:params:xml:ns:recording"


@dataclass(frozen=True)
class Group:
    """A communication session group (the SRC's grouping of related calls)."""

    group_id: str


@dataclass(frozen=True)
class CommunicationSession:
    """One recorded call: its metadata id, its SIP session ids (RFC 7989) and its group."""

    session_id: str
    sip_session_ids: tuple[str, ...] = ()
    group_id: str | None = None


@dataclass(frozen=True)
class Participant:
    """A party to the call: addresses of record (``nameID aor`` / ``aor``) and display names."""

    participant_id: str
    aors: tuple[str, ...] = ()
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stream:
    """A media stream; ``label`` is the SDP ``a=label:`` value that carries it."""

    stream_id: str
    label: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class StreamAssociation:
    """Which streams a participant sends (speaks on) and receives (hears)."""

    participant_id: str
    send: tuple[str, ...] = ()
    recv: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordingMetadata:
    """What the SRC has said about the recording session, keyed by the document's ids.

    ``complete`` is False for a partial update (``datamode`` ``partial``), which may refer
    to ids sent earlier and is only checked once merged with ``merge_metadata``.
    ``extensions`` holds vendor data (elements in other namespaces) as dotted local names
    to text, e.g. ``{"agent.team": "MASH duty"}``; never interpreted here.
    """

    dialect: Dialect
    complete: bool
    groups: Mapping[str, Group] = field(default_factory=dict)
    sessions: Mapping[str, CommunicationSession] = field(default_factory=dict)
    participants: Mapping[str, Participant] = field(default_factory=dict)
    streams: Mapping[str, Stream] = field(default_factory=dict)
    associations: Mapping[str, StreamAssociation] = field(default_factory=dict)
    extensions: Mapping[str, str] = field(default_factory=dict)

    def stream_by_label(self, label: str) -> Stream | None:
        """The stream an SDP media section with ``a=label:<label>`` carries, if described."""
        return next((s for s in self.streams.values() if s.label == label), None)

    def senders_of(self, stream_id: str) -> tuple[Participant, ...]:
        """The participants whose voice is on ``stream_id``."""
        return tuple(
            self.participants[a.participant_id]
            for a in self.associations.values()
            if stream_id in a.send and a.participant_id in self.participants
        )


def check_consistency(metadata: RecordingMetadata) -> None:
    """Refuse a whole picture whose references dangle or whose streams cannot be matched.

    Raises InconsistentMetadata naming the first offending id (ids are the SRC's opaque
    tokens, not personal data).
    """
    labels: dict[str, str] = {}
    for stream in metadata.streams.values():
        if not stream.label:
            raise InconsistentMetadata(f"stream {stream.stream_id!r} has no label")
        if stream.label in labels:
            raise InconsistentMetadata(
                f"streams {labels[stream.label]!r} and {stream.stream_id!r} share label "
                f"{stream.label!r}"
            )
        labels[stream.label] = stream.stream_id
        if stream.session_id is not None and stream.session_id not in metadata.sessions:
            raise InconsistentMetadata(
                f"stream {stream.stream_id!r} refers to unknown session {stream.session_id!r}"
            )
    for session in metadata.sessions.values():
        if session.group_id is not None and session.group_id not in metadata.groups:
            raise InconsistentMetadata(
                f"session {session.session_id!r} refers to unknown group {session.group_id!r}"
            )
    for assoc in metadata.associations.values():
        if assoc.participant_id not in metadata.participants:
            raise InconsistentMetadata(
                f"stream association refers to unknown participant {assoc.participant_id!r}"
            )
        for stream_id in (*assoc.send, *assoc.recv):
            if stream_id not in metadata.streams:
                raise InconsistentMetadata(
                    f"participant {assoc.participant_id!r} is associated with unknown "
                    f"stream {stream_id!r}"
                )


def merge_metadata(current: RecordingMetadata, update: RecordingMetadata) -> RecordingMetadata:
    """Fold a re-INVITE's metadata into what is known; a complete snapshot replaces it.

    In a partial update an element restates what changed: fields it carries override,
    fields it leaves out keep their earlier value, and a participant's stream association
    is replaced as a whole (RFC 7865 section 8.1). The result is checked as a whole.
    """
    if update.complete:
        check_consistency(update)
        return update
    merged = RecordingMetadata(
        dialect=update.dialect,
        complete=True,
        groups={**current.groups, **update.groups},
        sessions=_merge_by_id(current.sessions, update.sessions),
        participants=_merge_by_id(current.participants, update.participants),
        streams=_merge_by_id(current.streams, update.streams),
        associations={**current.associations, **update.associations},
        extensions={**current.extensions, **update.extensions},
    )
    check_consistency(merged)
    return merged


_Element = TypeVar("_Element", CommunicationSession, Participant, Stream)


def _merge_by_id(
    current: Mapping[str, _Element], update: Mapping[str, _Element]
) -> dict[str, _Element]:
    merged = dict(current)
    for key, new in update.items():
        old = merged.get(key)
        merged[key] = new if old is None else _overlay(old, new)
    return merged


def _overlay(old: _Element, new: _Element) -> _Element:
    """``old`` with every field ``new`` actually carries (non-empty) taken from ``new``."""
    changes = {
        name: value
        for name, value in vars(new).items()
        if value not in (None, ()) and value != getattr(old, name)
    }
    return replace(old, **changes)


def unique(values: Iterable[str]) -> tuple[str, ...]:
    """``values`` in first-seen order without repeats."""
    return tuple(dict.fromkeys(values))
