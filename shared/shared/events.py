"""The payloads of api.md as pydantic models: what HTTP accepts and what travels on Kafka.

Inbound models validate strictly (a clear 4xx naming the field beats a 500 deep in a consumer);
unknown fields are ignored so producers may send newer, extended payloads.
"""

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import uuid4

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from shared.labels import Component, Condition, Label

SCHEMA_VERSION = 1

# Bounds keep timestamps convertible to UTC on every database and catch unit mix-ups (ms as seconds).
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)


def _storable(value: str) -> str:
    # NUL is rejected by PostgreSQL text columns and lone surrogates cannot be encoded as UTF-8:
    # refusing them here turns what would be a 500 in a writer into a 422 naming the field.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid UTF-8 (lone surrogate found)") from exc
    return value


# RFC 3339 date-time with offset (api.md: "times in RFC 3339 with offset"). pydantic alone would also take a number
# or a numeric string as Unix time (seconds or milliseconds, guessed by size) and a time without seconds.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):  # built in code, not parsed from a request
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string with an offset, e.g. 2026-03-01T20:15:00+08:00")
    if not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with seconds and an offset, e.g. 2026-03-01T20:15:00+08:00")
    return value


def _plausible_time(value: datetime) -> datetime:
    if value < EARLIEST:
        raise ValueError(f"must not be before {EARLIEST.date().isoformat()}")
    if value > datetime.now(UTC) + FUTURE_SLACK:
        raise ValueError("must not be more than one day in the future")
    return value


class _JsonSchemaPattern:
    """Documents a constraint a validator enforces as a JSON-schema `pattern` (so clients and schemathesis know it)
    without making pydantic match the regex as well."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __get_pydantic_json_schema__(self, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core)
        schema.setdefault("pattern", self.pattern)
        return schema


# No control characters and no whitespace. Spelled out rather than `\s`, whose meaning differs between regex
# engines (pydantic's Rust regex, ECMA-262 in the OpenAPI schema, Python's re): exactly Unicode White_Space.
ID_PATTERN = r"^[^\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$"
NO_NUL = _JsonSchemaPattern(r"^[^\x00]*$")

Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN),
    AfterValidator(_storable),
]
Text = Annotated[str, AfterValidator(_storable), NO_NUL]
Content = Annotated[str, StringConstraints(min_length=1, max_length=20000), AfterValidator(_storable), NO_NUL]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_plausible_time)]
ReactionKind = Literal["like", "thanks", "helpful", "accepted_answer"]


class _Inbound(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Author(_Inbound):
    display_name: Annotated[Text, StringConstraints(max_length=100)] | None = None
    joined_at: Timestamp | None = None
    is_official: StrictBool = False


class Post(_Inbound):
    post_id: Id
    thread_id: Id
    author_id: Id
    content: Content
    created_at: Timestamp
    reply_to_post_id: Id | None = None
    title: Annotated[Text, StringConstraints(max_length=500)] | None = None
    source: Annotated[Text, StringConstraints(max_length=64)] | None = None
    author: Author | None = None

    @property
    def is_official(self) -> bool:
        return bool(self.author and self.author.is_official)


class Reaction(_Inbound):
    reaction_id: Id
    post_id: Id
    from_author_id: Id
    kind: ReactionKind
    created_at: Timestamp


class Envelope(BaseModel):
    """Fields every event carries on Kafka."""

    event_id: str
    ingested_at: datetime
    schema_version: int = SCHEMA_VERSION


def new_envelope(now: datetime | None = None) -> dict[str, Any]:
    return {"event_id": str(uuid4()), "ingested_at": now or datetime.now(UTC), "schema_version": SCHEMA_VERSION}


class ParentRef(BaseModel):
    """The post replied to, attached at ingest so classification has the reply context (api.md extension)."""

    post_id: str
    author_id: str
    content: str


class PostEvent(Post, Envelope):
    model_config = ConfigDict(extra="ignore", frozen=True)

    parent: ParentRef | None = None


class ReactionEvent(Reaction, Envelope):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EvidenceSpan(BaseModel):
    label: Label
    text: str


class Classification(BaseModel):
    labels: list[Label]
    scores: dict[Label, float]
    component: Component | None = None
    conditions: list[Condition] = Field(default_factory=list)
    evidence: list[EvidenceSpan] = Field(default_factory=list)
    model_version: str


class ClassifiedPostEvent(PostEvent):
    classification: Classification
    classified_at: datetime | None = None


def dumps(model: BaseModel) -> bytes:
    return model.model_dump_json().encode("utf-8")
