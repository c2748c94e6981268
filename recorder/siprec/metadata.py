"""Parsing of ``application/rs-metadata+xml`` (RFC 7865) and its draft dialect, safely.

The document comes from the network before anything about the caller is trusted, so it is
parsed by defusedxml with DTDs forbidden outright (no entity expansion, no external
entities), under byte, element, depth and value-length caps. It is read, not validated
against the XSD: SRCs in the field send the draft namespace and element names
(``dataMode``, ``id``, ``send`` inside ``participant``), and those are accepted alongside
RFC 7865's. What cannot be matched to SDP streams or participants is refused.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TypeVar
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from recorder.siprec.errors import InconsistentMetadata, MalformedMetadata, MessageTooLarge
from recorder.siprec.models import (
    CommunicationSession,
    Dialect,
    Group,
    Participant,
    RecordingMetadata,
    Stream,
    StreamAssociation,
    check_consistency,
    unique,
)

# RFC 7865's own examples are 2-3 KiB and Ribbon caps its vendor section at 2 KiB; a
# conference with many participants still fits well within these.
MAX_METADATA_BYTES = 64 * 1024
MAX_ELEMENTS = 2000
MAX_DEPTH = 16
MAX_VALUE_CHARS = 1024
MAX_EXTENSIONS = 128

# Element names of both dialects, lower-cased: the draft wrote ``dataMode`` and ``nameID``
# where RFC 7865 writes ``datamode`` and ``nameID``, and vendors vary the case.
_DATAMODE = "datamode"

_V = TypeVar("_V")


def parse_metadata(document: bytes) -> RecordingMetadata:
    """Read one metadata document; a complete one must also be consistent on its own.

    Raises MessageTooLarge, MalformedMetadata or InconsistentMetadata.
    """
    if len(document) > MAX_METADATA_BYTES:
        raise MessageTooLarge(f"metadata is over {MAX_METADATA_BYTES} bytes")
    root = _parse_xml(document)
    dialect = _dialect_of(root)
    _check_shape(root)
    reader = _Reader(dialect)
    reader.read(root)
    metadata = reader.result()
    if metadata.complete:
        check_consistency(metadata)
    return metadata


def _parse_xml(document: bytes) -> Element:
    try:
        return SafeET.fromstring(
            document, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        # Named by class only: the message would echo attacker-chosen entity names.
        raise MalformedMetadata(
            f"metadata holds a forbidden construct ({type(exc).__name__})"
        ) from None
    except ParseError as exc:
        line, column = exc.position
        raise MalformedMetadata(
            f"metadata is not well-formed XML (line {line}, column {column})"
        ) from None


def _dialect_of(root: Element) -> Dialect:
    namespace, name = _split(root.tag)
    if name != "recording":
        raise MalformedMetadata(f"the root element is {name!r}, not 'recording'")
    try:
        return Dialect(namespace)
    except ValueError:
        raise MalformedMetadata(
            "the root element is not in a recording namespace (RFC 7865 or its draft)"
        ) from None


def _check_shape(root: Element) -> None:
    """Refuse documents too big to walk before walking them (iteratively: no recursion)."""
    count = 0
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        count += 1
        if count > MAX_ELEMENTS:
            raise MessageTooLarge(f"metadata has more than {MAX_ELEMENTS} elements")
        if depth > MAX_DEPTH:
            raise MessageTooLarge(f"metadata nests deeper than {MAX_DEPTH} elements")
        stack.extend((child, depth + 1) for child in element)


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return "", tag


def _text(element: Element, what: str) -> str:
    value = (element.text or "").strip()
    if len(value) > MAX_VALUE_CHARS:
        raise MessageTooLarge(f"{what} is over {MAX_VALUE_CHARS} characters")
    return value


class _Reader:
    """Collects one document's elements by id, refusing ids that repeat."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.complete = True
        self.groups: dict[str, Group] = {}
        self.sessions: dict[str, CommunicationSession] = {}
        self.participants: dict[str, Participant] = {}
        self.streams: dict[str, Stream] = {}
        self.send: defaultdict[str, list[str]] = defaultdict(list)
        self.recv: defaultdict[str, list[str]] = defaultdict(list)
        self.extensions: dict[str, str] = {}

    def result(self) -> RecordingMetadata:
        associations = {
            pid: StreamAssociation(pid, unique(self.send[pid]), unique(self.recv[pid]))
            for pid in (*self.send, *self.recv)
        }
        return RecordingMetadata(
            dialect=self.dialect,
            complete=self.complete,
            groups=self.groups,
            sessions=self.sessions,
            participants=self.participants,
            streams=self.streams,
            associations=associations,
            extensions=self.extensions,
        )

    def read(self, root: Element) -> None:
        for child in root:
            if not self._mine(child):
                self._extension(child, "")
                continue
            name = self._name(child)
            if name == _DATAMODE:
                self._datamode(child)
            elif name == "group":
                group_id = self._id(child, "group_id", "id", kind="group")
                self._add(self.groups, group_id, Group(group_id), "group")
                self._extensions_in(child)
            elif name == "session":
                self._session(child)
            elif name == "participant":
                self._participant(child)
            elif name == "stream":
                self._stream(child)
            elif name == "participantstreamassoc":
                pid = self._id(child, "participant_id", kind="participantstreamassoc")
                self._send_recv(pid, child)
            else:
                # sessionrecordingassoc, participantsessionassoc, extensiondata, times:
                # nothing to keep but the vendor data they may carry.
                self._extensions_in(child)

    def _mine(self, element: Element) -> bool:
        return _split(element.tag)[0] == self.dialect.value

    @staticmethod
    def _name(element: Element) -> str:
        return _split(element.tag)[1].lower()

    def _id(self, element: Element, *names: str, kind: str) -> str:
        for name in names:
            value = element.get(name)
            if value is not None:
                value = value.strip()
                if not value or len(value) > MAX_VALUE_CHARS:
                    raise MalformedMetadata(f"{kind} has an empty or overlong {name}")
                return value
        raise MalformedMetadata(f"{kind} has no {names[0]} attribute")

    @staticmethod
    def _add(table: dict[str, _V], key: str, value: _V, kind: str) -> None:
        if key in table:
            raise InconsistentMetadata(f"{kind} {key!r} appears twice")
        table[key] = value

    def _datamode(self, element: Element) -> None:
        mode = _text(element, "datamode").lower()
        if mode not in ("complete", "partial"):
            raise MalformedMetadata(f"datamode is {mode[:20]!r}, not 'complete' or 'partial'")
        self.complete = mode == "complete"

    def _session(self, element: Element) -> None:
        session_id = self._id(element, "session_id", "id", kind="session")
        sip_ids: list[str] = []
        group_id = element.get("group")
        for child in element:
            name = self._name(child) if self._mine(child) else ""
            if name == "sipsessionid":
                sip_ids.append(_text(child, "sipSessionID"))
            elif name == "group-ref":
                group_id = _text(child, "group-ref")
            elif not name:
                self._extension(child, "")
            else:
                self._extensions_in(child)
        session = CommunicationSession(session_id, unique(filter(None, sip_ids)), group_id)
        self._add(self.sessions, session_id, session, "session")

    def _participant(self, element: Element) -> None:
        pid = self._id(element, "participant_id", "id", kind="participant")
        aors: list[str] = []
        names: list[str] = []
        for child in element:
            name = self._name(child) if self._mine(child) else ""
            if name == "nameid":
                aors.append(self._id(child, "aor", kind="nameID"))
                names.extend(
                    _text(n, "name") for n in child if self._mine(n) and self._name(n) == "name"
                )
            elif name == "aor":
                aors.append(_text(child, "aor"))
            elif name == "name":
                names.append(_text(child, "name"))
            elif not name:
                self._extension(child, "")
            elif name not in ("send", "recv"):
                self._extensions_in(child)
        self._add(
            self.participants,
            pid,
            Participant(pid, unique(filter(None, aors)), unique(filter(None, names))),
            "participant",
        )
        # The draft lists a participant's streams inside it rather than in an assoc element.
        self._send_recv(pid, element)

    def _stream(self, element: Element) -> None:
        stream_id = self._id(element, "stream_id", "id", kind="stream")
        session_id = element.get("session_id") or element.get("session")
        labels = [_text(c, "label") for c in element if self._mine(c) and self._name(c) == "label"]
        if len(labels) > 1:
            raise InconsistentMetadata(f"stream {stream_id!r} has more than one label")
        self._add(
            self.streams,
            stream_id,
            Stream(stream_id, labels[0] if labels and labels[0] else None, session_id),
            "stream",
        )
        self._extensions_in(element)

    def _send_recv(self, pid: str, element: Element) -> None:
        for child in element:
            if self._mine(child) and self._name(child) in ("send", "recv"):
                stream_id = _text(child, self._name(child))
                if not stream_id:
                    raise MalformedMetadata(f"participant {pid!r} has an empty send/recv")
                (self.send if self._name(child) == "send" else self.recv)[pid].append(stream_id)

    def _extensions_in(self, element: Element) -> None:
        """Collect vendor data anywhere below a recording element (``extensiondata``...)."""
        for child in element:
            if self._mine(child):
                self._extensions_in(child)
            else:
                self._extension(child, "")

    def _extension(self, element: Element, prefix: str) -> None:
        """Flatten a foreign element to ``dotted.local.names -> text``; repeats are joined."""
        key = prefix + _split(element.tag)[1]
        children = list(element)
        if children:
            for child in children:
                self._extension(child, key + ".")
            return
        value = _text(element, "extension value")
        if not value:
            return
        if key in self.extensions:
            self.extensions[key] = f"{self.extensions[key]}, {value}"[:MAX_VALUE_CHARS]
        elif len(self.extensions) >= MAX_EXTENSIONS:
            raise MessageTooLarge(f"metadata carries more than {MAX_EXTENSIONS} vendor values")
        else:
            self.extensions[key] = value
