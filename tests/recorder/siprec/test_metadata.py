"""RFC 7865 metadata, its draft dialect and vendor variants are read; hostile XML is refused."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.siprec.errors import (
    InconsistentMetadata,
    MalformedMetadata,
    MessageTooLarge,
    SiprecError,
    sip_status_of,
)
from recorder.siprec.metadata import MAX_METADATA_BYTES, parse_metadata
from recorder.siprec.models import Dialect, merge_metadata

VECTORS = Path(__file__).parent / "vectors"


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def test_the_rfc_7865_example_is_read_whole() -> None:
    metadata = parse_metadata(vector("rfc7865-complete.xml"))

    assert metadata.dialect is Dialect.RFC7865
    assert metadata.complete
    assert list(metadata.groups) == ["7+OTCyoxTmqmqyA/1weDAg=="]
    session = metadata.sessions["hVpd7YQgRW2nD22h7q60JQ=="]
    assert session.group_id == "7+OTCyoxTmqmqyA/1weDAg=="
    assert session.sip_session_ids == (
        "ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2",
    )
    bob = metadata.participants["srfBElmCRp2QB23b7Mpk0w=="]
    assert (bob.aors, bob.names) == (("sip:bob@biloxi.com",), ("Bob",))
    on_97 = metadata.stream_by_label("97")
    assert on_97 is not None
    assert on_97.stream_id == "i1Pz3to5hGk8fuXl+PbwCw=="
    assert metadata.senders_of(on_97.stream_id) == (bob,)
    assert metadata.associations["zSfPoSvdSDCmU3A3TRDxAw=="].recv == (on_97.stream_id,)
    assert metadata.extensions == {
        "call-center.supervisor": "sip:alice@atlanta.com",
        "mydata.structure": "FOO!, FOO!, FOO!",
        "mydata.whatever": "bar, bar, bar",
    }


def test_a_partial_update_adds_a_conferenced_party_to_what_is_known() -> None:
    snapshot = parse_metadata(vector("rfc7865-complete.xml"))
    update = parse_metadata(vector("rfc7865-partial-join.xml"))
    assert not update.complete

    merged = merge_metadata(snapshot, update)

    assert len(merged.participants) == 3
    carol = merged.participants["EiXGlc+4TruqqoDaNE76ag=="]
    assert carol.aors == ("sip:carol@example.org",)
    assert merged.stream_by_label("98") is not None
    assert merged.associations["EiXGlc+4TruqqoDaNE76ag=="].recv == (
        "UAAMm5GRQKSCMVvLyl4rFw==",
        "i1Pz3to5hGk8fuXl+PbwCw==",
    )
    # What the update did not restate is kept.
    assert merged.sessions == snapshot.sessions
    assert merged.extensions == snapshot.extensions


def test_a_partial_update_may_relabel_a_known_stream_without_restating_it() -> None:
    snapshot = parse_metadata(vector("rfc7865-complete.xml"))
    update = parse_metadata(
        b"<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>partial</datamode>"
        b"<stream stream_id='UAAMm5GRQKSCMVvLyl4rFw=='><label>99</label></stream></recording>"
    )

    merged = merge_metadata(snapshot, update)

    relabelled = merged.streams["UAAMm5GRQKSCMVvLyl4rFw=="]
    assert (relabelled.label, relabelled.session_id) == ("99", "hVpd7YQgRW2nD22h7q60JQ==")


def test_a_partial_update_naming_an_unknown_participant_is_refused_once_merged() -> None:
    snapshot = parse_metadata(vector("rfc7865-complete.xml"))
    update = parse_metadata(
        b"<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>partial</datamode>"
        b"<participantstreamassoc participant_id='nobody'><send>UAAMm5GRQKSCMVvLyl4rFw==</send>"
        b"</participantstreamassoc></recording>"
    )

    with pytest.raises(InconsistentMetadata, match="unknown participant 'nobody'"):
        merge_metadata(snapshot, update)


@pytest.mark.parametrize(
    ("name", "dialect", "labels", "aors", "extensions"),
    [
        (
            "broadworks-draft.xml",
            Dialect.DRAFT,
            {"1", "2"},
            {"sip:+441632960001@as.example.net;user=phone", "sip:mash.duty@as.example.net"},
            {
                "callType": "Network",
                "userId": "mash.duty@as.example.net",
                "group": "ChildrenServices",
            },
        ),
        (
            "oracle-acme-draft.xml",
            Dialect.DRAFT,
            {"11", "12"},
            {"sip:caller@192.0.2.10", "sip:service@198.51.100.13"},
            {"callingParty": "true", "in-realm": "net192"},
        ),
        (
            "audiocodes-rfc.xml",
            Dialect.RFC7865,
            {"1", "2"},
            {"sip:+441632960002@203.0.113.7", "sip:4410@192.0.2.44"},
            {
                "AvayaUCID": "FA080019001038F725B3",
                "GenesysUUID": "4BOKLLA3VH66JF112M1CC9VHKS14F0KP",
            },
        ),
        (
            "ribbon-rfc.xml",
            Dialect.RFC7865,
            {"a1", "a2"},
            {"sip:+441632960003@trunk.example.net", "sip:jsmith@mash.example.gov.uk"},
            {"callData.gcid": "12345", "callData.agent": "jsmith", "callData.team": "MASH-East"},
        ),
    ],
)
def test_vendor_documents_are_read_with_their_extension_data(
    name: str,
    dialect: Dialect,
    labels: set[str],
    aors: set[str],
    extensions: dict[str, str],
) -> None:
    metadata = parse_metadata(vector(name))

    assert metadata.dialect is dialect
    assert {s.label for s in metadata.streams.values()} == labels
    assert {aor for p in metadata.participants.values() for aor in p.aors} == aors
    assert metadata.extensions == extensions
    for label in labels:
        stream = metadata.stream_by_label(label)
        assert stream is not None
        assert len(metadata.senders_of(stream.stream_id)) == 1


def test_the_draft_dialect_keeps_send_and_recv_written_inside_participants() -> None:
    metadata = parse_metadata(vector("broadworks-draft.xml"))

    caller = metadata.associations["3l1aWQ9nTz6p0m8yCq4d5A=="]
    assert caller.send == ("m0M7yKq3Tpi1E8n2rQW6uw==",)
    assert caller.recv == ("q9w2sYh4RwyVb7tZk1Lx0g==",)


def test_only_names_in_the_recording_namespace_are_participant_names() -> None:
    metadata = parse_metadata(
        _recording(
            "<participant participant_id='p'><nameID aor='sip:p@example.net'>"
            "<x:name xmlns:x='urn:x'>Not a name</x:name><name>Pat</name></nameID></participant>"
        )
    )

    assert metadata.participants["p"].names == ("Pat",)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE recording [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<recording xmlns='urn:ietf:params:xml:ns:recording:1'><group group_id="&lol4;"/></recording>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE recording [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<recording xmlns='urn:ietf:params:xml:ns:recording:1'>
<participant participant_id="p"><nameID aor="&secret;"/></participant></recording>
"""

DTD_ONLY = b"""<?xml version="1.0"?>
<!DOCTYPE recording SYSTEM "http://198.51.100.1/recording.dtd">
<recording xmlns='urn:ietf:params:xml:ns:recording:1'/>
"""


def _recording(body: str) -> bytes:
    return f"<recording xmlns='urn:ietf:params:xml:ns:recording:1'>{body}</recording>".encode()


@pytest.mark.parametrize(
    ("document", "error", "detail"),
    [
        pytest.param(BILLION_LAUGHS, MalformedMetadata, "forbidden construct", id="laughs"),
        pytest.param(EXTERNAL_ENTITY, MalformedMetadata, "forbidden construct", id="xxe"),
        pytest.param(DTD_ONLY, MalformedMetadata, "forbidden construct", id="dtd"),
        pytest.param(b"<recording", MalformedMetadata, "not well-formed", id="truncated"),
        pytest.param(b"", MalformedMetadata, "not well-formed", id="empty"),
        pytest.param(
            b"<recording><datamode>complete</datamode></recording>",
            MalformedMetadata,
            "not in a recording namespace",
            id="no-namespace",
        ),
        pytest.param(
            b"<session xmlns='urn:ietf:params:xml:ns:recording:1'/>",
            MalformedMetadata,
            "root element is 'session'",
            id="wrong-root",
        ),
        pytest.param(
            _recording("<datamode>sometimes</datamode>"),
            MalformedMetadata,
            "datamode",
            id="datamode",
        ),
        pytest.param(
            _recording("<stream session_id='s'><label>1</label></stream>"),
            MalformedMetadata,
            "stream has no stream_id",
            id="stream-without-id",
        ),
        pytest.param(
            _recording("<stream stream_id='s1'/>"),
            InconsistentMetadata,
            "stream 's1' has no label",
            id="stream-without-label",
        ),
        pytest.param(
            _recording(
                "<stream stream_id='s1'><label>1</label></stream>"
                "<stream stream_id='s2'><label>1</label></stream>"
            ),
            InconsistentMetadata,
            "share label '1'",
            id="label-twice",
        ),
        pytest.param(
            _recording("<participant participant_id='p'/><participant participant_id='p'/>"),
            InconsistentMetadata,
            "participant 'p' appears twice",
            id="id-twice",
        ),
        pytest.param(
            _recording(
                "<stream stream_id='s1'><label>1</label></stream>"
                "<participantstreamassoc participant_id='ghost'><send>s1</send>"
                "</participantstreamassoc>"
            ),
            InconsistentMetadata,
            "unknown participant 'ghost'",
            id="assoc-to-unknown-participant",
        ),
        pytest.param(
            _recording(
                "<participant participant_id='p'/>"
                "<participantstreamassoc participant_id='p'><recv>s9</recv>"
                "</participantstreamassoc>"
            ),
            InconsistentMetadata,
            "unknown stream 's9'",
            id="assoc-to-unknown-stream",
        ),
        pytest.param(
            _recording("<stream stream_id='s1' session_id='elsewhere'><label>1</label></stream>"),
            InconsistentMetadata,
            "unknown session 'elsewhere'",
            id="stream-in-unknown-session",
        ),
        pytest.param(
            _recording("<a/>" * 2001),
            MessageTooLarge,
            "more than 2000 elements",
            id="many-elements",
        ),
        pytest.param(
            _recording("<x:a xmlns:x='urn:x'>" * 40 + "</x:a>" * 40),
            MessageTooLarge,
            "nests deeper",
            id="deep",
        ),
        pytest.param(
            _recording("<group group_id='g'/>" + " " * MAX_METADATA_BYTES),
            MessageTooLarge,
            "over 65536 bytes",
            id="huge",
        ),
        pytest.param(
            _recording("".join(f"<x:v{i} xmlns:x='urn:x'>1</x:v{i}>" for i in range(200))),
            MessageTooLarge,
            "vendor values",
            id="many-extensions",
        ),
    ],
)
def test_hostile_or_broken_metadata_is_refused_with_a_precise_error(
    document: bytes, error: type[SiprecError], detail: str
) -> None:
    with pytest.raises(error, match=re.escape(detail)) as refused:
        parse_metadata(document)

    assert sip_status_of(refused.value)[0] in (400, 413)


def test_an_entity_refusal_does_not_echo_the_document() -> None:
    with pytest.raises(MalformedMetadata) as refused:
        parse_metadata(EXTERNAL_ENTITY)

    assert "passwd" not in refused.value.detail
    assert "secret" not in refused.value.detail


_ids = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")),
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip() == s)


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(_ids, min_size=1, max_size=6, unique=True),
    aor=_ids,
)
def test_any_consistent_document_round_trips_its_ids_and_labels(
    labels: list[str], aor: str
) -> None:
    streams = "".join(
        f"<stream stream_id={quoteattr('s' + str(i))}><label>{escape(label)}</label></stream>"
        for i, label in enumerate(labels)
    )
    sends = "".join(f"<send>s{i}</send>" for i in range(len(labels)))
    document = _recording(
        f"<participant participant_id='p'><nameID aor={quoteattr(aor)}/></participant>"
        f"{streams}<participantstreamassoc participant_id='p'>{sends}</participantstreamassoc>"
    )

    metadata = parse_metadata(document)

    assert [metadata.streams[f"s{i}"].label for i in range(len(labels))] == labels
    assert metadata.participants["p"].aors == (aor,)
    assert metadata.associations["p"].send == tuple(f"s{i}" for i in range(len(labels)))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_refused_only_with_siprec_errors(document: bytes) -> None:
    with contextlib.suppress(SiprecError):
        parse_metadata(document)
