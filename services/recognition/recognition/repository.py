"""Queries on recognition's tables. Functions take the session; the caller's unit of work commits."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select, update

from recognition.models import Member, PostLabel, StoredPost, StoredReaction
from shared import db
from shared.events import ClassifiedPostEvent, ReactionEvent
from shared.labels import LABOR_LABELS, RECEIVED_LABELS, RESEARCH_LABELS


def authors_of(session: Session, post_ids: Sequence[str]) -> dict[str, str]:
    ids = list(set(post_ids))
    found: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        stmt = select(StoredPost.post_id, StoredPost.author_id).where(col(StoredPost.post_id).in_(chunk))
        found.update(dict(session.exec(stmt).all()))
    return found


def store_posts(session: Session, events: Sequence[ClassifiedPostEvent], *, now: datetime) -> list[str]:
    """Stores classified posts not stored before; returns the ids newly stored."""
    in_batch = {e.post_id: e.author_id for e in events}
    unresolved = [e.reply_to_post_id for e in events
                  if e.reply_to_post_id and e.parent is None and e.reply_to_post_id not in in_batch]
    known = authors_of(session, unresolved) if unresolved else {}
    rows, label_rows = [], []
    for e in events:
        target = _target(e, in_batch, known)
        c = e.classification
        rows.append({
            "post_id": e.post_id, "thread_id": e.thread_id, "author_id": e.author_id,
            "reply_to_post_id": e.reply_to_post_id, "target_author_id": target, "title": e.title,
            "content": e.content, "created_at": e.created_at, "source": e.source,
            "author_display_name": e.author.display_name if e.author else None, "is_official": e.is_official,
            "event_id": e.event_id, "ingested_at": e.ingested_at, "classified_at": e.classified_at,
            "stored_at": now, "labels": list(c.labels), "scores": dict(c.scores), "component": c.component,
            "conditions": list(c.conditions), "evidence": [s.model_dump() for s in c.evidence],
            "model_version": c.model_version,
        })
        label_rows.extend({"post_id": e.post_id, "label": label, "author_id": e.author_id,
                           "target_author_id": target, "thread_id": e.thread_id, "is_official": e.is_official,
                           "created_at": e.created_at} for label in c.labels)
    inserted = set(db.insert_ignore(session, StoredPost.__table__, rows, key=["post_id"], returning="post_id"))  # type: ignore[attr-defined]
    db.insert_ignore(session, PostLabel.__table__, [r for r in label_rows if r["post_id"] in inserted],  # type: ignore[attr-defined]
                     key=["post_id", "label"])
    fresh = [e for e in events if e.post_id in inserted]
    _backfill_targets(session, {e.post_id: e.author_id for e in fresh})
    _upsert_members(session, fresh)
    return [e.post_id for e in fresh]


def _target(e: ClassifiedPostEvent, in_batch: dict[str, str], known: dict[str, str]) -> str | None:
    if e.reply_to_post_id is None:
        return None
    if e.parent is not None:
        return e.parent.author_id
    return in_batch.get(e.reply_to_post_id) or known.get(e.reply_to_post_id)


def _backfill_targets(session: Session, authors: dict[str, str]) -> None:
    """Replies stored before the post they answer get their target once that post arrives."""
    if not authors:
        return
    ids = list(authors)
    orphans: list[tuple[str, str]] = []
    for start in range(0, len(ids), 500):
        stmt = select(StoredPost.post_id, StoredPost.reply_to_post_id).where(
            col(StoredPost.reply_to_post_id).in_(ids[start:start + 500]), col(StoredPost.target_author_id).is_(None))
        orphans.extend(session.exec(stmt).all())  # type: ignore[arg-type]
    for post_id, parent_id in orphans:
        target = authors[parent_id]
        session.exec(update(StoredPost).where(col(StoredPost.post_id) == post_id).values(target_author_id=target))  # type: ignore[call-overload]
        session.exec(update(PostLabel).where(col(PostLabel.post_id) == post_id).values(target_author_id=target))  # type: ignore[call-overload]


def _upsert_members(session: Session, events: Sequence[ClassifiedPostEvent]) -> None:
    merged: dict[str, dict[str, Any]] = {}
    for e in sorted(events, key=lambda ev: ev.created_at):
        row = merged.setdefault(e.author_id, {"member_id": e.author_id, "display_name": None, "joined_at": None,
                                              "is_official": False, "first_seen": e.created_at})
        row["last_seen"] = e.created_at
        if e.author is not None:
            row["display_name"] = e.author.display_name or row["display_name"]
            row["joined_at"] = e.author.joined_at or row["joined_at"]
            row["is_official"] = row["is_official"] or e.author.is_official
    if not merged:
        return
    table = Member.__table__  # type: ignore[attr-defined]
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = module.insert(table).values(list(merged.values()))
    new = stmt.excluded
    # Monotonic merges (min, max, newest name wins) make replays and out-of-order batches converge.
    newer = new.last_seen >= table.c.last_seen
    stmt = stmt.on_conflict_do_update(index_elements=["member_id"], set_={
        "first_seen": case((new.first_seen < table.c.first_seen, new.first_seen), else_=table.c.first_seen),
        "last_seen": case((newer, new.last_seen), else_=table.c.last_seen),
        "display_name": case((newer, func.coalesce(new.display_name, table.c.display_name)),
                             else_=func.coalesce(table.c.display_name, new.display_name)),
        "joined_at": func.coalesce(table.c.joined_at, new.joined_at),
        "is_official": table.c.is_official | new.is_official,
    })
    session.execute(stmt)


def store_reactions(session: Session, events: Sequence[ReactionEvent]) -> int:
    rows = [{"reaction_id": e.reaction_id, "post_id": e.post_id, "from_author_id": e.from_author_id,
             "kind": e.kind, "created_at": e.created_at} for e in events]
    return len(db.insert_ignore(session, StoredReaction.__table__, rows, key=["reaction_id"],  # type: ignore[attr-defined]
                                returning="reaction_id"))


def get_post(session: Session, post_id: str) -> StoredPost | None:
    return session.get(StoredPost, post_id)


def get_member(session: Session, member_id: str) -> Member | None:
    return session.get(Member, member_id)


def activity(session: Session, member_id: str, *, as_of: datetime) -> tuple[int, datetime | None, datetime | None]:
    """(posts, first post, last post) of a member up to `as_of`."""
    created = col(StoredPost.created_at)
    stmt = select(func.count(), func.min(created), func.max(created)).where(
        col(StoredPost.author_id) == member_id, created <= as_of)
    n, first, last = session.exec(stmt).one()
    return int(n), db.as_utc(first), db.as_utc(last)


def labels_by_author(session: Session, member_id: str, *, as_of: datetime) -> dict[str, int]:
    wanted = LABOR_LABELS + RESEARCH_LABELS
    stmt = (select(PostLabel.label, func.count()).where(
        col(PostLabel.author_id) == member_id, col(PostLabel.label).in_(wanted), col(PostLabel.created_at) <= as_of)
        .group_by(col(PostLabel.label)))
    return {label: int(n) for label, n in session.exec(stmt)}


def labels_received(session: Session, member_id: str, *, as_of: datetime) -> dict[str, int]:
    stmt = (select(PostLabel.label, func.count()).where(
        col(PostLabel.target_author_id) == member_id, col(PostLabel.author_id) != member_id,
        col(PostLabel.label).in_(RECEIVED_LABELS), col(PostLabel.created_at) <= as_of)
        .group_by(col(PostLabel.label)))
    return {label: int(n) for label, n in session.exec(stmt)}


def reactions_received(session: Session, member_id: str, *, as_of: datetime) -> int:
    stmt = (select(func.count()).select_from(StoredReaction)
            .join(StoredPost, col(StoredPost.post_id) == col(StoredReaction.post_id))
            .where(col(StoredPost.author_id) == member_id, col(StoredReaction.from_author_id) != member_id,
                   col(StoredReaction.created_at) <= as_of))
    return int(session.exec(stmt).one())
