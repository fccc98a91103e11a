"""Accepting posts and reactions: validate, de-duplicate durably, publish, and relay what failed to publish.

A record is accepted once it is committed to ingest's database (the de-duplication key survives restarts);
publication follows. When the broker is down the rows stay unpublished and the outbox relay sends them
later, so an accepted record is never lost; a re-send may publish twice, which consumers absorb.
"""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter
from sqlalchemy import Engine

from ingest import repository
from ingest.models import AcceptedPost, AcceptedReaction
from shared import db, kafka, members, topics
from shared.events import ParentRef, Post, PostEvent, Reaction, ReactionEvent, new_envelope

log = logging.getLogger("anchor.ingest")

INGEST_RECORDS = Counter("anchor_ingest_records_total", "Records received over HTTP", ["kind", "outcome"])
INGEST_PUBLISH_FAILURES = Counter(
    "anchor_ingest_publish_failures_total", "Inline publications that failed (left to the outbox relay)", ["kind"])
INGEST_RELAYED = Counter("anchor_ingest_relayed_total", "Records published by the outbox relay", ["kind"])
RATE_LIMITED = Counter("anchor_ingest_rate_limited_total",
                       "Requests refused with 429 because their token was over its rate limit", ["token", "kind"])
MEMBERS_DELETED = Counter("anchor_ingest_member_deletions_total",
                          "Member deletions applied (a deletion redelivered or applied twice counts twice)")


@dataclass(frozen=True, slots=True)
class Outgoing:
    id: str
    key: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class Stored:
    outgoing: list[Outgoing]
    duplicates: int


def _unique(items: Sequence[Post] | Sequence[Reaction], key: str) -> list:  # type: ignore[type-arg]
    seen: set[str] = set()
    unique = []
    for item in items:
        ident = getattr(item, key)
        if ident not in seen:
            seen.add(ident)
            unique.append(item)
    return unique


def _erased(gone: dict[str, datetime], member_id: str, created_at: datetime) -> bool:
    """Created by a deleted member before their deletion was requested: a re-send, never stored again."""
    at = gone.get(member_id)
    return at is not None and created_at <= at


def store_posts(*, engine: Engine, posts: Sequence[Post], now: datetime) -> Stored:
    unique: list[Post] = _unique(posts, "post_id")
    with db.unit_of_work(engine) as session:
        gone = repository.tombstones(session, {p.author_id for p in unique})
        unique = [p for p in unique if not _erased(gone, p.author_id, p.created_at)]
        in_batch = {p.post_id: p for p in unique}
        known = repository.parents(session, [p.reply_to_post_id for p in unique if p.reply_to_post_id])
        rows, outgoing = [], {}
        for post in unique:
            event = PostEvent(**post.model_dump(), **new_envelope(now), parent=_parent(post, known, in_batch))
            payload = event.model_dump_json()
            rows.append({"post_id": post.post_id, "thread_id": post.thread_id, "author_id": post.author_id,
                         "content": post.content, "ingested_at": now, "published": False, "payload": payload})
            outgoing[post.post_id] = Outgoing(post.post_id, post.thread_id.encode(), payload.encode())
        inserted = repository.insert_new(session, AcceptedPost, rows)
    return Stored([outgoing[i] for i in outgoing if i in inserted], len(posts) - len(inserted))


def _parent(post: Post, known: dict[str, tuple[str, str]], in_batch: dict[str, Post]) -> ParentRef | None:
    target = post.reply_to_post_id
    if target is None:
        return None
    if target in known:
        author_id, content = known[target]
        return ParentRef(post_id=target, author_id=author_id, content=content)
    if target in in_batch and target != post.post_id:
        parent = in_batch[target]
        return ParentRef(post_id=target, author_id=parent.author_id, content=parent.content)
    return None  # the parent has not been seen (yet): classification proceeds without reply context


def store_reactions(*, engine: Engine, reactions: Sequence[Reaction], now: datetime) -> Stored:
    unique: list[Reaction] = _unique(reactions, "reaction_id")
    with db.unit_of_work(engine) as session:
        gone = repository.tombstones(session, {r.from_author_id for r in unique})
    unique = [r for r in unique if not _erased(gone, r.from_author_id, r.created_at)]
    rows, outgoing = [], {}
    for reaction in unique:
        payload = ReactionEvent(**reaction.model_dump(), **new_envelope(now)).model_dump_json()
        rows.append({"reaction_id": reaction.reaction_id, "post_id": reaction.post_id,
                     "from_author_id": reaction.from_author_id, "ingested_at": now, "published": False,
                     "payload": payload})
        outgoing[reaction.reaction_id] = Outgoing(reaction.reaction_id, reaction.post_id.encode(), payload.encode())
    with db.unit_of_work(engine) as session:
        inserted = repository.insert_new(session, AcceptedReaction, rows)
    return Stored([outgoing[i] for i in outgoing if i in inserted], len(reactions) - len(inserted))


async def publish(*, producer: kafka.ManagedProducer, engine: Engine, topic: str,
                  model: type[AcceptedPost] | type[AcceptedReaction], outgoing: Sequence[Outgoing]) -> bool:
    """Publishes and marks published. False when the broker failed: the relay retries those rows."""
    if not outgoing:
        return True
    kind = "post" if model is AcceptedPost else "reaction"
    if not producer.started.is_set():
        INGEST_PUBLISH_FAILURES.labels(kind).inc(len(outgoing))
        return False
    try:
        futures = [await producer.producer.send(topic, key=o.key, value=o.payload) for o in outgoing]
        await asyncio.gather(*futures)
    except Exception as exc:
        INGEST_PUBLISH_FAILURES.labels(kind).inc(len(outgoing))
        log.warning("publish failed; left to the outbox relay", extra={"kind": kind, "error": repr(exc)})
        return False

    def mark() -> None:
        with db.unit_of_work(engine) as session:
            repository.mark_published(session, model, [o.id for o in outgoing])

    await asyncio.to_thread(mark)
    return True


async def accept_posts(*, engine: Engine, producer: kafka.ManagedProducer, posts: Sequence[Post]) -> Stored:
    stored = await asyncio.to_thread(store_posts, engine=engine, posts=posts, now=datetime.now(UTC))
    INGEST_RECORDS.labels("post", "accepted").inc(len(stored.outgoing))
    INGEST_RECORDS.labels("post", "duplicate").inc(stored.duplicates)
    await publish(producer=producer, engine=engine, topic=topics.POSTS, model=AcceptedPost, outgoing=stored.outgoing)
    return stored


async def accept_reactions(*, engine: Engine, producer: kafka.ManagedProducer, reactions: Sequence[Reaction]) -> Stored:
    stored = await asyncio.to_thread(store_reactions, engine=engine, reactions=reactions, now=datetime.now(UTC))
    INGEST_RECORDS.labels("reaction", "accepted").inc(len(stored.outgoing))
    INGEST_RECORDS.labels("reaction", "duplicate").inc(stored.duplicates)
    await publish(producer=producer, engine=engine, topic=topics.REACTIONS, model=AcceptedReaction,
                  outgoing=stored.outgoing)
    return stored


async def relay_once(*, engine: Engine, producer: kafka.ManagedProducer, grace: timedelta, limit: int) -> int:
    """Publishes rows left unpublished for longer than `grace`. Returns how many were sent."""
    sent = 0
    for model, topic, kind in ((AcceptedPost, topics.POSTS, "post"), (AcceptedReaction, topics.REACTIONS, "reaction")):
        def load(m: type[AcceptedPost] | type[AcceptedReaction] = model) -> list[tuple[str, str, str]]:
            with db.unit_of_work(engine) as session:
                return repository.unpublished(session, m, older_than=datetime.now(UTC) - grace, limit=limit)

        pending = await asyncio.to_thread(load)
        if not pending:
            continue
        outgoing = [Outgoing(ident, key.encode(), payload.encode()) for ident, key, payload in pending]
        if await publish(producer=producer, engine=engine, topic=topic, model=model, outgoing=outgoing):
            INGEST_RELAYED.labels(kind).inc(len(outgoing))
            sent += len(outgoing)
    return sent



def apply_deletions(engine: Engine, deletions: Sequence[members.MemberDeleted]) -> None:
    now = datetime.now(UTC)
    with db.unit_of_work(engine) as session:
        counts = [repository.delete_member(session, d.member_id, requested_at=d.requested_at.astimezone(UTC),
                                           now=now) for d in deletions]
    for c in counts:
        MEMBERS_DELETED.inc()
        log.info("member deleted", extra=c)  # counts only: member ids and content are never logged


async def handle_member_events(records: list[ConsumerRecord], *, engine: Engine) -> kafka.BatchOutcome:
    """Consumes `koc.members.v1`: each deletion removes the member's records from ingest's tables."""
    outcome = kafka.BatchOutcome()
    deletions: list[members.MemberDeleted] = []
    for record in records:
        try:
            deletion = members.decode(record)
        except kafka.PoisonMessage as exc:
            outcome.poison.append((record, str(exc)))
            continue
        if deletion is not None:
            deletions.append(deletion)
    if deletions:
        await asyncio.to_thread(apply_deletions, engine, deletions)
    return outcome


async def delete_member(*, engine: Engine, producer: kafka.ManagedProducer, member_id: str,
                        requested_by: str) -> members.MemberDeleted:
    """Publishes the deletion for every service, then applies it here at once (the consumer applies it again,
    which changes nothing)."""
    event = await members.publish_deletion(producer, member_id, requested_by=requested_by)
    await asyncio.to_thread(apply_deletions, engine, [event])
    return event
