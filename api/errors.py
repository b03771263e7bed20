"""Map errors to JSON responses: GridPatrolError → its 4xx with the same message; never a 500 for bad input."""
from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from gridpatrol.api.auth import AuthError
from gridpatrol.api.static_assets import AssetsMissing
from gridpatrol.gis.errors import (
    ConflictError,
    GridPatrolError,
    InputError,
    NotFoundError,
    PermissionDenied,
    StoreError,
)
from gridpatrol.layers.audit import AuditChainBroken
from gridpatrol.layers.logins import LoginLocked
from gridpatrol.layers.reports import PhotoTooLarge
from gridpatrol.layers.store import db_error_line
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

# The HTTP status of each kind of error (the most specific class in the error's MRO wins).
HTTP_STATUS: dict[type[GridPatrolError], int] = {
    GridPatrolError: 400, AuthError: 401, PermissionDenied: 403, NotFoundError: 404, ConflictError: 409,
    InputError: 422, PhotoTooLarge: 413, LoginLocked: 429, AuditChainBroken: 500, StoreError: 503, AssetsMissing: 503,
}


def http_status(exc: GridPatrolError) -> int:
    """The HTTP status the API answers ``exc`` with."""
    return next(HTTP_STATUS[c] for c in type(exc).__mro__ if c in HTTP_STATUS)

log = logging.getLogger("gridpatrol.api")


def error_body(status: int, message: str, kind: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error: ``detail`` is the human message (as the CLI prints it)."""
    return {"detail": message, "error": kind, "status": status, **extra}


def _loc(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "header", "cookie"):
        return f"{parts[0]} parameter {'.'.join(parts[1:])!r}"
    if parts and parts[0] == "body":
        return "request body" + (f" field {'.'.join(parts[1:])!r}" if len(parts) > 1 else "")
    return ".".join(parts) or "request"


def validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    """A readable one-line message for a validation error, plus the per-field problems."""
    problems = []
    for err in exc.errors():
        value = err.get("input")
        shown = repr(value) if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__
        if isinstance(value, str) and len(shown) > 80:
            shown = shown[:77] + "…'"
        msg = str(err.get("msg", "")).replace("a valid dictionary", "a JSON object")
        problems.append({"where": _loc(tuple(err.get("loc", ()))), "problem": msg, "got": shown})
    text = "; ".join(f"{p['where']}: {p['problem']} (got {p['got']})" for p in problems[:5])
    if len(problems) > 5:
        text += f"; and {len(problems) - 5} more"
    return text or "invalid request", problems


# Seconds a client should wait before retrying when the store is unreachable (503).
RETRY_AFTER_S = 2


def _unavailable(exc: Exception) -> JSONResponse:
    """503 with Retry-After for a store that dropped or refused the connection."""
    log.error("store unavailable", extra={"error": db_error_line(exc)})
    return JSONResponse(error_body(503, f"the store is unavailable; try again in {RETRY_AFTER_S} s", "StoreError"),
                        503, headers={"Retry-After": str(RETRY_AFTER_S)})


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(GridPatrolError)
    async def _gp(request: Request, exc: GridPatrolError) -> JSONResponse:
        status = http_status(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        if getattr(exc, "retry_after_s", None):  # 429 (login locked), 503: when to try again
            headers["Retry-After"] = str(int(exc.retry_after_s))
        elif status == 503:
            headers["Retry-After"] = str(RETRY_AFTER_S)
        return JSONResponse(error_body(status, str(exc), type(exc).__name__), status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        text, problems = validation_message(exc)
        return JSONResponse(error_body(422, text, "ValidationError", problems=problems), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path}"
            detail += " (see /docs for the API)"
        elif exc.status_code == 405:
            detail = f"method {request.method} not allowed on {request.url.path}"
        return JSONResponse(error_body(exc.status_code, detail, "HTTPError"), exc.status_code, headers=exc.headers)

    @app.exception_handler(RecursionError)
    async def _recursion(request: Request, exc: RecursionError) -> JSONResponse:
        # A JSON body nested hundreds of levels deep: the caller's input, refused before any work.
        return JSONResponse(error_body(422, "request body: JSON nested too deeply; send GeoJSON or flat records",
                                       "InputError"), 422)

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        # A number too large for the store (ids are 32/64-bit): the caller's input, not our failure.
        return JSONResponse(error_body(422, f"a number in the request is too large: {exc}", "InputError"), 422)

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value (out of range, malformed geometry): the caller's input.
        msg = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return JSONResponse(error_body(400, f"the store refused a value: {msg}", "InputError"), 400)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # A unique or foreign-key rule of the store refused the write: it conflicts with what is there.
        log.warning("integrity error", extra={"path": request.url.path, "error": str(exc.orig).splitlines()[0]})
        return JSONResponse(error_body(409, "the change conflicts with existing data (a duplicate or a dangling "
                                            "reference); reload and try again", "ConflictError"), 409)

    @app.exception_handler(OperationalError)
    async def _operational(request: Request, exc: OperationalError) -> JSONResponse:
        return _unavailable(exc)

    try:
        from psycopg import OperationalError as PgOperationalError
    except ImportError:  # a GeoPackage-only install
        PgOperationalError = None  # noqa: N806
    if PgOperationalError is not None:
        @app.exception_handler(PgOperationalError)
        async def _pg_operational(request: Request, exc: Exception) -> JSONResponse:
            return _unavailable(exc)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.exception("internal error", extra={"error_id": incident, "path": request.url.path})
        return JSONResponse(
            error_body(500, f"internal error {incident}; the administrator finds it in the server log", "InternalError"),
            500,
        )
