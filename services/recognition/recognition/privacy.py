"""Privacy of the people recognition scores: wellbeing opt-outs, the audit trail of burnout-risk reads, and the
deletion of a member (with the tombstone that keeps their content from coming back). Functions take the
session; the caller's unit of work commits."""

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, delete
from sqlmodel import Session, col, select, update

from recognition import repository
from recognition.models import (
    Acknowledgement,
    AlertState,
    DeletedMember,
    Member,
    PostLabel,
    StoredPost,
    StoredReaction,
    Thread,
    WellbeingOptOut,
    WellbeingRead,
)
from shared import db
from shared.events import ClassifiedPostEvent, ReactionEvent
from shared.members import member_key

# Stands in for a deleted member who opened a thread, so the others' posts in it stay directed at someone else
# (their labor keeps its credit). It contains a space, which no member id may.
DELETED = "(deleted member)"
_CHUNK = 500


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]


# --- opt-outs -------------------------------------------------------------------------------------------------

def set_opt_out(session: Session, member_id: str, *, opted_out: bool, by: str, now: datetime) -> None:
    table = WellbeingOptOut.__table__  # type: ignore[attr-defined]
    stmt = db.insert_for(session)(table).values([{"member_id": member_id, "opted_out": opted_out,
                                                  "updated_at": now, "updated_by": by}])
    stmt = stmt.on_conflict_do_update(index_elements=["member_id"], set_={
        "opted_out": stmt.excluded.opted_out, "updated_at": stmt.excluded.updated_at,
        "updated_by": stmt.excluded.updated_by})
    session.execute(stmt)


def opted_out(session: Session, member_ids: Sequence[str] | None = None) -> set[str]:
    """The members (among `member_ids`, or all) who opted out of wellbeing scoring."""
    t = WellbeingOptOut
    if member_ids is None:
        return set(session.exec(select(t.member_id).where(col(t.opted_out))).all())
    found: set[str] = set()
    for chunk in _chunks(sorted(set(member_ids))):
        found.update(db.scalars(session, _OPTED_OUT_AMONG, {"members": list(chunk)}).all())
    return found


# Built once: these run on every risk read served from the snapshot, where building a statement costs more
# than running it.
_OPTED_OUT_SINCE = select(WellbeingOptOut.member_id).where(col(WellbeingOptOut.opted_out),
                                                           col(WellbeingOptOut.updated_at) > bindparam("since"))
_DELETED_SINCE = select(DeletedMember.member_key).where(col(DeletedMember.deleted_at) > bindparam("since"))
_OPTED_OUT_AMONG = select(WellbeingOptOut.member_id).where(
    col(WellbeingOptOut.opted_out), col(WellbeingOptOut.member_id).in_(bindparam("members", expanding=True)))


def hidden_since(session: Session, *, since: datetime) -> tuple[set[str], set[str]]:
    """(members opted out of wellbeing scoring after `since`, digests of members deleted after `since`): who must
    be dropped from a list computed at `since`. Both are few, and indexed by time. A deletion counts from when it
    was applied here, not when it was requested: one requested long ago may reach this service late."""
    opted = set(db.scalars(session, _OPTED_OUT_SINCE, {"since": since}).all())
    deleted = set(db.scalars(session, _DELETED_SINCE, {"since": since}).all())
    return opted, deleted


# --- the audit trail ------------------------------------------------------------------------------------------

_READ_COLUMNS = ("read_id", "reader", "member_id", "endpoint", "read_at", "as_of")
_ROWS_PER_INSERT = 100  # 600 parameters: under SQLite's oldest limit (999)


def record_reads(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Inserts audit rows, up to a hundred in one multi-row statement sent straight to the driver.

    Why not the alternatives: an executemany releases and retakes the GIL for every row, and among busy request
    threads each retake waits its turn, so 50 rows took 90 ms where they take 0.6 ms alone; a multi-row
    `insert().values(rows)` is one statement, but SQLAlchemy spends 5 ms of CPU building each one."""
    conn = session.connection()
    convert = _converters(conn.dialect)
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start:start + _ROWS_PER_INSERT]
        params: list[Any] = []
        for row in chunk:
            for name, to_db in zip(_READ_COLUMNS, convert, strict=True):
                value = row[name]
                params.append(to_db(value) if to_db is not None and value is not None else value)
        conn.exec_driver_sql(_insert_sql(_POSITIONAL_MARK[conn.dialect.paramstyle], len(chunk)), tuple(params))
    session.flush()


# The positional placeholder of each paramstyle the project's engines use (`db.make_engine`): sqlite3's qmark,
# psycopg's pyformat, which also takes positional `%s` with a tuple.
_POSITIONAL_MARK = {"qmark": "?", "format": "%s", "pyformat": "%s"}


@functools.cache
def _converters(dialect: Any) -> list[Any]:
    """Each audit column's own conversion to the driver's value on this dialect (None: passed as is)."""
    table = WellbeingRead.__table__  # type: ignore[attr-defined]
    return [table.c[name].type.bind_processor(dialect) for name in _READ_COLUMNS]


@functools.cache
def _insert_sql(mark: str, rows: int) -> str:
    one = "(" + ", ".join([mark] * len(_READ_COLUMNS)) + ")"
    return (f"INSERT INTO {WellbeingRead.__tablename__} ({', '.join(_READ_COLUMNS)}) VALUES "
            + ", ".join([one] * rows))


def reads(session: Session, *, since: datetime, until: datetime, limit: int) -> list[WellbeingRead]:
    t = WellbeingRead
    stmt = (select(t).where(col(t.read_at) >= since, col(t.read_at) <= until)
            .order_by(col(t.read_at), col(t.audit_id)).limit(limit))
    return list(session.exec(stmt).all())


def forget_reads(session: Session, member_id: str, *, now: datetime) -> int:
    """A deleted member's rows of the audit trail (a session on the audit database: `AuditSettings`): every read
    of their risk until now was a read of the erased history."""
    return int(session.exec(delete(WellbeingRead).where(  # type: ignore[call-overload]
        col(WellbeingRead.member_id) == member_id, col(WellbeingRead.read_at) <= now)).rowcount or 0)


# --- deletion -------------------------------------------------------------------------------------------------

def tombstones(session: Session, member_ids: Iterable[str]) -> dict[str, datetime]:
    """member id -> the latest deletion requested for it, for the deleted ones among `member_ids`."""
    keys = {member_key(m): m for m in set(member_ids)}
    found: dict[str, datetime] = {}
    for chunk in _chunks(sorted(keys)):
        stmt = select(DeletedMember.member_key, DeletedMember.requested_at).where(
            col(DeletedMember.member_key).in_(chunk))
        for key, at in session.exec(stmt).all():
            found[keys[key]] = db.as_utc(at)  # type: ignore[assignment]
    return found


def without_deleted(session: Session, posts: Sequence[ClassifiedPostEvent], reactions: Sequence[ReactionEvent]
                    ) -> tuple[list[ClassifiedPostEvent], list[ReactionEvent], int]:
    """Drops what deleted members created at or before their deletion (in flight, or replayed), and the reply
    context naming them; returns the posts and reactions to store and how many were dropped."""
    people = {p.author_id for p in posts} | {p.parent.author_id for p in posts if p.parent is not None}
    people |= {r.from_author_id for r in reactions}
    gone = tombstones(session, people) if people else {}
    if not gone:
        return list(posts), list(reactions), 0

    def erased(member: str, created: datetime) -> bool:
        at = gone.get(member)
        return at is not None and created <= at

    kept_posts = []
    for p in posts:
        if erased(p.author_id, p.created_at):
            continue
        if p.parent is not None and p.parent.author_id in gone:
            # The parent is the deleted member's: if it is still stored (created after the deletion), the
            # reply's target is found there; otherwise the reply is directed at no one.
            p = p.model_copy(update={"parent": None})
        kept_posts.append(p)
    kept_reactions = [r for r in reactions if not erased(r.from_author_id, r.created_at)]
    return kept_posts, kept_reactions, len(posts) - len(kept_posts) + len(reactions) - len(kept_reactions)


def _tombstone(session: Session, member_id: str, *, requested_at: datetime, now: datetime) -> None:
    table = DeletedMember.__table__  # type: ignore[attr-defined]
    stmt = db.insert_for(session)(table).values([{"member_key": member_key(member_id),
                                                  "requested_at": requested_at, "deleted_at": now}])
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(index_elements=["member_key"], set_={
        "requested_at": case((new.requested_at > table.c.requested_at, new.requested_at),
                             else_=table.c.requested_at),
        "deleted_at": new.deleted_at})
    session.execute(stmt)


def delete_member(session: Session, member_id: str, *, requested_at: datetime, now: datetime) -> dict[str, int]:
    """Removes the member's content created at or before `requested_at` and everything derived from it:
    posts, their labels, reactions by them and to their posts, acknowledgements, opt-out, alert states, the
    audit rows naming them, their member row; replies by others stay (their content) but are directed at no
    one, so they no longer count as received by the member. Idempotent. Returns counts (no ids) for the log."""
    _tombstone(session, member_id, requested_at=requested_at, now=now)
    p = StoredPost
    own = list(session.exec(select(p.post_id).where(col(p.author_id) == member_id,
                                                    col(p.created_at) <= requested_at)).all())
    # Whose risk the deletion changes besides theirs: whom their posts and reactions were directed at, and (below)
    # the authors of the replies to them, whose credit is judged again.
    affected = set(session.exec(select(p.target_author_id).where(
        col(p.author_id) == member_id, col(p.created_at) <= requested_at, col(p.target_author_id).is_not(None))).all())
    affected.update(session.exec(select(StoredReaction.recipient_id).where(
        col(StoredReaction.from_author_id) == member_id, col(StoredReaction.created_at) <= requested_at,
        col(StoredReaction.recipient_id).is_not(None))).all())
    # Other answers to the questions they answered: whether those were repeats depended on theirs.
    affected |= repository.answerers(session, session.exec(select(PostLabel.reply_to_post_id).where(
        col(PostLabel.author_id) == member_id, col(PostLabel.label) == "newcomer_answer",
        col(PostLabel.created_at) <= requested_at, col(PostLabel.reply_to_post_id).is_not(None))).all())
    found: set[str] = set()
    for chunk in _chunks(own):
        found.update(session.exec(select(p.post_id).where(col(p.reply_to_post_id).in_(chunk),
                                                          col(p.author_id) != member_id)).all())
    # Also replies whose parent never reached this service (the target came with the event's reply context),
    # but not replies to posts the member wrote after the deletion was requested.
    later = select(p.post_id).where(col(p.author_id) == member_id, col(p.created_at) > requested_at)
    found.update(session.exec(select(p.post_id).where(
        col(p.target_author_id) == member_id, col(p.author_id) != member_id,
        col(p.reply_to_post_id).not_in(later))).all())
    replies = sorted(found)
    for chunk in _chunks(replies):
        session.exec(update(StoredPost).where(col(StoredPost.post_id).in_(chunk))  # type: ignore[call-overload]
                     .values(target_author_id=None))
        session.exec(update(PostLabel).where(col(PostLabel.post_id).in_(chunk))  # type: ignore[call-overload]
                     .values(target_author_id=None))
    reactions = session.exec(delete(StoredReaction).where(  # type: ignore[call-overload]
        col(StoredReaction.from_author_id) == member_id, col(StoredReaction.created_at) <= requested_at)).rowcount
    for chunk in _chunks(own):
        # The thread they opened stays (others posted in it) but no longer names them or carries their title.
        session.exec(update(Thread).where(col(Thread.opener_post_id).in_(chunk))  # type: ignore[call-overload]
                     .values(opener_post_id=DELETED, opener_author_id=DELETED, title=None))
        reactions += session.exec(delete(StoredReaction).where(  # type: ignore[call-overload]
            col(StoredReaction.post_id).in_(chunk))).rowcount
        session.exec(delete(PostLabel).where(col(PostLabel.post_id).in_(chunk)))  # type: ignore[call-overload]
        session.exec(delete(StoredPost).where(col(StoredPost.post_id).in_(chunk)))  # type: ignore[call-overload]
        session.exec(delete(AlertState).where(  # type: ignore[call-overload]
            col(AlertState.alert_key).in_([f"venting:{post_id}" for post_id in chunk])))
    if replies:
        # A reply to a post that no longer exists is judged like one whose parent is unknown: by the thread.
        affected |= repository.recredit(session, replies)
    acks = session.exec(delete(Acknowledgement).where(  # type: ignore[call-overload]
        col(Acknowledgement.member_id) == member_id, col(Acknowledgement.recorded_at) <= requested_at)).rowcount
    session.exec(delete(AlertState).where(col(AlertState.alert_key) == f"risk:{member_id}"))  # type: ignore[call-overload]
    session.exec(delete(WellbeingOptOut).where(  # type: ignore[call-overload]
        col(WellbeingOptOut.member_id) == member_id, col(WellbeingOptOut.updated_at) <= requested_at))
    session.exec(delete(Member).where(col(Member.member_id) == member_id))  # type: ignore[call-overload]
    repository.touch_members(session, affected - {member_id}, now=now)
    return {"posts": len(own), "replies_detached": len(replies), "reactions": int(reactions or 0),
            "acknowledgements": int(acks or 0)}
