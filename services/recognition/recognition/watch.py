"""The community snapshot, recomputed every `alerts.refresh_seconds`: every member's risk, the flaw topics
and the health figures as of now. It feeds the Prometheus gauges, the alerts on `koc.alerts.v1`, and the
list endpoints when they are asked about "now" (explicit `as_of` reads are always computed on demand).
"""

import asyncio
import json
import logging
import multiprocessing
import os
import threading
import time
from collections import Counter as Tally
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import col, select, update

from recognition import alerts, awards, repository, risk, service
from recognition import schemas as s
from recognition.config import RecognitionSettings
from recognition.models import AlertState
from shared import db, gc_pauses, kafka, topics

log = logging.getLogger("anchor.recognition.watch")

RISK_MEMBERS = Gauge("anchor_recognition_members_by_risk_level", "Scored members per burnout-risk level", ["level"])
TOPICS = Gauge("anchor_recognition_defect_topics", "Flaw topics per consensus state", ["consensus"])
TOPICS_FLAGGED = Gauge("anchor_recognition_defect_topics_flagged", "Flaw topics escalating or under safety review",
                       ["flag"])
HEALTH = Gauge("anchor_community_health", "Community health figures over the health window", ["figure"])
ALERTS_SENT = Counter("anchor_recognition_alerts_total", "Alerts published on koc.alerts.v1", ["kind"])
for _kind in (alerts.BURNOUT, alerts.VENTING, alerts.DEFECT):
    ALERTS_SENT.labels(_kind)  # a zero before the first alert, so rate() and increase() see the first one
SNAPSHOT_SECONDS = Histogram("anchor_recognition_snapshot_seconds", "Time to compute the community snapshot",
                             buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
SNAPSHOT_AT = Gauge("anchor_recognition_snapshot_timestamp_seconds", "When the last snapshot was computed")
SNAPSHOT_FAILURES = Counter("anchor_recognition_snapshot_failures_total", "Snapshots that failed")
SNAPSHOT_PERIOD = Gauge("anchor_recognition_snapshot_period_seconds",
                        "The wait before the next snapshot: the refresh period, longer when computes are long")
HEALTH_FIGURES = ("venting_posts", "venting_answered_with_empathy_share", "empathy_reply_minutes_median",
                  "newcomer_questions", "newcomer_questions_answered_share", "hostility_rate", "labor_top5_share",
                  "members_doing_half_of_labor", "members_high_risk_or_above")


@dataclass
class Snapshot:
    as_of: datetime
    # (member id, level) of every member at high risk or above, and of the top RANKED of all, highest score first:
    # enough for any list request (its limit is at most 500, and a level floor keeps a prefix of the ranking).
    # Their answers are in `risks`, and what their alerts need in `risk_desired`.
    ranked: list[tuple[str, str]]
    risk_desired: alerts.Desired
    levels: dict[str, int]
    # The flaw topics, each as (consensus, its JSON as served), in the served order; and what the gauges and the
    # alerts need of them. At 1M posts the topics as models took 173 ms to unpickle in the serving process, on
    # every snapshot, and were only ever serialized again.
    topics: list[tuple[str, bytes]]
    topic_counts: dict[str, int]
    topic_desired: alerts.Desired
    health: s.CommunityHealth
    unanswered: list[tuple[str, datetime]]
    nominations: dict[str, s.Nominations]
    # Every scored member's risk, serialized: "now" reads of a member nothing has changed for since (see
    # `Member.changed_at`) are answered from it, not recomputed.
    risks: dict[str, bytes] = field(default_factory=dict)
    # Serialized responses by request key: a snapshot never changes, so each answer is encoded once.
    responses: dict[tuple[object, ...], bytes] = field(default_factory=dict)


NOMINATION_LIMIT = 100
VENTING_DAYS = 7  # unanswered venting older than this is no longer alerted
assert VENTING_DAYS <= service.HEALTH_DAYS  # the snapshot reads venting once, over the health window
RANKED = 1000


def compute(engine: Engine, settings: RecognitionSettings, now: datetime) -> Snapshot:
    with db.unit_of_work(engine) as session:
        # Reactions whose post was stored concurrently by another replica: fill their recipient in now.
        repository.fill_recipients(session)
    db.refresh_statistics(engine)  # the community grows: keep SQLite's planner statistics current
    with db.unit_of_work(engine) as session:
        assessed = service.assessments(session=session, settings=settings, as_of=now)
        assessed.sort(key=lambda a: (-a.score, a.member_id))
        high = risk.LEVEL_ORDER["high"]
        names = repository.names_of_all(session, [a.member_id for a in assessed], as_of=now)
        risks: dict[str, bytes] = {}
        kept: list[s.BurnoutRisk] = []  # the ranked members' views, for their alerts; the others' are dropped
        for i, a in enumerate(assessed):
            view = service.risk_view(a, names.get(a.member_id))
            risks[a.member_id] = view.model_dump_json().encode()
            if i < RANKED or risk.LEVEL_ORDER[a.level] >= high:
                kept.append(view)
        ranked = [(r.member_id, r.level) for r in kept]
        at = now.isoformat()
        risk_desired: alerts.Desired = {f"risk:{r.member_id}": (alerts.risk_state(r.level), r.member_id, {
            "member_id": r.member_id, "level": r.level, "score": r.score, "as_of": at,
            "drivers": [d.factor for d in r.drivers], "recommended_actions": [a.action for a in r.recommended_actions]})
            for r in kept}
        levels = dict(Tally(a.level for a in assessed))
        at_risk = sum(risk.LEVEL_ORDER[a.level] >= high for a in assessed)
        topic_view = service.defect_topics(session=session, as_of=now, consensus=None)
        # One read of the venting posts serves both the health figures and the unanswered-venting alerts.
        venting = repository.needs(session, label="venting", reply_label="empathy",
                                   since=now - timedelta(days=service.HEALTH_DAYS), until=now)
        health = service.community_health(session=session, settings=settings, as_of=now, at_risk=at_risk,
                                          venting=venting)
        hours = timedelta(hours=settings.alerts.unanswered_venting_hours)
        recent = now - timedelta(days=VENTING_DAYS)
        unanswered = [(n.post_id, n.created_at) for n in venting if n.first_reply_at is None and
                      recent <= n.created_at <= now - hours]
        since = now - timedelta(days=service.NOMINATION_DAYS)
        nominations = {award: service.nominations(session=session, settings=settings, award=award, since=since,
                                                  until=now, limit=NOMINATION_LIMIT) for award in awards.AWARDS}
    topics = [(x.consensus, x.model_dump_json().encode()) for x in topic_view.items]
    counts = Tally(x.consensus for x in topic_view.items)
    counts.update(escalating=sum(x.escalating for x in topic_view.items),
                  safety_review=sum(x.safety_review for x in topic_view.items))
    return Snapshot(now, ranked, risk_desired, levels, topics, dict(counts), _topic_desired(topic_view), health,
                    unanswered, nominations, risks)


def _topic_desired(topics: s.DefectTopics) -> alerts.Desired:
    at = topics.as_of.isoformat()
    return {f"topic:{t.topic_id}": (alerts.topic_state(escalating=t.escalating, safety_review=t.safety_review),
                                    t.topic_id, {"topic_id": t.topic_id, "component": t.component, "title": t.title,
                                                 "consensus": t.consensus, "escalating": t.escalating,
                                                 "safety_review": t.safety_review, "thread_ids": t.thread_ids,
                                                 "as_of": at})
            for t in topics.items}


def _spliced(envelope: BaseModel, items: list[bytes]) -> bytes:
    """`envelope` (its `items` empty, its last field) serialized with `items`, already JSON, as its items."""
    empty = envelope.model_dump_json().encode()
    assert empty.endswith(b"[]}")
    return empty[:-2] + b",".join(items) + b"]}"


def topics_body(snap: Snapshot, consensus: str | None, limit: int) -> bytes:
    """`DefectTopics(as_of, items)` of the snapshot's topics with this consensus (any if None), at most `limit`,
    serialized: the topics' own JSON spliced into the envelope's, as pydantic would write them."""
    chosen = [body for state, body in snap.topics if consensus is None or state == consensus][:limit]
    return _spliced(s.DefectTopics(as_of=snap.as_of, items=[]), chosen)


def risks_body(snap: Snapshot, member_ids: list[str]) -> bytes:
    """`BurnoutList(as_of, items)` of these members' answers in the snapshot, serialized the same way."""
    return _spliced(s.BurnoutList(as_of=snap.as_of, items=[]), [snap.risks[m] for m in member_ids])


def _init_worker(parent: int, niceness: int) -> None:
    """Worker initializer: leave when the service process is gone (SIGKILL gives it no chance to stop us), so a
    killed service never leaves a snapshot worker running on its own; and yield the CPU to the serving process.
    At 1M posts a compute takes about half a minute of one core, and at equal priority it took that from the
    requests that arrived meanwhile (p99 up to 180 ms instead of about 20 on two cores)."""
    if niceness > 0:
        try:
            os.nice(niceness)
        except OSError as error:  # a platform or sandbox that forbids it: snapshots at equal priority still work
            log.warning("%s keeps its priority: os.nice failed (%s)", multiprocessing.current_process().name, error)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    # The modules this process imported stay for its whole life: later full collections need not walk them.
    gc_pauses.settle()


def compute_in_worker(settings: RecognitionSettings, now: datetime) -> Snapshot:
    """`compute` in a worker process with an engine of its own: the snapshot is minutes of pure Python on a
    large community, and in the serving process it would hold the GIL and stall every request."""
    return compute(db.process_engine(settings.database.url, pool_size=2), settings, now)


def update_gauges(snap: Snapshot) -> None:
    for level in risk.LEVEL_ORDER:
        RISK_MEMBERS.labels(level).set(snap.levels.get(level, 0))
    for state in ("investigating", "quirk", "defect", "contested"):
        TOPICS.labels(state).set(snap.topic_counts.get(state, 0))
    for flag in ("escalating", "safety_review"):
        TOPICS_FLAGGED.labels(flag).set(snap.topic_counts.get(flag, 0))
    h = snap.health
    values: dict[str, float | None] = {
        "venting_posts": h.venting_posts, "venting_answered_with_empathy_share": h.venting_answered_with_empathy_share,
        "empathy_reply_minutes_median": h.minutes_to_first_empathetic_reply.median,
        "newcomer_questions": h.newcomer_questions,
        "newcomer_questions_answered_share": h.newcomer_questions_answered_share,
        "hostility_rate": h.hostility_rate, "labor_top5_share": h.labor_top5_share,
        "members_doing_half_of_labor": h.members_doing_half_of_labor,
        "members_high_risk_or_above": h.members_high_risk_or_above}
    for figure in HEALTH_FIGURES:
        value = values[figure]
        HEALTH.labels(figure).set(float("nan") if value is None else float(value))
    SNAPSHOT_AT.set(snap.as_of.timestamp())


def desired_states(snap: Snapshot, previous: dict[str, dict[str, str]]) -> dict[str, alerts.Desired]:
    at = snap.as_of.isoformat()
    burnout = dict(snap.risk_desired)
    # Members alerted before who are no longer high (the snapshot keeps every high member): re-arm them.
    for key, state in previous.get(alerts.BURNOUT, {}).items():
        if state == "high" and key not in burnout:
            burnout[key] = ("below", key.split(":", 1)[1], {})
    defect = dict(snap.topic_desired)
    # Topics that disappeared (merged into another) stop being flagged: re-arm them.
    for key, state in previous.get(alerts.DEFECT, {}).items():
        if key not in defect and state != "calm":
            defect[key] = ("calm", key.split(":", 1)[1], {})
    venting = {f"venting:{post_id}": ("unanswered", post_id, {"post_id": post_id, "created_at": created.isoformat(),
                                                              "as_of": at})
               for post_id, created in snap.unanswered}
    return {alerts.BURNOUT: burnout, alerts.DEFECT: defect, alerts.VENTING: venting}


def _claim(engine: Engine, crossing: alerts.Crossing, now: datetime) -> bool:
    """Moves a subject's state from `old` to `new` unless another replica got there first."""
    with db.unit_of_work(engine) as session:
        if crossing.old is None:
            return bool(db.insert_ignore(session, AlertState.__table__, [{  # type: ignore[attr-defined]
                "alert_key": crossing.key, "kind": crossing.kind, "state": crossing.new, "updated_at": now}],
                key=["alert_key"], returning="alert_key"))
        # Only forward in time: a replica finishing an older snapshot must not undo a newer one's state.
        result = session.exec(update(AlertState).where(  # type: ignore[call-overload]
            col(AlertState.alert_key) == crossing.key, col(AlertState.state) == crossing.old,
            col(AlertState.updated_at) < now).values(state=crossing.new, updated_at=now))
        return bool(result.rowcount)


def _release(engine: Engine, crossing: alerts.Crossing) -> None:
    """Puts the state back after a failed publish, so the next snapshot tries again."""
    with db.unit_of_work(engine) as session:
        if crossing.old is None:
            session.exec(AlertState.__table__.delete().where(  # type: ignore[attr-defined]
                AlertState.__table__.c.alert_key == crossing.key))  # type: ignore[attr-defined]
        else:
            session.exec(update(AlertState).where(col(AlertState.alert_key) == crossing.key)  # type: ignore[call-overload]
                         .values(state=crossing.old))


def stored_states(engine: Engine, now: datetime) -> dict[str, dict[str, str]]:
    with db.unit_of_work(engine) as session:
        # Venting older than the alert horizon is never alerted again: forget it, or the table grows forever.
        session.exec(AlertState.__table__.delete().where(  # type: ignore[attr-defined]
            (AlertState.__table__.c.kind == alerts.VENTING)  # type: ignore[attr-defined]
            & (AlertState.__table__.c.updated_at < now - timedelta(days=VENTING_DAYS + 1))))  # type: ignore[attr-defined]
        out: dict[str, dict[str, str]] = {}
        for key, kind, state in session.exec(select(AlertState.alert_key, AlertState.kind, AlertState.state)).all():
            out.setdefault(kind, {})[key] = state
        return out


class Watcher:
    def __init__(self, *, engine: Engine, producer: kafka.ManagedProducer, settings: RecognitionSettings) -> None:
        self.engine = engine
        self.producer = producer
        self.settings = settings
        self.latest: Snapshot | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool: ProcessPoolExecutor | None = None
        # The alert bookkeeping's database work, one claim at a time, on a thread of its own: a snapshot that
        # moves many subjects would otherwise hold a thread of the pool the requests' reads wait for.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recognition-alerts")
        self.compute_seconds = 0.0
        # Bumped by `forget`: a snapshot whose computation began before a deletion is never served or alerted.
        self._generation = 0

    def start(self, after: asyncio.Event) -> None:
        self._task = asyncio.create_task(self._run(after), name="recognition-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._db.shutdown(wait=False, cancel_futures=True)

    def forget(self) -> None:
        """Drops the current snapshot (a member was deleted): "now" reads are computed on demand until the next
        one. Other replicas' snapshots age out within two refresh periods; their risk lists are filtered at
        read time meanwhile."""
        self._generation += 1
        self.latest = None

    def period(self) -> float:
        """Seconds to wait before the next compute: the refresh period, or longer when computes are long, so they
        take at most `max_busy_share` of the time."""
        share = self.settings.alerts.max_busy_share
        return max(self.settings.alerts.refresh_seconds, self.compute_seconds * (1.0 - share) / share)

    def fresh(self, now: datetime) -> Snapshot | None:
        """The latest snapshot if it is recent enough to stand for "now"."""
        snap = self.latest
        # A snapshot is replaced one compute time after the period: allow for both, twice over.
        limit = timedelta(seconds=2 * (self.period() + self.compute_seconds) + 5)
        return snap if snap is not None and now - snap.as_of <= limit else None

    async def _run(self, after: asyncio.Event) -> None:
        await after.wait()
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                SNAPSHOT_FAILURES.inc()
                log.warning("snapshot failed", extra={"error": repr(exc)})
            period = self.period()
            SNAPSHOT_PERIOD.set(period)
            await asyncio.sleep(period)

    async def tick(self, now: datetime | None = None) -> Snapshot:
        now = now or datetime.now(UTC)
        started = time.perf_counter()
        generation = self._generation
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker,
                                             initargs=(os.getpid(), self.settings.alerts.worker_niceness))
        try:
            snap = await asyncio.get_running_loop().run_in_executor(self._pool, compute_in_worker, self.settings, now)
        except BrokenProcessPool:
            # The worker died (OOM-killed, say): start a fresh one next time instead of failing forever.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise
        self.compute_seconds = time.perf_counter() - started
        SNAPSHOT_SECONDS.observe(self.compute_seconds)
        if generation != self._generation:
            return snap  # a member was deleted meanwhile: this snapshot may still show them
        self.latest = snap
        update_gauges(snap)
        await self.alert(snap)
        return snap

    async def alert(self, snap: Snapshot) -> int:
        if not self.producer.started.is_set():
            return 0  # states stay unclaimed; the next snapshot tries again
        loop = asyncio.get_running_loop()
        previous = await loop.run_in_executor(self._db, stored_states, self.engine, snap.as_of)
        sent = 0
        for kind, desired in desired_states(snap, previous).items():
            for crossing in alerts.crossings(kind, previous.get(kind, {}), desired):
                if not await loop.run_in_executor(self._db, _claim, self.engine, crossing, snap.as_of):
                    continue
                if not crossing.alert:
                    continue
                body = {"kind": kind, "alert_id": f"{crossing.key}@{snap.as_of.isoformat()}",
                        "created_at": snap.as_of.isoformat(), **crossing.payload}
                try:
                    await self.producer.producer.send_and_wait(
                        topics.ALERTS, key=crossing.message_key.encode(),
                        value=json.dumps(body, ensure_ascii=False).encode())
                except Exception as exc:
                    log.warning("alert publish failed; will retry", extra={"error": repr(exc), "kind": kind})
                    await loop.run_in_executor(self._db, _release, self.engine, crossing)
                    continue
                ALERTS_SENT.labels(kind).inc()
                sent += 1
        return sent
