"""Consuming classified posts and reactions into the ledger, and reading it back."""

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, TypeVar

from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from sqlmodel import Session

from recognition import awards, flaw_topics, health, privacy, repository, risk, thanks
from recognition import schemas as s
from recognition.config import RecognitionSettings
from recognition.schemas import MemberView, PostView, Received
from shared import db, kafka, members, topics
from shared.errors import AnchorError
from shared.events import Author, Classification, ClassifiedPostEvent, ReactionEvent
from shared.labels import LABOR_LABELS, RESEARCH_LABELS

if TYPE_CHECKING:
    from recognition import writing

log = logging.getLogger("anchor.recognition")
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

RECOGNITION_STORED = Counter("anchor_recognition_records_stored_total", "Records newly stored (duplicates excluded)",
                             ["kind"])
MEMBERS_DELETED = Counter("anchor_recognition_member_deletions_total",
                          "Member deletions applied (a deletion redelivered or applied twice counts twice)")
PIPELINE_LATENCY = Histogram(
    "anchor_pipeline_latency_seconds", "From acceptance at ingest to stored in recognition",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))


def _decode(value: bytes | None, model: type[M]) -> M:
    if value is None:
        raise kafka.PoisonMessage("empty record value")
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:5])
        raise kafka.PoisonMessage(f"invalid {model.__name__}: {detail}") from exc


@dataclass
class Written:
    """What writing one batch did, in plain values: it is computed in the writer process and sent back, and the
    serving process (which owns the metrics, the log and the snapshot) acts on it."""

    poison: list[tuple[int, str]] = field(default_factory=list)  # (index in the batch, reason)
    stored: list[str] = field(default_factory=list)  # post ids newly stored
    reactions: int = 0  # reactions newly stored
    latencies: list[float] = field(default_factory=list)  # ingested -> stored, seconds, per newly stored post
    deletions: list[dict[str, int]] = field(default_factory=list)  # counts per member deletion applied


def _write(engine: Engine, posts: list[ClassifiedPostEvent], reactions: list[ReactionEvent], zone: tzinfo,
           deletions: Sequence[members.MemberDeleted] = (), audit_engine: Engine | None = None) -> Written:
    now = datetime.now(UTC)
    written = Written()
    with db.unit_of_work(engine) as session:
        # Content of deleted members that was still in flight (or is replayed) is dropped, never re-stored.
        posts, reactions, _ = privacy.without_deleted(session, posts, reactions)
        written.stored = repository.store_posts(session, posts, now=now, zone=zone) if posts else []
        written.reactions = repository.store_reactions(session, reactions, now=now) if reactions else 0
        # After the batch's posts: a deletion in the same batch as the member's last posts removes them too.
        for deletion in deletions:
            written.deletions.append(_delete(session, deletion, now=now))
    if deletions:
        # The audit trail may be a database of its own, so it is erased in a transaction of its own, after the
        # ledger: if this one fails, the batch is retried, and applying a deletion again is harmless.
        forget_reads(audit_engine or engine, deletions, now=now)
    fresh = set(written.stored)
    written.latencies = [max(0.0, (now - e.ingested_at).total_seconds()) for e in posts if e.post_id in fresh]
    return written


def apply(engine: Engine, items: Sequence[tuple[str, bytes | None]], zone: tzinfo,
          audit_engine: Engine | None = None) -> Written:
    """Decodes a batch of (topic, value) records and writes the valid ones in one transaction; undecodable
    records come back as poison with the reason."""
    posts: list[ClassifiedPostEvent] = []
    reactions: list[ReactionEvent] = []
    deletions: list[members.MemberDeleted] = []
    poison: list[tuple[int, str]] = []
    for i, (topic, value) in enumerate(items):
        try:
            if topic == topics.CLASSIFIED:
                posts.append(_decode(value, ClassifiedPostEvent))
            elif topic == topics.REACTIONS:
                reactions.append(_decode(value, ReactionEvent))
            elif topic == topics.MEMBER_EVENTS:
                deletion = members.decode_value(value)
                if deletion is not None:  # other member events are not recognition's business
                    deletions.append(deletion)
            else:
                raise kafka.PoisonMessage(f"unexpected topic {topic}")
        except kafka.PoisonMessage as exc:
            poison.append((i, str(exc)))
    written = (_write(engine, posts, reactions, zone, deletions, audit_engine) if posts or reactions or deletions
               else Written())
    written.poison = poison
    return written


def record(written: Written) -> None:
    """The metrics and log lines of a written batch, in the serving process."""
    RECOGNITION_STORED.labels("post").inc(len(written.stored))
    RECOGNITION_STORED.labels("reaction").inc(written.reactions)
    for seconds in written.latencies:
        PIPELINE_LATENCY.observe(seconds)
    for counts in written.deletions:
        MEMBERS_DELETED.inc()
        # Counts only: member ids and content are never logged.
        log.info("member deleted", extra=counts)


async def handle(records: list[ConsumerRecord], *, writer: "writing.Writer",
                 on_deleted: Callable[[], None] | None = None) -> kafka.BatchOutcome:
    written = await writer.apply([(r.topic, r.value) for r in records])
    record(written)
    if written.deletions and on_deleted is not None:
        on_deleted()
    return kafka.BatchOutcome(poison=[(records[i], reason) for i, reason in written.poison])


def _delete(session: Session, deletion: members.MemberDeleted, *, now: datetime) -> dict[str, int]:
    return privacy.delete_member(session, deletion.member_id, requested_at=deletion.requested_at.astimezone(UTC),
                                 now=now)


def forget_reads(audit_engine: Engine, deletions: Sequence[members.MemberDeleted], *, now: datetime) -> None:
    with db.unit_of_work(audit_engine) as session:
        for deletion in deletions:
            privacy.forget_reads(session, deletion.member_id, now=now)


def delete_member(session: Session, deletion: members.MemberDeleted, *, now: datetime) -> None:
    """A deletion applied outside a consumed batch (the DELETE endpoint applies it at once, then erases the audit
    rows through `audit_trail.AuditTrail.forget`); the consumer's go through `apply`."""
    record(Written(deletions=[_delete(session, deletion, now=now)]))


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


def member_view(*, session: Session, member_id: str, as_of: datetime, daily_cap: int) -> MemberView:
    posts, first, last = repository.activity(session, member_id, as_of=as_of)
    if first is None or last is None:
        raise AnchorError(404, "not_found", f"member {member_id!r} has no posts as of {as_of.isoformat()}",
                          field="member_id")
    authored = repository.labels_by_author(session, member_id, as_of=as_of, daily_cap=daily_cap)
    received = repository.labels_received(session, member_id, as_of=as_of)
    return MemberView(
        member_id=member_id, display_name=repository.names_as_of(session, [member_id], as_of=as_of).get(member_id),
        first_seen=first, last_seen=last, posts=posts,
        labor={label: authored.get(label, 0) for label in LABOR_LABELS},
        received=Received(gratitude=received.get("gratitude", 0), hostility=received.get("hostility", 0),
                          bias_accusation=received.get("bias_accusation", 0),
                          reactions=repository.reactions_received(session, member_id, as_of=as_of)),
        acknowledgements=repository.acknowledgements_count(session, member_id, as_of=as_of),
        research={label: authored.get(label, 0) for label in RESEARCH_LABELS},
        is_official=bool(repository.staff(session, [member_id], as_of=as_of)))


def _member_or_404(session: Session, member_id: str, as_of: datetime) -> str | None:
    """The member's display name as of `as_of`; 404 when they had not posted by then or were brand staff."""
    if not repository.has_posted(session, member_id, as_of=as_of):
        raise AnchorError(404, "not_found", f"member {member_id!r} has no posts as of {as_of.isoformat()}",
                          field="member_id")
    if repository.staff(session, [member_id], as_of=as_of):
        raise AnchorError(404, "not_scored", f"member {member_id!r} is brand staff: classified, never scored",
                          field="member_id")
    return repository.names_as_of(session, [member_id], as_of=as_of).get(member_id)


def risk_view(a: risk.Assessment, name: str | None) -> s.BurnoutRisk:
    return s.BurnoutRisk(
        member_id=a.member_id, as_of=a.as_of, score=a.score, level=a.level, effort=a.effort, reward=a.reward,  # type: ignore[arg-type]
        effort_reward_ratio=a.effort_reward_ratio,
        drivers=[s.DriverView(factor=d.factor, detail=d.detail, evidence_post_ids=d.evidence_post_ids)
                 for d in a.drivers],
        recommended_actions=[s.ActionView(**x) for x in a.recommended_actions],  # type: ignore[arg-type]
        parts=a.parts, display_name=name)


def assessments(*, session: Session, settings: RecognitionSettings, as_of: datetime,
                member_ids: list[str] | None = None) -> list[risk.Assessment]:
    r = settings.risk
    found = repository.histories(session, member_ids=member_ids, as_of=as_of, window_days=r.window_days,
                                 recent_days=r.recent_days, baseline_days=r.baseline_days)
    # Members who opted out of wellbeing scoring are never scored, listed, counted or alerted.
    for member in privacy.opted_out(session, member_ids) & set(found):
        del found[member]
    return [risk.assess(h, as_of=as_of, window_days=r.window_days, recent_days=r.recent_days,
                        baseline_days=r.baseline_days, daily_cap=settings.ledger.daily_cap)
            for _, h in sorted(found.items())]


def burnout_risk(*, session: Session, settings: RecognitionSettings, member_id: str, as_of: datetime) -> s.BurnoutRisk:
    if privacy.opted_out(session, [member_id]):
        raise AnchorError(404, "opted_out", f"member {member_id!r} opted out of wellbeing scoring: never scored",
                          field="member_id")
    name = _member_or_404(session, member_id, as_of)
    found = assessments(session=session, settings=settings, as_of=as_of, member_ids=[member_id])
    a = found[0] if found else risk.assess(risk.History(member_id), as_of=as_of, window_days=settings.risk.window_days,
                                           recent_days=settings.risk.recent_days,
                                           baseline_days=settings.risk.baseline_days,
                                           daily_cap=settings.ledger.daily_cap)
    return risk_view(a, name)


def snapshot_risk(*, session: Session, risks: Mapping[str, bytes], taken_at: datetime, member_id: str,
                  slack: timedelta) -> bytes | None:
    """The member's risk from a community snapshot taken at `taken_at`, if it still stands: nothing that goes
    into it (their posts, replies and reactions to them, an acknowledgement, an opt-out, a deletion) changed
    after `taken_at - slack`. A lookup instead of reading the member's window of history."""
    body = risks.get(member_id)
    if body is None:
        return None
    known, changed = repository.changed_at(session, member_id)
    return body if known and (changed is None or changed <= taken_at - slack) else None


def burnout_list(*, session: Session, settings: RecognitionSettings, level: str, limit: int,
                 as_of: datetime) -> s.BurnoutList:
    floor = risk.LEVEL_ORDER[level]
    ranked = sorted((a for a in assessments(session=session, settings=settings, as_of=as_of)
                     if risk.LEVEL_ORDER[a.level] >= floor), key=lambda a: (-a.score, a.member_id))[:limit]
    names = repository.names_as_of(session, [a.member_id for a in ranked], as_of=as_of)
    return s.BurnoutList(as_of=as_of, items=[risk_view(a, names.get(a.member_id)) for a in ranked])


def acknowledge(*, session: Session, member_id: str, body: s.AcknowledgementIn, recorded_by: str,
                now: datetime) -> s.AcknowledgementOut:
    _member_or_404(session, member_id, now)
    created = (body.created_at or now).astimezone(UTC)
    ack_id = body.acknowledgement_id or f"ack-{uuid.uuid4().hex}"
    fresh = repository.add_acknowledgement(session, {
        "acknowledgement_id": ack_id, "member_id": member_id, "kind": body.kind, "note": body.note,
        "created_at": created, "recorded_at": now, "recorded_by": recorded_by})
    if fresh:
        repository.touch_members(session, [member_id], now=now)
        return s.AcknowledgementOut(acknowledgement_id=ack_id, member_id=member_id, kind=body.kind, note=body.note,
                                    created_at=created, duplicate=False)
    stored = repository.get_acknowledgement(session, ack_id)
    assert stored is not None
    same = (stored.member_id, stored.kind, stored.note) == (member_id, body.kind, body.note) and (
        body.created_at is None or db.as_utc(stored.created_at) == created)
    if not same:
        raise AnchorError(409, "conflict", f"acknowledgement {ack_id!r} was recorded with different content",
                          field="acknowledgement_id")
    return s.AcknowledgementOut(acknowledgement_id=ack_id, member_id=stored.member_id, kind=stored.kind,
                                note=stored.note, created_at=db.as_utc(stored.created_at), duplicate=True)  # type: ignore[arg-type]


def _excerpt(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def nominations(*, session: Session, settings: RecognitionSettings, award: str, since: datetime, until: datetime,
                limit: int) -> s.Nominations:
    rule = awards.RULES[award]
    cap = settings.ledger.daily_cap
    own = repository.own_counts(session, labels=list(rule.own), since=since, until=until, daily_cap=cap)
    echo = repository.echo_counts(session, own=list(rule.own), echo=list(rule.echo), since=since, until=until)
    officials = repository.staff(session, sorted(own), as_of=until)
    candidates = [awards.Candidate(m, None, own[m], echo.get(m, {})) for m in sorted(own) if m not in officials]
    ranked = sorted(candidates, key=lambda c: (-c.score(rule), c.member_id))[:limit]
    names = repository.names_as_of(session, [c.member_id for c in ranked], as_of=until)
    items = []
    for rank, c in enumerate(ranked, 1):
        c.display_name = names.get(c.member_id)
        posts = repository.contributions(session, c.member_id, labels=list(rule.own), since=since, until=until,
                                         pick=lambda found, rule=rule: _evidence_posts(found, rule))
        evidence = [s.Evidence(post_id=p["post_id"], label=p["label"], excerpt=_excerpt(p["excerpt"])) for p in posts]
        items.append(s.Nomination(member_id=c.member_id, rank=rank, score=c.score(rule), display_name=c.display_name,
                                  summary=awards.summary(c, rule, since=since.date().isoformat(),
                                                         until=until.date().isoformat()), evidence=evidence))
    return s.Nominations(award=award, title=rule.title, since=since, until=until, items=items)


def _evidence_posts(posts: list[dict[str, Any]], rule: awards.Rule, n: int = 3) -> list[dict[str, Any]]:
    """A nomination's evidence: the `n` most echoed distinct posts, heavier labels and newer posts first."""
    posts = sorted(posts, key=lambda p: (-p["echo"], -rule.own[p["label"]], -p["created_at"].timestamp(),
                                         p["post_id"]))
    picked: dict[str, dict[str, Any]] = {}
    for p in posts:  # a post carrying two of the award's labels is shown once, under its higher-ranked one
        picked.setdefault(p["post_id"], p)
    return list(picked.values())[:n]


THANKS_DAYS = 90
NOMINATION_DAYS = 365  # the default window: an award year


def thank_you(*, session: Session, member_id: str, as_of: datetime) -> s.ThankYou:
    name = _member_or_404(session, member_id, as_of)
    labels = list(thanks.PRIORITY)
    found = repository.contributions(session, member_id, labels=labels, since=as_of - timedelta(days=THANKS_DAYS),
                                     until=as_of, pick=thanks.choose)
    message, ids = thanks.draft(member_id=member_id, name=name, contributions=found)
    return s.ThankYou(member_id=member_id, message=message, evidence_post_ids=ids)


def defect_topics(*, session: Session, as_of: datetime, consensus: str | None) -> s.DefectTopics:
    rows = repository.flaw_rows(session, as_of=as_of)
    thread_ids = sorted({r.thread_id for r in rows})
    texts = repository.thread_texts(session, thread_ids, as_of=as_of)
    framers = sorted({r.author_id for r in rows if r.label in flaw_topics.FRAMING})
    standing = repository.standings(session, framers, as_of=as_of)
    built = flaw_topics.build(rows, threads=texts, standings=standing, as_of=as_of)
    items = [s.DefectTopic(**vars(t)) for t in built if consensus is None or t.consensus == consensus]
    return s.DefectTopics(as_of=as_of, items=items)


HEALTH_DAYS = 30


def community_health(*, session: Session, settings: RecognitionSettings, as_of: datetime,
                     days: int = HEALTH_DAYS, at_risk: int | None = None,
                     venting: list[health.Need] | None = None) -> s.CommunityHealth:
    """`at_risk` and `venting` (over the same window) may be passed in by a caller that has them already."""
    since = as_of - timedelta(days=days)
    if venting is None:
        venting = repository.needs(session, label="venting", reply_label="empathy", since=since, until=as_of)
    questions = repository.needs(session, label="newcomer_question", reply_label="newcomer_answer", since=since,
                                 until=as_of)
    posts = repository.posts_between(session, since=since, until=as_of)
    hostile = repository.label_count(session, label="hostility", since=since, until=as_of)
    labor = repository.own_counts(session, labels=list(risk.LABOR_WEIGHTS), since=since, until=as_of,
                                  daily_cap=settings.ledger.daily_cap)
    officials = repository.staff(session, sorted(labor), as_of=as_of)
    weighted = {m: sum(risk.LABOR_WEIGHTS[k] * n for k, n in per.items()) for m, per in labor.items()
                if m not in officials}
    spread = health.concentration(weighted)
    if at_risk is None:
        at_risk = sum(risk.LEVEL_ORDER[a.level] >= risk.LEVEL_ORDER["high"]
                      for a in assessments(session=session, settings=settings, as_of=as_of))
    return s.CommunityHealth(
        as_of=as_of, since=since, posts=posts, venting_posts=len(venting),
        venting_answered_with_empathy_share=health.share(venting),
        minutes_to_first_empathetic_reply=s.Minutes(**health.minutes_to_reply(venting)),
        newcomer_questions=len(questions), newcomer_questions_answered_share=health.share(questions),
        minutes_to_first_answer=s.Minutes(**health.minutes_to_reply(questions)),
        hostility_posts=hostile, hostility_rate=round(hostile / posts, 4) if posts else None,
        labor_top5_share=spread["top5_share"], members_doing_half_of_labor=int(spread["members_doing_half"] or 0),  # type: ignore[arg-type]
        members_doing_labor=int(spread["members_doing_labor"] or 0), members_high_risk_or_above=at_risk)


def set_opt_out(*, session: Session, member_id: str, opted_out: bool, by: str, now: datetime) -> s.OptOut:
    """Takes effect at once for every on-demand read; the next community snapshot drops the member too (and
    lists served from the current one are filtered at read time)."""
    privacy.set_opt_out(session, member_id, opted_out=opted_out, by=by, now=now)
    repository.touch_members(session, [member_id], now=now)
    return s.OptOut(member_id=member_id, opted_out=opted_out, updated_at=now)


def wellbeing_reads(*, session: Session, since: datetime, until: datetime, limit: int) -> s.WellbeingReads:
    rows = privacy.reads(session, since=since, until=until, limit=limit + 1)
    items = [s.WellbeingReadView(audit_id=r.audit_id, read_id=r.read_id, reader=r.reader, member_id=r.member_id,  # type: ignore[arg-type]
                                 endpoint=r.endpoint, read_at=r.read_at, as_of=r.as_of)  # type: ignore[arg-type]
             for r in rows[:limit]]
    return s.WellbeingReads(since=since, until=until, items=items, truncated=len(rows) > limit)
