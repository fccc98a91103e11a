"""Queries on ingest's tables. Functions take the session; the caller's unit of work commits."""

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import case, delete
from sqlmodel import Session, col, select, update

from ingest.models import AcceptedPost, AcceptedReaction, DeletedMember
from shared import db
from shared.events import PostEvent
from shared.members import member_key

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


def tombstones(session: Session, member_ids: Iterable[str]) -> dict[str, datetime]:
    """member id -> the latest deletion requested for it, for the deleted ones among `member_ids`."""
    keys = {member_key(m): m for m in set(member_ids)}
    wanted = sorted(keys)
    found: dict[str, datetime] = {}
    for start in range(0, len(wanted), 500):
        stmt = select(DeletedMember.member_key, DeletedMember.requested_at).where(
            col(DeletedMember.member_key).in_(wanted[start:start + 500]))
        for key, at in session.exec(stmt).all():
            found[keys[key]] = db.as_utc(at)  # type: ignore[assignment]
    return found


def _created(payload: str) -> datetime:
    return datetime.fromisoformat(orjson.loads(payload)["created_at"])


def delete_member(session: Session, member_id: str, *, requested_at: datetime, now: datetime) -> dict[str, int]:
    """Deletes the member's posts and reactions created at or before `requested_at` (published or still in the
    outbox), reactions to those posts, and the copies of their posts' text that others' replies carry as reply
    context; remembers the member (by digest) so a re-sent record of theirs is a duplicate. Idempotent.
    Returns counts (never ids) for the log."""
    table = DeletedMember.__table__  # type: ignore[attr-defined]
    stmt = db.insert_for(session)(table).values([{"member_key": member_key(member_id),
                                                  "requested_at": requested_at, "deleted_at": now}])
    new = stmt.excluded
    session.execute(stmt.on_conflict_do_update(index_elements=["member_key"], set_={
        "requested_at": case((new.requested_at > table.c.requested_at, new.requested_at),
                             else_=table.c.requested_at),
        "deleted_at": new.deleted_at}))

    posts = session.exec(select(AcceptedPost.post_id, AcceptedPost.payload).where(
        col(AcceptedPost.author_id) == member_id)).all()
    gone = [pid for pid, payload in posts if _created(payload) <= requested_at]
    kept = {pid for pid, _ in posts} - set(gone)
    reactions = session.exec(select(AcceptedReaction.reaction_id, AcceptedReaction.payload).where(
        col(AcceptedReaction.from_author_id) == member_id)).all()
    erased = [rid for rid, payload in reactions if _created(payload) <= requested_at]
    n_reactions = 0
    for start in range(0, len(erased), 500):
        n_reactions += session.exec(delete(AcceptedReaction).where(  # type: ignore[call-overload]
            col(AcceptedReaction.reaction_id).in_(erased[start:start + 500]))).rowcount or 0
    for start in range(0, len(gone), 500):
        chunk = gone[start:start + 500]
        n_reactions += session.exec(delete(AcceptedReaction).where(  # type: ignore[call-overload]
            col(AcceptedReaction.post_id).in_(chunk))).rowcount or 0
        session.exec(delete(AcceptedPost).where(col(AcceptedPost.post_id).in_(chunk)))  # type: ignore[call-overload]

    # Replies by others are their content and stay, but their events carry the replied-to post's author and
    # text (`parent`): drop that from every reply to a deleted post, so a republish no longer carries it.
    needle = '"author_id":' + json.dumps(member_id, ensure_ascii=False)
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    candidates = session.exec(select(AcceptedPost.post_id, AcceptedPost.payload).where(
        col(AcceptedPost.author_id) != member_id,
        col(AcceptedPost.payload).like(f"%{escaped}%", escape="\\"))).all()
    detached = 0
    for post_id, payload in candidates:
        event = PostEvent.model_validate_json(payload)
        if event.parent is None or event.parent.author_id != member_id or event.parent.post_id in kept:
            continue
        session.exec(update(AcceptedPost).where(col(AcceptedPost.post_id) == post_id).values(  # type: ignore[call-overload]
            payload=event.model_copy(update={"parent": None}).model_dump_json()))
        detached += 1
    return {"posts": len(gone), "reactions": n_reactions, "replies_detached": detached}
