"""Consuming classified posts and reactions into the ledger, and reading it back."""

import asyncio
import logging
from datetime import UTC, datetime
from typing import TypeVar

from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from sqlmodel import Session

from recognition import repository
from recognition.schemas import MemberView, PostView, Received
from shared import db, kafka, topics
from shared.errors import AnchorError
from shared.events import Author, Classification, ClassifiedPostEvent, ReactionEvent
from shared.labels import LABOR_LABELS, RESEARCH_LABELS

log = logging.getLogger("anchor.recognition")
M = TypeVar("M", bound=BaseModel)

RECOGNITION_STORED = Counter("anchor_recognition_records_stored_total", "Records newly stored (duplicates excluded)",
                             ["kind"])
PIPELINE_LATENCY = Histogram(
    "anchor_pipeline_latency_seconds", "From acceptance at ingest to stored in recognition",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))


def _decode(record: ConsumerRecord, model: type[M]) -> M:
    if record.value is None:
        raise kafka.PoisonMessage("empty record value")
    try:
        return model.model_validate_json(record.value)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:5])
        raise kafka.PoisonMessage(f"invalid {model.__name__}: {detail}") from exc


def _write(engine: Engine, posts: list[ClassifiedPostEvent], reactions: list[ReactionEvent]) -> list[str]:
    now = datetime.now(UTC)
    with db.unit_of_work(engine) as session:
        stored = repository.store_posts(session, posts, now=now) if posts else []
        n_reactions = repository.store_reactions(session, reactions) if reactions else 0
    RECOGNITION_STORED.labels("post").inc(len(stored))
    RECOGNITION_STORED.labels("reaction").inc(n_reactions)
    fresh = set(stored)
    for event in posts:
        if event.post_id in fresh:
            PIPELINE_LATENCY.observe(max(0.0, (now - event.ingested_at).total_seconds()))
    return stored


async def handle(records: list[ConsumerRecord], *, engine: Engine) -> kafka.BatchOutcome:
    outcome = kafka.BatchOutcome()
    posts: list[ClassifiedPostEvent] = []
    reactions: list[ReactionEvent] = []
    for record in records:
        try:
            if record.topic == topics.CLASSIFIED:
                posts.append(_decode(record, ClassifiedPostEvent))
            elif record.topic == topics.REACTIONS:
                reactions.append(_decode(record, ReactionEvent))
            else:
                raise kafka.PoisonMessage(f"unexpected topic {record.topic}")
        except kafka.PoisonMessage as exc:
            outcome.poison.append((record, str(exc)))
    if posts or reactions:
        await asyncio.to_thread(_write, engine, posts, reactions)
    return outcome


def post_view(*, session: Session, post_id: str) -> PostView:
    post = repository.get_post(session, post_id)
    if post is None:
        raise AnchorError(404, "not_found", f"post {post_id!r} has not been processed", field="post_id")
    return PostView(
        post_id=post.post_id, thread_id=post.thread_id, author_id=post.author_id, content=post.content,
        created_at=post.created_at, reply_to_post_id=post.reply_to_post_id, title=post.title, source=post.source,
        author=Author(display_name=post.author_display_name, is_official=post.is_official),
        classification=Classification(labels=post.labels, scores=post.scores, component=post.component,  # type: ignore[arg-type]
                                      conditions=post.conditions, evidence=post.evidence,  # type: ignore[arg-type]
                                      model_version=post.model_version),
        target_author_id=post.target_author_id, ingested_at=post.ingested_at, classified_at=post.classified_at,
        stored_at=post.stored_at)


def member_view(*, session: Session, member_id: str, as_of: datetime) -> MemberView:
    member = repository.get_member(session, member_id)
    posts, first, last = repository.activity(session, member_id, as_of=as_of)
    if member is None or first is None or last is None:
        raise AnchorError(404, "not_found", f"member {member_id!r} has no posts as of {as_of.isoformat()}",
                          field="member_id")
    authored = repository.labels_by_author(session, member_id, as_of=as_of)
    received = repository.labels_received(session, member_id, as_of=as_of)
    return MemberView(
        member_id=member.member_id, display_name=member.display_name, first_seen=first, last_seen=last, posts=posts,
        labor={label: authored.get(label, 0) for label in LABOR_LABELS},
        received=Received(gratitude=received.get("gratitude", 0), hostility=received.get("hostility", 0),
                          bias_accusation=received.get("bias_accusation", 0),
                          reactions=repository.reactions_received(session, member_id, as_of=as_of)),
        acknowledgements=0,
        research={label: authored.get(label, 0) for label in RESEARCH_LABELS},
        is_official=member.is_official)
