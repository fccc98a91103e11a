"""One error type with a status code, and the handlers that turn every failure into a JSON body naming the field."""

import logging
from typing import Any

import fastapi.routing
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


def _field_error(error: dict[str, Any]) -> dict[str, str]:
    if error.get("type") == "json_invalid":
        # loc is ("body", character offset): name the body, and say where and why it is not JSON.
        loc = tuple(error.get("loc", ()))
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        detail = (error.get("ctx") or {}).get("error")
        return {"field": "body", "message": f"not valid JSON{where}" + (f": {detail}" if detail else "")}
    return {"field": _field_path(tuple(error.get("loc", ()))), "message": str(error.get("msg", "invalid"))}


def _undecodable(cause: BaseException | None) -> str:
    """Why a body could not be decoded, from the exception FastAPI wrapped in its 400."""
    if isinstance(cause, UnicodeDecodeError):
        return f"not valid UTF-8 (byte {cause.start}: {cause.reason})"
    if isinstance(cause, RecursionError):
        return "JSON nested too deeply"
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        return "a JSON number has too many digits"
    return "not valid UTF-8 JSON"


def routes(app: FastAPI) -> list[Any]:
    """Every route the app serves, with routers' prefixes and dependencies applied (FastAPI keeps an included
    router as one entry of `app.routes`)."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(flatten(app.routes)) if flatten is not None else list(app.routes)


def _allowed_methods(request: Request) -> list[str]:
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for route in routes(request.app):
        regex = getattr(route, "path_regex", None)
        if regex is not None and getattr(route, "methods", None) and regex.match(path):
            methods |= set(route.methods)
    return sorted(methods)


def database_unavailable(exc: DBAPIError) -> str:
    """What a request refused by a transient database failure (`db.is_transient`) is told: a 503's message."""
    return ("the database did not answer within the statement timeout; retry later" if db.is_timeout(exc)
            else "the database is unavailable; retry later")


def install(app: FastAPI) -> None:
    @app.exception_handler(AnchorError)
    async def _anchor(_: Request, exc: AnchorError) -> JSONResponse:
        fields = [{"field": exc.field, "message": exc.message}] if exc.field else []
        return JSONResponse(_body(exc.code, exc.message, fields), exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [_field_error(e) for e in exc.errors()]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return JSONResponse(_body("validation_error", summary or "invalid request", fields), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI answers 400 when the body cannot even be decoded; report it like every other malformed
            # body, as a 422 naming the field and the reason.
            reason = _undecodable(exc.__cause__)
            return JSONResponse(_body("validation_error", f"body: {reason}", [{"field": "body", "message": reason}]),
                                422)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names only the methods of the first route whose path matched; several routes may share
            # a path (GET and DELETE /v1/members/{member_id}), so list them all.
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code, "error")
        return JSONResponse(_body(code, str(exc.detail)), exc.status_code, headers=headers)

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        if db.is_transient(exc):
            log.warning("database too slow" if db.is_timeout(exc) else "database unavailable",
                        extra={"error": type(exc).__name__})
            return JSONResponse(_body("unavailable", database_unavailable(exc)), 503, headers={"Retry-After": "5"})
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
RATE_LIMITED: dict[int | str, dict[str, Any]] = {429: {
    **_doc("the token is over its rate limit (records per second); retry after `Retry-After` seconds"),
    "headers": {"Retry-After": {"description": "whole seconds to wait before sending this request again",
                                "required": True, "schema": {"type": "integer", "minimum": 1}}}}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _doc("unknown id")}
