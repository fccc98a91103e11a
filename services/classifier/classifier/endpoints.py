from typing import Annotated

from fastapi import APIRouter, Depends, Request

from classifier import service
from classifier.backends import Item
from classifier.schemas import BatchRequest, BatchResponse, ClassifyRequest
from shared import auth, errors
from shared.events import Classification

router = APIRouter(prefix="/v1", tags=["classifier"], responses=errors.AUTH_RESPONSES)
# Classifying on request reads no stored data; it is open to any token with the `read` scope.
Read = Annotated[auth.Principal, Depends(auth.require("read"))]


def _item(req: ClassifyRequest) -> Item:
    return Item(req.content, req.parent_content, req.title)


@router.post("/classify", response_model=Classification, summary="Classify one post")
async def classify_one(body: ClassifyRequest, request: Request, _: Read) -> Classification:
    results = await service.classify(backend=request.app.state.backend, items=[_item(body)], path="http")
    return results[0]


@router.post("/classify/batch", response_model=BatchResponse, summary="Classify up to 1000 posts, same order")
async def classify_batch(body: BatchRequest, request: Request, _: Read) -> BatchResponse:
    results = await service.classify(backend=request.app.state.backend,
                                     items=[_item(i) for i in body.items], path="http")
    return BatchResponse(results=results)
