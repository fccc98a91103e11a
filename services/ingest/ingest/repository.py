"""Queries on ingest's tables. Functions take the session; the caller's unit of work commits."""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select, update

from ingest.models import AcceptedPost, AcceptedReaction
from shared import db

Record = type[AcceptedPost] | type[AcceptedReaction]


def insert_new(session: Session, model: Record, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Inserts rows whose id is unseen; returns the ids actually inserted (the rest are duplicates)."""
    key = "post_id" if model is AcceptedPost else "reaction_id"
    return set(db.insert_ignore(session, model.__table__, rows, key=[key], returning=key))  # type: ignore[attr-defined]


def parents(session: Session, post_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """post_id -> (author_id, content) for the already accepted posts among `post_ids`."""
    ids = list(set(post_ids))
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(ids), 500):
        stmt = select(AcceptedPost.post_id, AcceptedPost.author_id, AcceptedPost.content).where(
            col(AcceptedPost.post_id).in_(ids[start:start + 500]))
        found.update({pid: (author, content) for pid, author, content in session.exec(stmt)})
    return found


def mark_published(session: Session, model: Record, ids: Iterable[str]) -> None:
    key = col(model.post_id) if model is AcceptedPost else col(model.reaction_id)  # type: ignore[union-attr]
    ids = list(ids)
    for start in range(0, len(ids), 500):
        session.exec(update(model).where(key.in_(ids[start:start + 500])).values(published=True))  # type: ignore[call-overload]


def unpublished(session: Session, model: Record, *, older_than: datetime,
                limit: int) -> list[tuple[str, str, str]]:
    """(id, Kafka key, payload) of rows still unpublished after `older_than`, oldest first."""
    if model is AcceptedPost:
        ident, key = AcceptedPost.post_id, AcceptedPost.thread_id
    else:
        ident, key = AcceptedReaction.reaction_id, AcceptedReaction.post_id
    stmt = (select(ident, key, model.payload)
            .where(col(model.published).is_(False), col(model.ingested_at) < older_than)
            .order_by(col(model.ingested_at)).limit(limit))
    return [(i, k, p) for i, k, p in session.exec(stmt)]
