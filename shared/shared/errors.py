"""One error type with a status code, and the handlers that turn every failure into a JSON body naming the field."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared import db

log = logging.getLogger("anchor.errors")


class AnchorError(Exception):
    def __init__(self, status_code: int, code: str, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    error: str
    message: str
    fields: list[FieldError] = []


def _body(code: str, message: str, fields: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"error": code, "message": message, "fields": fields or []}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(AnchorError)
    async def _anchor(_: Request, exc: AnchorError) -> JSONResponse:
        fields = [{"field": exc.field, "message": exc.message}] if exc.field else []
        return JSONResponse(_body(exc.code, exc.message, fields), exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [{"field": _field_path(tuple(e.get("loc", ()))), "message": str(e.get("msg", "invalid"))}
                  for e in exc.errors()]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return JSONResponse(_body("validation_error", summary or "invalid request", fields), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI answers 400 when the body cannot even be decoded (e.g. invalid UTF-8); report it like
            # every other malformed body, as a 422 naming the field.
            return JSONResponse(_body("validation_error", "body: not valid UTF-8 JSON",
                                      [{"field": "body", "message": "not valid UTF-8 JSON"}]), 422)
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code, "error")
        return JSONResponse(_body(code, str(exc.detail)), exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        if db.is_transient(exc):
            log.warning("database unavailable", extra={"error": type(exc).__name__})
            return JSONResponse(_body("unavailable", "the database is unavailable; retry later"), 503,
                                headers={"Retry-After": "5"})
        log.exception("database error", exc_info=exc)
        return JSONResponse(_body("internal_error", "internal error"), 500)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(_body("internal_error", "internal error"), 500)


def _doc(description: str) -> dict[str, Any]:
    return {"description": description, "model": ErrorBody}


# Documented on every /v1 route so clients (and schemathesis) know each status the route can answer.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _doc("missing or unknown bearer token"),
    403: _doc("the token lacks the required scope"),
    413: _doc("request body too large"),
    422: _doc("invalid input; `fields` names each offending field"),
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: _doc("a dependency (Kafka or the database) is unavailable")}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _doc("unknown id")}
