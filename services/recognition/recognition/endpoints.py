from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel
from sqlmodel import Session

from recognition import audit_trail, awards, privacy, read_pool, reads, risk, service, watch
from recognition import schemas as s
from recognition.config import RecognitionSettings
from shared import app as base
from shared import auth, db, errors, events, members

router = APIRouter(prefix="/v1", tags=["recognition"],
                   responses=errors.AUTH_RESPONSES | errors.UNAVAILABLE | errors.NOT_FOUND)
Read = Annotated[auth.Principal, Depends(auth.require("read", ready=base.database_ready))]
Wellbeing = Annotated[auth.Principal, Depends(auth.require("wellbeing", ready=base.database_ready))]
Recognize = Annotated[auth.Principal, Depends(auth.require("recognize", ready=base.database_ready))]
Admin = Annotated[auth.Principal, Depends(auth.require("admin", ready=base.database_ready))]
# Times are bounded like the events' (1990 to a day ahead): anything else is a unit mix-up, and a year-1 or
# year-9999 instant cannot even be shifted by a window without overflowing.
AsOf = Annotated[events.Timestamp | None, Query(description="RFC 3339 instant to replay history at (default now)")]
Window = Annotated[events.Timestamp | None, Query(description="RFC 3339 instant")]
IdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=events.ID_PATTERN)]
Level = Literal["low", "elevated", "high", "critical"]
T = TypeVar("T")


def _as_of(value: datetime | None) -> datetime:
    return (value or datetime.now(UTC)).astimezone(UTC)


async def _read(request: Request, work: Callable[..., T], *, audit: bool = False, bounded: bool = False,
                **kwargs: object) -> T:
    """Runs a service read inside one unit of work (on the audit trail's database if `audit`): in a worker
    thread, or on the event loop if it is `bounded` (its cost grows neither with the community nor with a
    member's history) and the service reads there."""
    engine = request.app.state.audit.engine if audit else request.app.state.engine

    def run() -> T:
        with db.unit_of_work(engine) as session:
            return work(session=session, **kwargs)

    return await reads.run(run, on_loop=request.app.state.reads_on_loop, bounded=bounded)


def _window(since: datetime | None, until: datetime | None, *, days: int) -> tuple[datetime, datetime]:
    """[since, until] in UTC: until defaults to now, since to `days` before until; since after until is a 422."""
    end = _as_of(until)
    start = since.astimezone(UTC) if since else end - timedelta(days=days)
    if start > end:
        raise errors.AnchorError(422, "invalid", "since must not be after until", field="since")
    return start, end


def _snapshot(request: Request, as_of: datetime | None) -> watch.Snapshot | None:
    """Reads about "now" are served from the community snapshot (at most two refresh periods old; its
    `as_of` says when); reads with an explicit `as_of` are computed on demand."""
    watcher: watch.Watcher | None = getattr(request.app.state, "watcher", None)
    if as_of is not None or watcher is None:
        return None
    return watcher.fresh(datetime.now(UTC))


def _cached(snap: watch.Snapshot, key: tuple[object, ...], build: Callable[[], BaseModel | bytes]) -> Response:
    body = snap.responses.get(key)
    if body is None:
        built = build()
        body = snap.responses[key] = built if isinstance(built, bytes) else built.model_dump_json().encode()
    return Response(content=body, media_type="application/json")


def _forget_snapshot(request: Request) -> None:
    watcher: watch.Watcher | None = getattr(request.app.state, "watcher", None)
    if watcher is not None:
        watcher.forget()


def _settings(request: Request) -> RecognitionSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


@router.get("/posts/{post_id}", response_model=s.PostView, summary="A classified post (404 until processed)")
async def get_post(post_id: IdPath, request: Request, _: Read) -> s.PostView:
    return await _read(request, service.post_view, bounded=True, post_id=post_id)


async def _history_read(request: Request, work: Callable[..., BaseModel], **kwargs: object) -> BaseModel | Response:
    """A read whose cost follows a member's history: in a reader process when the service has them (its answer
    comes back as JSON), else, or while they keep failing to start, in a worker thread."""
    pool: read_pool.ReadPool | None = request.app.state.read_pool
    if pool is None or not pool.available:
        return await _read(request, work, **kwargs)
    return Response(content=await pool.read(work.__name__, **kwargs), media_type="application/json")


@router.get("/members/{member_id}", response_model=s.MemberView, summary="A member's labor and what they received")
async def get_member(member_id: IdPath, request: Request, _: Read, as_of: AsOf = None) -> s.MemberView | Response:
    return await _history_read(request, service.member_view, member_id=member_id, as_of=_as_of(as_of),  # type: ignore[return-value]
                               daily_cap=_settings(request).ledger.daily_cap)


async def _audited(request: Request, principal: auth.Principal, endpoint: str, as_of: datetime | None,
                   work: Callable[[Session], tuple[T, list[str]]], *, bounded: bool) -> T:
    """A burnout-risk read, answered only once who read whose risk is in the audit trail (503 otherwise)."""
    return await audit_trail.audited(request.app.state.audit_trail, request.app.state.engine, work,
                                     on_loop=request.app.state.reads_on_loop, bounded=bounded,
                                     reader=principal.name, endpoint=endpoint,
                                     as_of=as_of.astimezone(UTC) if as_of else None)


# Changes (posts, opt-outs, deletions) made this long before a snapshot was taken may not have been visible to
# it yet: a transaction that began before the snapshot's read can commit after it.
_SNAPSHOT_SLACK = timedelta(minutes=1)


@router.get("/members/{member_id}/burnout-risk", response_model=s.BurnoutRisk,
            summary="A member's acknowledgment gap (non-clinical), with drivers, evidence and actions (audited)")
async def get_burnout_risk(member_id: IdPath, request: Request, principal: Wellbeing,
                           as_of: AsOf = None) -> s.BurnoutRisk | Response:
    snap = _snapshot(request, as_of)
    if snap is not None:
        def from_snapshot(session: Session) -> tuple[Response | None, list[str]]:
            body = service.snapshot_risk(session=session, risks=snap.risks, taken_at=snap.as_of,
                                         member_id=member_id, slack=_SNAPSHOT_SLACK)
            if body is None:  # changed since the snapshot: computed below, and audited then
                return None, []
            return Response(content=body, media_type="application/json"), [member_id]

        answer = await _audited(request, principal, "member", as_of, from_snapshot, bounded=True)
        if answer is not None:
            return answer

    def on_demand(session: Session) -> tuple[s.BurnoutRisk, list[str]]:
        found = service.burnout_risk(session=session, settings=_settings(request), member_id=member_id,
                                     as_of=_as_of(as_of))
        return found, [found.member_id]

    return await _audited(request, principal, "member", as_of, on_demand, bounded=False)


@router.get("/burnout-risk", response_model=s.BurnoutList,
            summary="Members at or above a risk level, highest first (audited: one row per member returned)")
async def list_burnout_risk(request: Request, principal: Wellbeing, level: Level = "high",
                            limit: Annotated[int, Query(ge=1, le=500)] = 50,
                            as_of: AsOf = None) -> s.BurnoutList | Response:
    snap = _snapshot(request, as_of)
    if snap is not None:
        floor = risk.LEVEL_ORDER[level]

        def from_snapshot(session: Session) -> tuple[Response, list[str]]:
            # The snapshot is up to two periods old: members who opted out or were deleted since are dropped now.
            opted, deleted = privacy.hidden_since(session, since=snap.as_of - _SNAPSHOT_SLACK)
            chosen: list[str] = []
            hidden: set[str] = set()
            for member, member_level in snap.ranked:  # highest score first, so the level only falls
                if risk.LEVEL_ORDER[member_level] < floor or len(chosen) == limit:
                    break
                if member in opted or (deleted and members.member_key(member) in deleted):
                    hidden.add(member)
                else:
                    chosen.append(member)
            return _cached(snap, ("burnout", level, limit, frozenset(hidden)),
                           lambda: watch.risks_body(snap, chosen)), chosen

        return await _audited(request, principal, "list", as_of, from_snapshot, bounded=True)

    def on_demand(session: Session) -> tuple[s.BurnoutList, list[str]]:
        found = service.burnout_list(session=session, settings=_settings(request), level=level, limit=limit,
                                     as_of=_as_of(as_of))
        return found, [i.member_id for i in found.items]

    return await _audited(request, principal, "list", as_of, on_demand, bounded=False)


@router.post("/members/{member_id}/acknowledgements", status_code=201, response_model=s.AcknowledgementOut,
             summary="Record a brand acknowledgement (reward: lowers the member's risk)",
             responses={409: {"description": "this acknowledgement_id was recorded with different content",
                              "model": errors.ErrorBody}})
async def post_acknowledgement(member_id: IdPath, body: s.AcknowledgementIn, request: Request,
                               principal: Recognize) -> s.AcknowledgementOut:
    return await _read(request, service.acknowledge, member_id=member_id, body=body, recorded_by=principal.name,
                       now=datetime.now(UTC))


@router.get("/recognition/nominations", response_model=s.Nominations, summary="Ranked nominees for an award")
async def get_nominations(request: Request, _: Read, award: Literal[awards.Award],  # type: ignore[valid-type]
                          since: Window = None, until: Window = None,
                          limit: Annotated[int, Query(ge=1, le=100)] = 10) -> s.Nominations | Response:
    if since is None and until is None and limit <= watch.NOMINATION_LIMIT:
        snap = _snapshot(request, None)
        if snap is not None:
            ranked = snap.nominations[award]
            return _cached(snap, ("nominations", award, limit),
                           lambda: ranked.model_copy(update={"items": ranked.items[:limit]}))
    start, end = _window(since, until, days=service.NOMINATION_DAYS)
    return await _read(request, service.nominations, settings=_settings(request), award=award, since=start,
                       until=end, limit=limit)


@router.get("/members/{member_id}/thank-you", response_model=s.ThankYou,
            summary="A specific thank-you draft naming what the member did")
async def get_thank_you(member_id: IdPath, request: Request, _: Read, as_of: AsOf = None) -> s.ThankYou | Response:
    return await _history_read(request, service.thank_you, member_id=member_id, as_of=_as_of(as_of))  # type: ignore[return-value]


@router.get("/defect-topics", response_model=s.DefectTopics, summary="Flaw topics with stage, consensus and safety")
async def get_defect_topics(request: Request, _: Read,
                            consensus: Literal["investigating", "quirk", "defect", "contested"] | None = None,
                            as_of: AsOf = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                            ) -> s.DefectTopics | Response:
    snap = _snapshot(request, as_of)

    if snap is not None:
        return _cached(snap, ("topics", consensus, limit), lambda: watch.topics_body(snap, consensus, limit))
    topics = await _read(request, service.defect_topics, as_of=_as_of(as_of), consensus=None)
    chosen = [t for t in topics.items if consensus is None or t.consensus == consensus]
    return s.DefectTopics(as_of=topics.as_of, items=chosen[:limit])


@router.get("/community/health", response_model=s.CommunityHealth, summary="Community health over a window")
async def get_health(request: Request, _: Read, as_of: AsOf = None,
                     days: Annotated[int, Query(ge=1, le=365)] = service.HEALTH_DAYS) -> s.CommunityHealth | Response:
    snap = _snapshot(request, as_of) if days == service.HEALTH_DAYS else None
    if snap is not None:
        return _cached(snap, ("health",), lambda: snap.health)
    return await _read(request, service.community_health, settings=_settings(request), as_of=_as_of(as_of),
                       days=days)


@router.put("/members/{member_id}/wellbeing-opt-out", response_model=s.OptOut,
            summary="Opt a member out of (or back into) burnout-risk scoring; recognition goes on")
async def put_wellbeing_opt_out(member_id: IdPath, body: Annotated[s.OptOutIn, Body()], request: Request,
                                principal: Admin) -> s.OptOut:
    # Any id is accepted: a member may opt out before their first post reaches recognition.
    return await _read(request, service.set_opt_out, member_id=member_id, opted_out=body.opted_out,
                       by=principal.name, now=datetime.now(UTC))


@router.get("/audit/wellbeing-reads", response_model=s.WellbeingReads,
            summary="Who read whose burnout risk, and when (oldest first)")
async def get_wellbeing_reads(request: Request, _: Admin, since: Window = None, until: Window = None,
                              limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> s.WellbeingReads:
    start, end = _window(since, until, days=AUDIT_DAYS)
    return await _read(request, service.wellbeing_reads, audit=True, since=start, until=end, limit=limit)


AUDIT_DAYS = 30  # the default window of the audit trail


@router.delete("/members/{member_id}", status_code=202, response_model=members.DeletionAccepted,
               summary="Delete a member's content and everything derived from it, in every service")
async def delete_member(member_id: IdPath, request: Request, principal: Admin) -> members.DeletionAccepted:
    # Published first, so every service (this one's consumer too) applies it even if this process dies now;
    # then applied here at once, so this service's reads no longer show the member when the 202 arrives.
    event = await members.publish_deletion(request.app.state.kafka, member_id, requested_by=principal.name)
    now = datetime.now(UTC)
    await _read(request, service.delete_member, deletion=event, now=now)
    # Through the audit trail's writer: after every read stamped before now, which may not be written yet.
    await request.app.state.audit_trail.forget([event], now=now)
    _forget_snapshot(request)
    return members.DeletionAccepted(member_id=member_id, event_id=event.event_id, requested_at=event.requested_at)
