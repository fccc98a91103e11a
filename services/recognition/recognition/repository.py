"""Queries on recognition's tables. Functions take the session; the caller's unit of work commits."""

import functools
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Integer, bindparam, case, func, literal
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select, update

from recognition import flaw_topics, health, risk
from recognition.models import Acknowledgement, Member, PostLabel, StoredPost, StoredReaction, Thread
from shared import db
from shared.events import ClassifiedPostEvent, ReactionEvent
from shared.labels import FLAW_LABELS, LABOR_LABELS, RECEIVED_LABELS, RESEARCH_LABELS


def _lookup(session: Session, key: Any, value: Any, ids: Iterable[str]) -> dict[str, str]:
    """`{key: value}` for rows whose `key` is in `ids`, in chunks under the databases' parameter limits."""
    wanted = sorted(set(ids))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        stmt = select(key, value).where(col(key).in_(wanted[start:start + 500]))
        found.update(dict(session.exec(stmt).all()))
    return found


def authors_of(session: Session, post_ids: Sequence[str]) -> dict[str, str]:
    return _lookup(session, StoredPost.post_id, StoredPost.author_id, post_ids)


def store_posts(session: Session, events: Sequence[ClassifiedPostEvent], *, now: datetime, zone: tzinfo) -> list[str]:
    """Stores classified posts not stored before; returns the ids newly stored."""
    # A post redelivered within one batch (say, republished after a classifier restart) counts once, as
    # first seen: without this, both versions' labels would be credited.
    firsts: dict[str, ClassifiedPostEvent] = {}
    for e in events:
        firsts.setdefault(e.post_id, e)
    events = list(firsts.values())
    in_batch = {e.post_id: e.author_id for e in events}
    unresolved = [e.reply_to_post_id for e in events
                  if e.reply_to_post_id and e.parent is None and e.reply_to_post_id not in in_batch]
    known = authors_of(session, unresolved) if unresolved else {}
    openers_changed = _upsert_threads(session, events)
    openers = thread_openers(session, {e.thread_id for e in events})
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
        local = e.created_at.astimezone(zone)
        directed = is_directed(author=e.author_id, reply_to=e.reply_to_post_id, target=target,
                               opener=openers.get(e.thread_id))
        label_rows.extend({
            "post_id": e.post_id, "label": label, "author_id": e.author_id, "target_author_id": target,
            "reply_to_post_id": e.reply_to_post_id, "thread_id": e.thread_id, "is_official": e.is_official,
            "credited": credits(label, official=e.is_official, directed=directed),
            "day": local.date().isoformat(), "hour": local.hour, "component": c.component,
            "conditions": ",".join(c.conditions),
            "created_at": e.created_at} for label in c.labels)
    inserted = set(db.insert_ignore(session, StoredPost.__table__, rows, key=["post_id"], returning="post_id"))  # type: ignore[attr-defined]
    db.insert_ignore(session, PostLabel.__table__, [r for r in label_rows if r["post_id"] in inserted],  # type: ignore[attr-defined]
                     key=["post_id", "label"])
    fresh = [e for e in events if e.post_id in inserted]
    authors = {e.post_id: e.author_id for e in fresh}
    orphans = _backfill_targets(session, authors)
    stale = orphans + _unreplied_posts(session, openers_changed, exclude=set(inserted))
    recredited = recredit(session, stale) if stale else set()
    _upsert_members(session, fresh, now=now)
    # Whose risk the batch changed besides the authors': whom they replied to (received labels, and the
    # reactions `fill_recipients` attributes to the new posts' authors), and the authors of posts re-credited.
    targets = {r["target_author_id"] for r in rows if r["post_id"] in inserted and r["target_author_id"]}
    # And whose answers a new answer may have made repeats of (it can arrive after them yet be dated before).
    questions = {r["reply_to_post_id"] for r in label_rows if r["post_id"] in inserted and r["reply_to_post_id"]
                 and r["label"] == "newcomer_answer"}
    touch_members(session, (targets | recredited | answerers(session, questions)) - set(authors.values()), now=now)
    fill_recipients(session, list(authors))
    return [e.post_id for e in fresh]


def answerers(session: Session, question_ids: Iterable[str]) -> set[str]:
    """Authors of `newcomer_answer` replies to these posts: whether each answer is a repeat depends on the others."""
    ids = sorted(set(question_ids))
    found: set[str] = set()
    t = PostLabel
    for start in range(0, len(ids), 500):
        # The label is filtered here, not in SQL, for the planner's sake (see `histories`).
        stmt = select(t.author_id, t.label).where(col(t.reply_to_post_id).in_(ids[start:start + 500]))
        found.update(author for author, label in session.exec(stmt).all() if label == "newcomer_answer")
    return found


def touch_members(session: Session, member_ids: Iterable[str], *, now: datetime) -> None:
    """Marks what goes into these members' risk as changed at `now` (see `Member.changed_at`)."""
    ids = sorted(set(member_ids))
    for start in range(0, len(ids), 500):
        session.exec(update(Member).where(col(Member.member_id).in_(ids[start:start + 500]))  # type: ignore[call-overload]
                     .values(changed_at=now))


# The per-member reads behind single-member answers are built once with bound parameters: building and
# compiling a statement cost about three times what SQLite takes to run it (0.24 against 0.08 ms per read
# at 1M posts), and a ledger or a thank-you draft is eight such reads.
_MEMBER, _AS_OF, _SINCE, _UNTIL = bindparam("member"), bindparam("as_of"), bindparam("since"), bindparam("until")
_CHANGED_AT = select(Member.member_id, Member.changed_at).where(col(Member.member_id) == _MEMBER)


def changed_at(session: Session, member_id: str) -> tuple[bool, datetime | None]:
    """(whether the member has a row, when what goes into their risk last changed)."""
    found = db.rows(session, _CHANGED_AT, {"member": member_id}).first()
    return (False, None) if found is None else (True, db.as_utc(found[1]))


def is_directed(*, author: str, reply_to: str | None, target: str | None, opener: str | None) -> bool:
    """Labor counts only when it is done for someone else: a reply to another member's post, or a post in a
    thread another member opened (also the fallback while a reply's parent is unknown)."""
    if reply_to is not None and target is not None:
        return target != author
    return opener is not None and opener != author


def credits(label: str, *, official: bool, directed: bool) -> bool:
    if official:
        return False
    if label in LABOR_LABELS:
        return directed
    return label in RESEARCH_LABELS


def thread_openers(session: Session, thread_ids: Iterable[str]) -> dict[str, str]:
    return _lookup(session, Thread.thread_id, Thread.opener_author_id, thread_ids)


def _upsert_threads(session: Session, events: Sequence[ClassifiedPostEvent]) -> list[str]:
    """Records the earliest post that replies to no one as each thread's opener; returns the threads whose
    opener this batch set or changed (their other unreplied posts need their credit recomputed)."""
    earliest: dict[str, ClassifiedPostEvent] = {}
    for e in events:
        if e.reply_to_post_id is None:
            seen = earliest.get(e.thread_id)
            if seen is None or (e.created_at, e.post_id) < (seen.created_at, seen.post_id):
                earliest[e.thread_id] = e
    if not earliest:
        return []
    before = thread_openers(session, earliest)
    table = Thread.__table__  # type: ignore[attr-defined]
    rows = [{"thread_id": t, "opener_post_id": e.post_id, "opener_author_id": e.author_id, "title": e.title,
             "created_at": e.created_at} for t, e in earliest.items()]
    # Rows as executemany parameters, not `.values(rows)`: see `db.insert_ignore`.
    stmt = db.insert_for(session)(table)
    new = stmt.excluded
    # Ties on time go to the smaller post id in code-point order, as in the batch above (PostgreSQL's "C"
    # collation is code-point order; SQLite compares bytes, which for UTF-8 is the same).
    new_id, old_id = new.opener_post_id, table.c.opener_post_id
    if session.get_bind().dialect.name == "postgresql":
        new_id, old_id = new_id.collate("C"), old_id.collate("C")
    earlier = (new.created_at < table.c.created_at) | ((new.created_at == table.c.created_at) & (new_id < old_id))
    # The title is the opener's own, so it never depends on which later post arrived first.
    stmt = stmt.on_conflict_do_update(index_elements=["thread_id"], set_={
        "opener_post_id": case((earlier, new.opener_post_id), else_=table.c.opener_post_id),
        "opener_author_id": case((earlier, new.opener_author_id), else_=table.c.opener_author_id),
        "title": case((earlier, new.title), else_=table.c.title),
        "created_at": case((earlier, new.created_at), else_=table.c.created_at),
    })
    session.execute(stmt, rows)
    after = thread_openers(session, earliest)
    return [t for t in earliest if before.get(t) != after.get(t)]


def _unreplied_posts(session: Session, thread_ids: Sequence[str], *, exclude: set[str]) -> list[str]:
    found: list[str] = []
    for start in range(0, len(thread_ids), 500):
        stmt = select(StoredPost.post_id).where(col(StoredPost.thread_id).in_(thread_ids[start:start + 500]))
        found.extend(p for p in session.exec(stmt).all() if p not in exclude)
    return found


def recredit(session: Session, post_ids: Sequence[str]) -> set[str]:
    """Recomputes `credited` on posts whose reply target or thread opener became known after they were stored;
    returns the posts' authors."""
    posts: list[tuple[str, str, str | None, str | None, str, bool]] = []
    for start in range(0, len(post_ids), 500):
        stmt = select(StoredPost.post_id, StoredPost.author_id, StoredPost.reply_to_post_id,
                      StoredPost.target_author_id, StoredPost.thread_id, StoredPost.is_official
                      ).where(col(StoredPost.post_id).in_(post_ids[start:start + 500]))
        posts.extend(session.exec(stmt).all())  # type: ignore[arg-type]
    openers = thread_openers(session, {p[4] for p in posts})
    verdict: dict[bool, list[str]] = {True: [], False: []}
    for post_id, author, reply_to, target, thread, official in posts:
        directed = is_directed(author=author, reply_to=reply_to, target=target, opener=openers.get(thread))
        verdict[directed and not official].append(post_id)
    for value, ids in verdict.items():
        for start in range(0, len(ids), 500):
            session.exec(update(PostLabel).where(  # type: ignore[call-overload]
                col(PostLabel.post_id).in_(ids[start:start + 500]), col(PostLabel.label).in_(LABOR_LABELS)
            ).values(credited=value))
    return {p[1] for p in posts}


def _target(e: ClassifiedPostEvent, in_batch: dict[str, str], known: dict[str, str]) -> str | None:
    if e.reply_to_post_id is None:
        return None
    if e.parent is not None:
        return e.parent.author_id
    return in_batch.get(e.reply_to_post_id) or known.get(e.reply_to_post_id)


def _backfill_targets(session: Session, authors: dict[str, str]) -> list[str]:
    """Replies stored before the post they answer get their target once that post arrives; returns them."""
    if not authors:
        return []
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
    return [post_id for post_id, _ in orphans]


def _upsert_members(session: Session, events: Sequence[ClassifiedPostEvent], *, now: datetime) -> None:
    merged: dict[str, dict[str, Any]] = {}
    for e in sorted(events, key=lambda ev: ev.created_at):
        row = merged.setdefault(e.author_id, {"member_id": e.author_id, "display_name": None, "joined_at": None,
                                              "is_official": False, "first_seen": e.created_at,
                                              "changed_at": now})
        row["last_seen"] = e.created_at
        if e.author is not None:
            row["display_name"] = e.author.display_name or row["display_name"]
            row["joined_at"] = e.author.joined_at or row["joined_at"]
            row["is_official"] = row["is_official"] or e.author.is_official
    if not merged:
        return
    table = Member.__table__  # type: ignore[attr-defined]
    stmt = db.insert_for(session)(table)
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
        "changed_at": new.changed_at,
    })
    session.execute(stmt, list(merged.values()))


def store_reactions(session: Session, events: Sequence[ReactionEvent], *, now: datetime) -> int:
    # The recipient (the post's author) is stored when the post is known, and set when the post arrives. A
    # reaction and its post stored at the same time by two replicas cannot see each other: that recipient stays
    # NULL until `fill_recipients` runs, and reads join NULL rows to their post meanwhile, so they still count.
    known = authors_of(session, [e.post_id for e in events])
    rows = [{"reaction_id": e.reaction_id, "post_id": e.post_id, "from_author_id": e.from_author_id,
             "kind": e.kind, "created_at": e.created_at, "recipient_id": known.get(e.post_id)} for e in events]
    fresh = set(db.insert_ignore(session, StoredReaction.__table__, rows, key=["reaction_id"],  # type: ignore[attr-defined]
                                 returning="reaction_id"))
    # A reaction whose post is not here yet touches its recipient when the post arrives (as its author).
    touch_members(session, {r["recipient_id"] for r in rows if r["reaction_id"] in fresh and r["recipient_id"]},
                  now=now)
    return len(fresh)


def fill_recipients(session: Session, post_ids: Sequence[str] | None = None) -> int:
    """Sets the recipient of reactions stored before their post (of `post_ids`, or of every stored post);
    returns how many it set."""
    r = StoredReaction.__table__  # type: ignore[attr-defined]
    author = select(StoredPost.author_id).where(col(StoredPost.post_id) == r.c.post_id).scalar_subquery()
    if post_ids is None:
        chunks: list[Any] = [select(StoredPost.post_id)]
    else:
        chunks = [post_ids[start:start + 500] for start in range(0, len(post_ids), 500)]
    return sum(session.execute(r.update().where(r.c.recipient_id.is_(None), r.c.post_id.in_(chunk))  # type: ignore[attr-defined]
                               .values(recipient_id=author)).rowcount for chunk in chunks)


def get_post(session: Session, post_id: str) -> StoredPost | None:
    return session.get(StoredPost, post_id)


_HAS_POSTED = select(StoredPost.post_id).where(col(StoredPost.author_id) == _MEMBER,
                                               col(StoredPost.created_at) <= _AS_OF).limit(1)


def has_posted(session: Session, member_id: str, *, as_of: datetime) -> bool:
    """Whether the member had any post by `as_of` (stops at the first, unlike `activity`'s count)."""
    return db.rows(session, _HAS_POSTED, {"member": member_id, "as_of": as_of}).first() is not None


_ACTIVITY = select(func.count(), func.min(StoredPost.created_at), func.max(StoredPost.created_at)).where(
    col(StoredPost.author_id) == _MEMBER, col(StoredPost.created_at) <= _AS_OF)


def activity(session: Session, member_id: str, *, as_of: datetime) -> tuple[int, datetime | None, datetime | None]:
    """(posts, first post, last post) of a member up to `as_of`."""
    n, first, last = db.rows(session, _ACTIVITY, {"member": member_id, "as_of": as_of}).one()
    return int(n), db.as_utc(first), db.as_utc(last)


def _labels_by_author_statement() -> Any:
    days = (select(PostLabel.label, func.count().label("n")).where(
        col(PostLabel.author_id) == _MEMBER, col(PostLabel.credited),
        col(PostLabel.label).in_(LABOR_LABELS + RESEARCH_LABELS), col(PostLabel.created_at) <= _AS_OF)
        .group_by(col(PostLabel.label), col(PostLabel.day)).subquery())
    # Capped per day in SQL: a busy member has thousands of (label, day) groups and only a handful of labels.
    cap = bindparam("cap", type_=Integer)
    return select(days.c.label, func.sum(case((days.c.n > cap, cap), else_=days.c.n))).group_by(days.c.label)


_LABELS_BY_AUTHOR = _labels_by_author_statement()


def labels_by_author(session: Session, member_id: str, *, as_of: datetime, daily_cap: int) -> dict[str, int]:
    """Credited labor and research labels of a member, at most `daily_cap` of a label per local day."""
    rows = db.rows(session, _LABELS_BY_AUTHOR, {"member": member_id, "as_of": as_of, "cap": daily_cap})
    return {label: int(n) for label, n in rows}


_LABELS_RECEIVED = (select(PostLabel.label, func.count()).where(
    col(PostLabel.target_author_id) == _MEMBER, col(PostLabel.author_id) != _MEMBER,
    col(PostLabel.label).in_(RECEIVED_LABELS), col(PostLabel.created_at) <= _AS_OF)
    .group_by(col(PostLabel.label)))


def labels_received(session: Session, member_id: str, *, as_of: datetime) -> dict[str, int]:
    rows = db.rows(session, _LABELS_RECEIVED, {"member": member_id, "as_of": as_of})
    return {label: int(n) for label, n in rows}


def _reactions_received_statements() -> tuple[Any, Any]:
    r, p = StoredReaction, StoredPost
    # Reactions from others over the member's whole history: by the stored recipient, plus those whose
    # recipient is not filled in yet joined to their post (see `store_reactions`).
    stored = select(func.count()).select_from(r).where(
        col(r.recipient_id) == _MEMBER, col(r.from_author_id) != _MEMBER, col(r.created_at) <= _AS_OF)
    joined = (select(func.count()).select_from(r).join(p, col(p.post_id) == col(r.post_id))
              .where(col(r.recipient_id).is_(None), col(p.author_id) == _MEMBER, col(r.from_author_id) != _MEMBER,
                     col(r.created_at) <= _AS_OF))
    return stored, joined


_REACTIONS_RECEIVED = _reactions_received_statements()


def reactions_received(session: Session, member_id: str, *, as_of: datetime) -> int:
    params = {"member": member_id, "as_of": as_of}
    return sum(int(db.scalars(session, stmt, params).one()) for stmt in _REACTIONS_RECEIVED)


def _in(column: Any, ids: Sequence[str] | None) -> Any:
    return column.in_(ids) if ids is not None else True


@functools.cache
def _history_statements(every: bool) -> dict[str, Any]:
    """`histories`' reads, for every member or for the bound list `members`, with the window's bounds bound."""
    def among(column: Any) -> Any:
        return True if every else column.in_(bindparam("members", expanding=True))

    t, r, p, a = PostLabel, StoredReaction, StoredPost, Acknowledgement
    start, recent_start = bindparam("start"), bindparam("recent_start")
    in_window = [col(t.created_at) > start, col(t.created_at) <= _AS_OF]
    reacted = [col(r.created_at) > start, col(r.created_at) <= _AS_OF]
    created = col(p.created_at)
    return {
        "labor": select(t.post_id, t.author_id, t.label, t.created_at, t.day, t.hour, t.reply_to_post_id).where(
            col(t.credited), col(t.label).in_(LABOR_LABELS), *in_window, among(col(t.author_id))),
        # The label is filtered by the caller, not in SQL: with `label = ...` in the WHERE, SQLite's planner may
        # walk the label's whole history instead of the replies to these few posts.
        "answers": select(t.reply_to_post_id, t.created_at, t.post_id, t.label).where(
            col(t.reply_to_post_id).in_(bindparam("parents", expanding=True)), col(t.created_at) <= _AS_OF),
        "received": select(t.post_id, t.target_author_id, t.label, t.created_at).where(
            col(t.label).in_(RECEIVED_LABELS), col(t.target_author_id).is_not(None),
            col(t.target_author_id) != col(t.author_id), *in_window, among(col(t.target_author_id))),
        # Reactions from others: by the stored recipient, plus those whose recipient is not filled in yet joined
        # to their post (few: see `store_reactions`).
        "reactions_stored": select(r.recipient_id, r.kind, func.count()).where(
            col(r.recipient_id).is_not(None), col(r.recipient_id) != col(r.from_author_id), *reacted,
            among(col(r.recipient_id))).group_by(col(r.recipient_id), col(r.kind)),
        "reactions_joined": select(p.author_id, r.kind, func.count()).select_from(r).join(
            p, col(p.post_id) == col(r.post_id)).where(
            col(r.recipient_id).is_(None), col(p.author_id) != col(r.from_author_id), *reacted,
            among(col(p.author_id))).group_by(col(p.author_id), col(r.kind)),
        # Recorded by as_of too: a back-dated acknowledgement must not rewrite answers already given.
        "acknowledgements": select(a.member_id, a.kind, func.count()).where(
            col(a.created_at) > start, col(a.created_at) <= _AS_OF, col(a.recorded_at) <= _AS_OF,
            among(col(a.member_id))).group_by(col(a.member_id), col(a.kind)),
        "activity": select(p.author_id, func.sum(case((created > recent_start, 1), else_=0)),
                           func.sum(case((created <= recent_start, 1), else_=0))).where(
            created > bindparam("base_start"), created <= _AS_OF, among(col(p.author_id))).group_by(col(p.author_id)),
    }


def histories(session: Session, *, member_ids: Sequence[str] | None, as_of: datetime, window_days: int,
              recent_days: int, baseline_days: int) -> dict[str, risk.History]:
    """Each member's window of labor, received signals, reactions, acknowledgements and activity, as of
    `as_of`, for the risk model. `member_ids=None` reads every member (the community snapshot)."""
    start = as_of - timedelta(days=window_days)
    out: dict[str, risk.History] = {}

    def get(member_id: str) -> risk.History:
        h = out.get(member_id)
        if h is None:
            h = out[member_id] = risk.History(member_id)
        return h

    stmts = _history_statements(member_ids is None)
    recent_start = as_of - timedelta(days=recent_days)
    params: dict[str, Any] = {"start": start, "as_of": as_of, "recent_start": recent_start,
                              "base_start": recent_start - timedelta(days=baseline_days)}
    if member_ids is not None:
        params["members"] = list(member_ids)
    labor = db.rows(session, stmts["labor"], params).all()
    parents = sorted({r[6] for r in labor if r[2] == "newcomer_answer" and r[6]})
    earlier: dict[str, list[tuple[datetime, str]]] = {}
    for chunk in range(0, len(parents), 500):
        for parent, created, post_id, label in db.rows(
                session, stmts["answers"], {"parents": parents[chunk:chunk + 500], "as_of": as_of}).all():
            if label == "newcomer_answer":
                earlier.setdefault(parent, []).append((db.as_utc(created), post_id))  # type: ignore[arg-type]
    for post_id, author, label, created, day, hour, reply_to in labor:
        created = db.as_utc(created)
        repeat = label == "newcomer_answer" and reply_to is not None and any(
            other < (created, post_id) for other in earlier.get(reply_to, ()))
        get(author).labor.append(risk.LaborPost(post_id, label, created, day, hour, repeat))  # type: ignore[arg-type]

    for post_id, target, label, created in db.rows(session, stmts["received"], params).all():
        get(target).received.append(risk.Received(post_id, label, db.as_utc(created)))  # type: ignore[arg-type]

    for half in ("reactions_stored", "reactions_joined"):
        for member, kind, n in db.rows(session, stmts[half], params).all():
            get(member).reactions[kind] += int(n)

    for member, kind, n in db.rows(session, stmts["acknowledgements"], params).all():
        get(member).acknowledgements[kind] += int(n)

    for member, recent, baseline in db.rows(session, stmts["activity"], params).all():
        h = get(member)
        h.recent_posts, h.baseline_posts = int(recent or 0), int(baseline or 0)
    officials = staff(session, list(out), as_of=as_of)
    return {m: h for m, h in out.items() if m not in officials}


_STAFF = select(StoredPost.author_id).where(
    col(StoredPost.is_official) == True,  # noqa: E712  (an equality the staff index can seek)
    col(StoredPost.author_id).in_(bindparam("members", expanding=True)), col(StoredPost.created_at) <= _AS_OF
).distinct()


def staff(session: Session, member_ids: Sequence[str], *, as_of: datetime) -> set[str]:
    """Members who had posted as brand staff by `as_of` (so a later staff post does not rewrite the past)."""
    found: set[str] = set()
    for start in range(0, len(member_ids), 500):
        found.update(db.scalars(
            session, _STAFF, {"members": list(member_ids[start:start + 500]), "as_of": as_of}).all())
    return found


# One indexed seek per member, walking back from `as_of` to the first post that carries a name: a window over
# each member's whole history would read all their posts.
_NAME_AS_OF = (select(StoredPost.author_display_name)
               .where(col(StoredPost.author_id) == _MEMBER, col(StoredPost.created_at) <= _AS_OF,
                      col(StoredPost.author_display_name).is_not(None))
               .order_by(col(StoredPost.created_at).desc(), col(StoredPost.post_id).desc()).limit(1))


def names_as_of(session: Session, member_ids: Sequence[str], *, as_of: datetime) -> dict[str, str | None]:
    """Each member's display name on their latest post at or before `as_of`."""
    found: dict[str, str | None] = {}
    for member in dict.fromkeys(member_ids):
        name = db.scalars(session, _NAME_AS_OF, {"member": member, "as_of": as_of}).first()
        if name is not None:
            found[member] = name
    return found


def names_of_all(session: Session, member_ids: Sequence[str], *, as_of: datetime) -> dict[str, str | None]:
    """`names_as_of` for many members in one grouped read (a seek per member is seconds at 50,000 members): the
    name on each member's latest post at or before `as_of` that carries one, the larger post id on a tie."""
    p = StoredPost
    named = [col(p.created_at) <= as_of, col(p.author_display_name).is_not(None)]
    latest = (select(p.author_id, func.max(p.created_at).label("at")).where(*named)
              .group_by(col(p.author_id)).subquery())
    stmt = (select(p.author_id, p.post_id, p.author_display_name)
            .join(latest, (col(p.author_id) == latest.c.author_id) & (col(p.created_at) == latest.c.at))
            .where(*named))
    wanted = set(member_ids)
    best: dict[str, tuple[str, str]] = {}
    for member, post_id, name in session.exec(stmt).all():
        if member in wanted and (member not in best or post_id > best[member][0]):
            best[member] = (post_id, name)
    return {member: name for member, (_, name) in best.items()}


_ACKNOWLEDGEMENTS = select(func.count()).select_from(Acknowledgement).where(
    col(Acknowledgement.member_id) == _MEMBER, col(Acknowledgement.created_at) <= _AS_OF,
    col(Acknowledgement.recorded_at) <= _AS_OF)


def acknowledgements_count(session: Session, member_id: str, *, as_of: datetime) -> int:
    return int(db.scalars(session, _ACKNOWLEDGEMENTS, {"member": member_id, "as_of": as_of}).one())


def get_acknowledgement(session: Session, acknowledgement_id: str) -> Acknowledgement | None:
    return session.get(Acknowledgement, acknowledgement_id)


def add_acknowledgement(session: Session, row: dict[str, Any]) -> bool:
    """Inserts an acknowledgement; False when its id was recorded before (a retried request)."""
    return bool(db.insert_ignore(session, Acknowledgement.__table__, [row], key=["acknowledgement_id"],  # type: ignore[attr-defined]
                                 returning="acknowledgement_id"))


def own_counts(session: Session, *, labels: Sequence[str], since: datetime, until: datetime, daily_cap: int,
               member_ids: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
    """Credited posts per member and label in [since, until], at most `daily_cap` per label and local day."""
    t = PostLabel
    stmt = select(t.author_id, t.label, t.day, func.count()).where(
        col(t.credited), col(t.label).in_(labels), col(t.created_at) >= since, col(t.created_at) <= until,
        _in(col(t.author_id), member_ids)).group_by(col(t.author_id), col(t.label), col(t.day))
    out: dict[str, dict[str, int]] = {}
    for author, label, _, n in session.exec(stmt).all():
        per = out.setdefault(author, {})
        per[label] = per.get(label, 0) + min(int(n), daily_cap)
    return out


def echo_counts(session: Session, *, own: Sequence[str], echo: Sequence[str], since: datetime, until: datetime,
                member_ids: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
    """Replies by others, in [since, until], carrying an `echo` label, to a member's credited `own` posts."""
    reply, parent = aliased(PostLabel), aliased(PostLabel)
    # Distinct (replier, post) pairs: one friend thanking the same answer 25 times is one echo.
    pair = col(reply.author_id) + literal(":") + col(parent.post_id)
    stmt = (select(parent.author_id, reply.label, func.count(func.distinct(pair)))
            .join(parent, col(parent.post_id) == col(reply.reply_to_post_id))
            .where(col(parent.label).in_(own), col(parent.credited), col(reply.label).in_(echo),
                   col(reply.author_id) != col(parent.author_id), col(reply.created_at) >= since,
                   col(reply.created_at) <= until, _in(col(parent.author_id), member_ids))
            .group_by(col(parent.author_id), col(reply.label)))
    out: dict[str, dict[str, int]] = {}
    for author, label, n in session.exec(stmt).all():
        out.setdefault(author, {})[label] = int(n)
    return out


@functools.cache
def _contributions_statement(labels: tuple[str, ...]) -> Any:
    t = PostLabel
    return (select(t.post_id, t.label, t.created_at, t.thread_id, t.target_author_id, t.component)
            .where(col(t.author_id) == _MEMBER, col(t.credited), col(t.label).in_(labels),
                   col(t.created_at) >= _SINCE, col(t.created_at) <= _UNTIL)
            .order_by(col(t.created_at).desc(), col(t.post_id)).limit(bindparam("limit", type_=Integer)))


_ECHOES = (select(PostLabel.reply_to_post_id, func.count(func.distinct(PostLabel.author_id)))
           .where(col(PostLabel.reply_to_post_id).in_(bindparam("posts", expanding=True)),
                  col(PostLabel.author_id) != _MEMBER,
                  col(PostLabel.label).in_(["gratitude", "defect_report", "defect_workaround"]),
                  col(PostLabel.created_at) <= _UNTIL)
           .group_by(col(PostLabel.reply_to_post_id)))
# Only the columns shown: whole rows would decode every post's scores and labels into objects.
_POSTS = select(StoredPost.post_id, StoredPost.evidence, StoredPost.title, StoredPost.content).where(
    col(StoredPost.post_id).in_(bindparam("posts", expanding=True)))
_THREADS = select(Thread.thread_id, Thread.title).where(col(Thread.thread_id).in_(bindparam("threads", expanding=True)))


def contributions(session: Session, member_id: str, *, labels: Sequence[str], since: datetime, until: datetime,
                  limit: int = 200, pick: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
                  ) -> list[dict[str, Any]]:
    """A member's credited posts with the given labels, newest first, with how many others thanked or confirmed
    them (`echo`); those `pick` keeps (all by default) also get their thread title, the member they answered
    and the classifier's evidence, which cost a read per post."""
    params = {"member": member_id, "since": since, "until": until, "limit": limit}
    rows = db.rows(session, _contributions_statement(tuple(labels)), params).all()
    if not rows:
        return []
    post_ids = sorted({r[0] for r in rows})
    echoes = {parent: int(n) for parent, n in db.rows(
        session, _ECHOES, {"posts": post_ids, "member": member_id, "until": until}).all()}
    found = [{"post_id": post_id, "label": label, "created_at": db.as_utc(created), "thread_id": thread_id,
              "target": target, "component": component, "echo": echoes.get(post_id, 0)}
             for post_id, label, created, thread_id, target, component in rows]
    if pick is not None:
        found = pick(found)
    picked = sorted({c["post_id"] for c in found})
    posts = {p.post_id: p for p in db.rows(session, _POSTS, {"posts": picked})}
    threads = dict(db.rows(  # type: ignore[arg-type]
        session, _THREADS, {"threads": sorted({c["thread_id"] for c in found})}).all())
    names = names_as_of(session, sorted({c["target"] for c in found if c["target"]}), as_of=until)
    for c in found:
        post, target = posts[c["post_id"]], c.pop("target")
        evidence = next((e.get("text") for e in post.evidence if e.get("label") == c["label"] and e.get("text")),
                        None)
        c.update(title=threads[c["thread_id"]] if c["thread_id"] in threads else post.title,
                 excerpt=evidence or post.content, target_name=names.get(target) if target else None)
    return found


def needs(session: Session, *, label: str, reply_label: str, since: datetime, until: datetime) -> list[health.Need]:
    """Members' posts with `label` in [since, until] and the first reply by someone else carrying `reply_label`."""
    post, reply = aliased(PostLabel), aliased(PostLabel)
    stmt = (select(post.post_id, post.created_at, func.min(reply.created_at))
            .outerjoin(reply, (col(reply.reply_to_post_id) == col(post.post_id)) & (col(reply.label) == reply_label)
                       & (col(reply.author_id) != col(post.author_id)) & (col(reply.created_at) <= until))
            .where(col(post.label) == label, col(post.is_official).is_(False), col(post.created_at) >= since,
                   col(post.created_at) <= until)
            .group_by(col(post.post_id), col(post.created_at)))
    return [health.Need(p, db.as_utc(c), db.as_utc(r)) for p, c, r in session.exec(stmt).all()]  # type: ignore[arg-type]


def posts_between(session: Session, *, since: datetime, until: datetime) -> int:
    created = col(StoredPost.created_at)
    stmt = select(func.count()).select_from(StoredPost).where(created >= since, created <= until)
    return int(session.exec(stmt).one())


def label_count(session: Session, *, label: str, since: datetime, until: datetime) -> int:
    t = PostLabel
    stmt = select(func.count()).select_from(t).where(col(t.label) == label, col(t.created_at) >= since,
                                                     col(t.created_at) <= until)
    return int(session.exec(stmt).one())


def flaw_rows(session: Session, *, as_of: datetime) -> list[flaw_topics.Row]:
    t = PostLabel
    stmt = select(t.post_id, t.thread_id, t.author_id, t.label, t.created_at, t.component, t.conditions,
                  t.is_official).where(col(t.label).in_((*FLAW_LABELS, "venting")), col(t.created_at) <= as_of)
    return [flaw_topics.Row(p, th, a, label, db.as_utc(c), comp, cond or "", bool(off))  # type: ignore[arg-type]
            for p, th, a, label, c, comp, cond, off in session.exec(stmt).all()]


def thread_texts(session: Session, thread_ids: Sequence[str], *, as_of: datetime) -> dict[str, tuple[str | None, str]]:
    """(title, opening post's text) per thread, for naming and grouping topics."""
    out: dict[str, tuple[str | None, str]] = {}
    for start in range(0, len(thread_ids), 500):
        stmt = (select(Thread.thread_id, Thread.title, StoredPost.content)
                .outerjoin(StoredPost, col(StoredPost.post_id) == col(Thread.opener_post_id))
                .where(col(Thread.thread_id).in_(thread_ids[start:start + 500]), col(Thread.created_at) <= as_of))
        for thread_id, title, content in session.exec(stmt).all():
            out[thread_id] = (title, content or "")
    return out


def standings(session: Session, member_ids: Sequence[str], *, as_of: datetime) -> dict[str, float]:
    credited: dict[str, int] = {}
    thanked: dict[str, int] = {}
    t = PostLabel
    for start in range(0, len(member_ids), 500):
        chunk = member_ids[start:start + 500]
        stmt = select(t.author_id, func.count()).where(col(t.credited), col(t.author_id).in_(chunk),
                                                      col(t.created_at) <= as_of).group_by(col(t.author_id))
        credited.update({a: int(n) for a, n in session.exec(stmt).all()})
        stmt = select(t.target_author_id, func.count()).where(
            col(t.label) == "gratitude", col(t.target_author_id).in_(chunk),
            col(t.author_id) != col(t.target_author_id),
            col(t.created_at) <= as_of).group_by(col(t.target_author_id))
        thanked.update({a: int(n) for a, n in session.exec(stmt).all() if a})
    officials = staff(session, list(member_ids), as_of=as_of)
    return {m: 1.0 if m in officials else flaw_topics.standing(credited.get(m, 0), thanked.get(m, 0))
            for m in member_ids}
