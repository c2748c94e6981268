"""Validation of the push ``metadata`` part: the call as the source describes it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from recorder.errors import InvalidMetadata

# Calls are short; a "call" of more than a day is a broken clock or a hostile sender.
MAX_CALL_LENGTH = timedelta(hours=24)
# A sender's clock may run a little ahead of ours; more than this is an impossible start.
FUTURE_TOLERANCE = timedelta(minutes=5)

# Recordings older than this cannot be within any retention period; rejecting them early
# also keeps date arithmetic far from the edges of the calendar.
EARLIEST_CALL = datetime(2000, 1, 2, tzinfo=UTC)
LATEST_CALL = datetime(2099, 12, 31, tzinfo=UTC)


def _text_only(value: Any) -> Any:
    # Numbers would be read as seconds or milliseconds since 1970 by guesswork.
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string with a time zone")
    return value


def _in_utc(value: datetime) -> datetime:
    # Compared before converting: near the ends of the calendar, conversion overflows.
    local = value.replace(tzinfo=None)
    if not EARLIEST_CALL.replace(tzinfo=None) < local < LATEST_CALL.replace(tzinfo=None):
        raise ValueError("is not between the years 2000 and 2099")
    return value.astimezone(UTC)


CallTime = Annotated[AwareDatetime, BeforeValidator(_text_only), AfterValidator(_in_utc)]
SourceId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]
Party = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\x20-\x7e]+$")]
Label = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")
]
Reference = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9/_.-]*$")
]


class PushMetadata(BaseModel):
    """The contract's metadata fields; unknown keys are kept as extra metadata."""

    model_config = ConfigDict(extra="allow", frozen=True)

    recording_id: SourceId
    started_at: CallTime
    ended_at: CallTime | None = None
    direction: Literal["inbound", "outbound", "internal"] | None = None
    from_: Party | None = Field(default=None, alias="from")
    to: Party | None = None
    agent: Label | None = None
    team: Label | None = None
    referrals: Annotated[
        list[Reference], BeforeValidator(lambda value: [] if value is None else value)
    ] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> PushMetadata:
        if self.ended_at is not None:
            if self.ended_at < self.started_at:
                raise ValueError("ended_at is before started_at")
            if self.ended_at - self.started_at > MAX_CALL_LENGTH:
                raise ValueError("the call is longer than 24 hours")
        return self

    @property
    def extra(self) -> dict[str, Any]:
        """Keys the contract does not name, kept as the source sent them."""
        return dict(self.model_extra or {})


def parse_push_metadata(raw: bytes, *, now: datetime) -> PushMetadata:
    """Parse and validate the metadata part; InvalidMetadata says what is wrong.

    The message names fields, never values: values may be phone numbers.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidMetadata("metadata is not UTF-8") from None
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidMetadata("metadata is nested too deeply") from None
    except ValueError:
        raise InvalidMetadata("metadata is not valid JSON") from None
    if not isinstance(document, dict):
        raise InvalidMetadata("metadata must be a JSON object")
    try:
        metadata = PushMetadata.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'metadata'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors(include_input=False, include_url=False)[:5]
        )
        raise InvalidMetadata(problems) from None
    if metadata.started_at > now + FUTURE_TOLERANCE:
        raise InvalidMetadata("started_at: is in the future")
    if metadata.ended_at is not None and metadata.ended_at > now + FUTURE_TOLERANCE:
        raise InvalidMetadata("ended_at: is in the future")
    return metadata


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; databases refuse them where Python would not.
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("numbers must be finite")
    return value
