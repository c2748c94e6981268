"""What crosses between the SIP thread and the event loop: plain values and two protocols.

sippy runs in a thread of its own (``sip_thread.py``); the recorder's decisions run on the
asyncio loop (``server.py``). Neither side touches the other's objects: the SIP side hands
over an ``Invitation`` (bytes and strings) and a ``Dialog`` handle whose methods only post
work back to the SIP thread, and the loop side implements ``SignallingEvents``, whose
methods the SIP side only ever schedules with ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from recorder.siprec.admission import Header

# How a dialog ended on the SIP side without a BYE: CANCEL (or the INVITE expired) before
# the answer, or no ACK for the 200 / a BYE we sent ourselves.
SipEnd = Literal["cancel", "error"]


@dataclass(frozen=True)
class Invitation:
    """An INVITE's (or re-INVITE's, or UPDATE's) body as received, with where it came from.

    ``body`` holds participants' addresses of record: never log it.
    """

    call_id: str
    source: tuple[str, int]
    content_type: str
    body: bytes = field(repr=False)


class Dialog(Protocol):
    """A recording session's dialog, driven from the loop; each call returns at once.

    The work is posted to the SIP thread, where calls arriving after the dialog ended
    (a CANCEL won the race) do nothing.
    """

    @property
    def call_id(self) -> str: ...

    def accept(self, sdp: str) -> None:
        """Answer the pending INVITE or re-INVITE 200 with ``sdp``."""

    def refuse(self, code: int, reason: str, headers: Sequence[Header] = ()) -> None:
        """Answer the pending INVITE or re-INVITE with a final error response."""

    def hang_up(self) -> None:
        """End the dialog from our side: BYE once connected, 500 while still inviting."""

    def answer_bye(self) -> None:
        """Send the 200 to the SRC's BYE, held until what was recorded is stored."""

    def answer_update(
        self, code: int, reason: str, sdp: str | None = None, headers: Sequence[Header] = ()
    ) -> None:
        """Answer the SRC's held UPDATE: 200 (with ``sdp`` when it made an offer) or an error."""

    def forget(self) -> None:
        """Stop counting the dialog towards the session limit; the last call for a dialog."""


class SignallingEvents(Protocol):
    """The loop side's handlers, each scheduled on the loop by the SIP thread."""

    def invited(self, dialog: Dialog, invitation: Invitation) -> None:
        """An admitted SIPREC INVITE (source, Require and Contact already checked)."""

    def reinvited(self, dialog: Dialog, invitation: Invitation) -> None:
        """A re-INVITE with a new body for a connected dialog."""

    def updated(self, dialog: Dialog, invitation: Invitation) -> None:
        """An UPDATE with a body for a connected dialog; it waits for ``answer_update``."""

    def bye_received(self, dialog: Dialog) -> None:
        """The SRC sent BYE; its 200 waits for ``dialog.answer_bye()``."""

    def ended(self, dialog: Dialog, how: SipEnd) -> None:
        """The dialog ended on the SIP side without a BYE from the SRC."""


def call_tag(call_id: str) -> str:
    """A short stable tag for logs: a Call-ID may embed a host or a number, so never log it."""
    return hashlib.sha256(call_id.encode("utf-8", "replace")).hexdigest()[:12]
