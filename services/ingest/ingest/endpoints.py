from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from ingest import service
from ingest.schemas import Accepted, PostBatch, ReactionBatch
from shared import app as base
from shared import auth, errors, events, members, ratelimit

router = APIRouter(prefix="/v1", tags=["ingest"], responses=errors.AUTH_RESPONSES | errors.UNAVAILABLE)
Ingest = Annotated[auth.Principal, Depends(auth.require("ingest", ready=base.database_ready))]
Admin = Annotated[auth.Principal, Depends(auth.require("admin", ready=base.database_ready))]
IdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=events.ID_PATTERN)]


def _admit(request: Request, principal: auth.Principal, kind: str, records: int) -> None:
    """The token's rate limit, counted in records: 429 with Retry-After when its bucket cannot pay for them."""
    limiter: ratelimit.RateLimiter | None = request.app.state.rate_limiter
    if limiter is None:
        return
    wait = limiter.acquire(principal.name, records)
    if wait > 0:
        service.RATE_LIMITED.labels(principal.name, kind).inc()
        after = ratelimit.retry_after(wait)
        raise errors.AnchorError(
            429, "rate_limited",
            f"token '{principal.name}' is over its limit of {limiter.rate:g} records per second "
            f"(burst {limiter.burst:g}); this request of {records} records may be sent again in {after} s",
            headers={"Retry-After": after})


@router.post("/posts", status_code=202, response_model=Accepted, summary="Accept 1 to 1000 posts",
             responses=errors.RATE_LIMITED)
async def post_posts(batch: PostBatch, request: Request, principal: Ingest) -> Accepted:
    _admit(request, principal, "post", len(batch.posts))
    state = request.app.state
    stored = await service.accept_posts(engine=state.engine, producer=state.kafka, posts=batch.posts)
    return Accepted(accepted=len(stored.outgoing), duplicates=stored.duplicates)


@router.post("/reactions", status_code=202, response_model=Accepted, summary="Accept 1 to 1000 reactions",
             responses=errors.RATE_LIMITED)
async def post_reactions(batch: ReactionBatch, request: Request, principal: Ingest) -> Accepted:
    _admit(request, principal, "reaction", len(batch.reactions))
    state = request.app.state
    stored = await service.accept_reactions(engine=state.engine, producer=state.kafka,
                                            reactions=batch.reactions)
    return Accepted(accepted=len(stored.outgoing), duplicates=stored.duplicates)


@router.delete("/members/{member_id}", status_code=202, response_model=members.DeletionAccepted,
               responses=errors.NOT_FOUND,
               summary="Delete a member's content and everything derived from it, in every service")
async def delete_member(member_id: IdPath, request: Request, principal: Admin) -> members.DeletionAccepted:
    state = request.app.state
    event = await service.delete_member(engine=state.engine, producer=state.kafka, member_id=member_id,
                                        requested_by=principal.name)
    return members.DeletionAccepted(member_id=member_id, event_id=event.event_id, requested_at=event.requested_at)
