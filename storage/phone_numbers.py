"""Phone numbers in one form, E.164, so a person's calls can be found by their number.

Providers send numbers as they see them: ``+442079460000`` from a cloud platform,
``020 7946 0000`` or ``tel:+44...`` from a PBX, ``anonymous`` or an extension like ``2001``
from inside the hub. A subject access search must match on the number alone, exactly, so
capture stores the E.164 form whenever the text is a possible number, and the search
normalises what the DPO types the same way. The numbering-plan knowledge is
libphonenumber's (the ``phonenumbers`` package), not a hand-kept table.

Both capture (recorder) and the search (retrieval) use this one rule, so it lives here.
"""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "GB"
"""Where a number written without its country code is read as dialled from."""

# Shorter national numbers are extensions and service codes, not a person's line: "2001"
# is a possible number in some plans, but it is an internal extension here.
_MIN_NATIONAL_DIGITS = 7
# Beyond E.164's 15 digits (and the text around them) nothing is a phone number.
_MAX_TEXT = 64


def known_region(region: str) -> bool:
    """Whether ``region`` is a region libphonenumber knows (ISO 3166 alpha-2, e.g. GB)."""
    return region in phonenumbers.SUPPORTED_REGIONS


def e164(text: str | None, region: str = DEFAULT_REGION) -> str | None:
    """``text`` as an E.164 number (``+442079460000``), or None when it is not one.

    A ``tel:`` or ``sip:`` prefix and a ``;parameters`` or ``@host`` tail are dropped, as
    PBXs and SBCs send them. Possible (right length for its country) is enough; valid
    (an allocated range) is not asked, because drama and test ranges are not "valid"
    yet are what a test call dials.
    """
    if text is None or not 0 < len(text) <= _MAX_TEXT:
        return None
    candidate = text.strip()
    for prefix in ("tel:", "sip:", "sips:"):
        if candidate.lower().startswith(prefix):
            candidate = candidate[len(prefix) :]
    candidate = candidate.split(";", 1)[0].split("@", 1)[0]
    if not candidate or not any(ch.isdigit() for ch in candidate):
        return None
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    if len(str(number.national_number)) < _MIN_NATIONAL_DIGITS:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def as_stored(text: str | None, region: str = DEFAULT_REGION) -> str | None:
    """What capture stores for a party: its E.164 form when it has one, else the text.

    ``anonymous``, ``2001`` and SIP identities without a number stay as they came, so
    nothing the source said is lost; only numbers are made findable.
    """
    return e164(text, region) or text
