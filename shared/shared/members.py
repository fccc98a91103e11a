"""Member lifecycle events on `koc.members.v1`: a deletion is accepted by one service and carried to all of
them, so every service removes the member's content from its own tables (each service owns its data).

A deletion covers the content created at or before `requested_at`: posts of the member still in flight (on
Kafka, in an outbox) or replayed later are dropped on arrival, while a post created after the request is
new content. Services remember deleted members by `member_key`, a SHA-256 digest of the id, not the id.
"""

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Literal

import orjson
from aiokafka.structs import ConsumerRecord
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from shared import kafka, topics
from shared.errors import AnchorError
from shared.events import Id

MEMBER_DELETED = "member_deleted"


class MemberDeleted(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["member_deleted"] = MEMBER_DELETED
    member_id: Id
    requested_at: AwareDatetime
    event_id: str
    # Extension: the name of the token that asked (never the token itself).
    requested_by: str | None = None


class DeletionAccepted(BaseModel):
    """The answer to `DELETE /v1/members/{member_id}` (202): the event that carries the deletion."""

    member_id: str
    event_id: str
    requested_at: datetime
    status: Literal["accepted"] = "accepted"


def member_key(member_id: str) -> str:
    """What services keep about a deleted member: a digest, so the tombstone does not store the id itself."""
    return hashlib.sha256(member_id.encode("utf-8", "surrogatepass")).hexdigest()


def decode(record: ConsumerRecord) -> MemberDeleted | None:
    """The deletion a record carries; None for other (future) kinds, which a service may ignore."""
    return decode_value(record.value)


def decode_value(value: bytes | None) -> MemberDeleted | None:
    """`decode` on a record's value alone (a record does not cross to another process; its value does)."""
    if value is None:
        raise kafka.PoisonMessage("empty record value")
    try:
        raw = orjson.loads(value)
    except ValueError as exc:
        raise kafka.PoisonMessage("invalid JSON") from exc
    if not isinstance(raw, dict):
        raise kafka.PoisonMessage("member event is not a JSON object")
    if raw.get("kind") != MEMBER_DELETED:
        return None
    try:
        return MemberDeleted.model_validate(raw)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:5])
        raise kafka.PoisonMessage(f"invalid MemberDeleted: {detail}") from exc


async def publish_deletion(producer: kafka.ManagedProducer, member_id: str, *, requested_by: str | None,
                           now: datetime | None = None) -> MemberDeleted:
    """Publishes the deletion (keyed by member id) and waits for the broker: 202 means every service will get
    it. 503 when the broker does not take it (nothing was accepted; the client retries)."""
    event = MemberDeleted(member_id=member_id, requested_at=(now or datetime.now(UTC)).astimezone(UTC),
                          event_id=str(uuid.uuid4()), requested_by=requested_by)
    if not producer.started.is_set():
        raise AnchorError(503, "unavailable", "Kafka is not available; the deletion was not accepted, retry later",
                          headers={"Retry-After": "5"})
    try:
        await producer.producer.send_and_wait(topics.MEMBER_EVENTS, key=member_id.encode("utf-8"),
                                              value=event.model_dump_json().encode("utf-8"))
    except Exception as exc:
        raise AnchorError(503, "unavailable", "Kafka did not take the deletion; it was not accepted, retry later",
                          headers={"Retry-After": "5"}) from exc
    return event
