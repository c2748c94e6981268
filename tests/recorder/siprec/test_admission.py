"""Who may open a recording session: the rules the SIP thread applies before reading a body."""

from __future__ import annotations

import pytest

from recorder.siprec.admission import (
    ALLOWED_METHODS,
    AdmissionPolicy,
    capability_headers,
    contact_feature_tags,
    option_tags,
)

POLICY = AdmissionPolicy.from_cidrs(["10.20.0.0/16", "2001:db8::/32"], max_sessions=2)
SRC_CONTACT = "<sip:src@10.20.1.1:5060;transport=udp>;+sip.src"


def refusal_code(**overrides: object) -> int | None:
    arguments: dict[str, object] = {
        "source_host": "10.20.1.1",
        "require": ["siprec"],
        "contact": SRC_CONTACT,
        "active_sessions": 0,
    }
    arguments.update(overrides)
    refusal = POLICY.refuse_invite(**arguments)  # type: ignore[arg-type]
    return None if refusal is None else refusal.code


def test_a_siprec_invite_from_a_listed_src_is_admitted() -> None:
    assert refusal_code() is None


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        pytest.param({"source_host": "192.0.2.7"}, 403, id="stranger"),
        pytest.param({"source_host": "not an address"}, 403, id="garbage-source"),
        pytest.param({"require": []}, 403, id="no-require"),
        pytest.param({"contact": "<sip:src@10.20.1.1>"}, 403, id="no-sip-src"),
        pytest.param({"contact": "<sip:src@10.20.1.1;+sip.src>"}, 403, id="sip-src-in-uri"),
        pytest.param({"contact": None}, 403, id="no-contact"),
        pytest.param({"require": ["siprec, timer"]}, 420, id="timer"),
        pytest.param({"require": ["100rel", "siprec"]}, 420, id="100rel"),
        pytest.param({"active_sessions": 2}, 503, id="full"),
    ],
)
def test_what_is_refused_and_how(overrides: dict[str, object], code: int) -> None:
    assert refusal_code(**overrides) == code


def test_a_stranger_learns_nothing_but_403_even_with_unknown_extensions() -> None:
    assert refusal_code(source_host="192.0.2.7", require=["timer"], active_sessions=9) == 403


def test_420_names_the_unsupported_tags_and_503_says_when_to_retry() -> None:
    bad = POLICY.refuse_invite(
        source_host="10.20.1.1",
        require=["siprec, Timer", "100rel"],
        contact=SRC_CONTACT,
        active_sessions=0,
    )
    full = POLICY.refuse_invite(
        source_host="10.20.1.1", require=["siprec"], contact=SRC_CONTACT, active_sessions=5
    )
    assert bad is not None
    assert dict(bad.headers) == {"Unsupported": "timer, 100rel"}
    assert full is not None
    assert dict(full.headers) == {"Retry-After": "30"}


@pytest.mark.parametrize(
    "host", ["10.20.255.1", "2001:db8::5", "[2001:db8::5]", "::ffff:10.20.3.4", "fe80::1%eth0"]
)
def test_sources_are_matched_by_network_in_every_spelling(host: str) -> None:
    assert POLICY.source_allowed(host) is (host != "fe80::1%eth0")


def test_an_empty_allow_list_admits_nobody() -> None:
    assert AdmissionPolicy.from_cidrs([]).source_allowed("127.0.0.1") is False


def test_a_bad_cidr_or_limit_stops_start_up() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.1/8"):
        AdmissionPolicy.from_cidrs(["10.0.0.1/8"])
    with pytest.raises(ValueError, match="max_sessions"):
        AdmissionPolicy.from_cidrs(["10.0.0.0/8"], max_sessions=0)


def test_option_tags_and_contact_parameters_are_read_case_insensitively() -> None:
    assert option_tags(["SipRec , timer", "", "siprec"]) == ("siprec", "timer")
    assert contact_feature_tags('"SRC" <sip:a@b;lr>;+SIP.SRC;expires=60') == {
        "+sip.src",
        "expires",
    }
    assert contact_feature_tags("sip:a@b;+sip.src") == {"+sip.src"}


def test_update_is_allowed_but_no_extension_beyond_siprec_is_supported() -> None:
    assert "UPDATE" in ALLOWED_METHODS
    assert "UPDATE" in dict(capability_headers())["Allow"]
    assert dict(capability_headers())["Supported"] == "siprec"
