import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime

from recognition import service
from recognition.schemas import MemberView, PostView
from shared import app as base
from shared import auth, db, errors

router = APIRouter(prefix="/v1", tags=["recognition"],
                   responses=errors.AUTH_RESPONSES | errors.UNAVAILABLE | errors.NOT_FOUND,
                   dependencies=[Depends(base.database_ready)])
Read = Annotated[auth.Principal, Depends(auth.require("read"))]
AsOf = Annotated[AwareDatetime | None, Query(description="RFC 3339 instant to replay history at (default now)")]
IdPath = Annotated[str, Path(min_length=1, max_length=128)]


def _as_of(value: datetime | None) -> datetime:
    return (value or datetime.now(UTC)).astimezone(UTC)


@router.get("/posts/{post_id}", response_model=PostView, summary="A classified post (404 until processed)")
async def get_post(post_id: IdPath, request: Request, _: Read) -> PostView:
    def read() -> PostView:
        with db.unit_of_work(request.app.state.engine) as session:
            return service.post_view(session=session, post_id=post_id)

    return await asyncio.to_thread(read)


@router.get("/members/{member_id}", response_model=MemberView, summary="A member's labor and what they received")
async def get_member(member_id: IdPath, request: Request, _: Read, as_of: AsOf = None) -> MemberView:
    when = _as_of(as_of)

    def read() -> MemberView:
        with db.unit_of_work(request.app.state.engine) as session:
            return service.member_view(session=session, member_id=member_id, as_of=when)

    return await asyncio.to_thread(read)
