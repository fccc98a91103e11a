from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ingest import service
from ingest.schemas import Accepted, PostBatch, ReactionBatch
from shared import app as base
from shared import auth, errors

router = APIRouter(prefix="/v1", tags=["ingest"], responses=errors.AUTH_RESPONSES | errors.UNAVAILABLE,
                   dependencies=[Depends(base.database_ready)])
Ingest = Annotated[auth.Principal, Depends(auth.require("ingest"))]


@router.post("/posts", status_code=202, response_model=Accepted, summary="Accept 1 to 1000 posts")
async def post_posts(batch: PostBatch, request: Request, _: Ingest) -> Accepted:
    state = request.app.state
    stored = await service.accept_posts(engine=state.engine, producer=state.kafka, posts=batch.posts)
    return Accepted(accepted=len(stored.outgoing), duplicates=stored.duplicates)


@router.post("/reactions", status_code=202, response_model=Accepted, summary="Accept 1 to 1000 reactions")
async def post_reactions(batch: ReactionBatch, request: Request, _: Ingest) -> Accepted:
    state = request.app.state
    stored = await service.accept_reactions(engine=state.engine, producer=state.kafka,
                                            reactions=batch.reactions)
    return Accepted(accepted=len(stored.outgoing), duplicates=stored.duplicates)
