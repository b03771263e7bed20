"""The FastAPI application factory: settings, store, middleware, error handlers and routers."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from gridpatrol.api import deps, errors, logs
from gridpatrol.api.config import Settings, load_settings
from gridpatrol.api.static_assets import check_vendor
from gridpatrol.gis.errors import GridPatrolError, InputError
from gridpatrol.layers import migrations, users
from gridpatrol.layers.store import Store, open_store
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("gridpatrol.api")
STATIC_DIR = Path(__file__).resolve().parent / "static"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await self._refuse(send, 400, "Content-Length header is not a number")
                return
            if too_big:
                await self._refuse(send, 413, self._message(int(declared)))
                return
        if declared is None and scope.get("method") in WRITE_METHODS:
            # A streamed body without Content-Length: read it up to the limit before the app
            # sees it (the framework would turn an error raised mid-parse into a vague 400).
            chunks: list[bytes] = []
            seen = 0
            while True:
                msg = await receive()
                if msg["type"] != "http.request":
                    return  # client went away
                chunk = msg.get("body", b"")
                seen += len(chunk)
                if seen > self.max_bytes:
                    await self._refuse(send, 413, self._message(seen))
                    return
                chunks.append(chunk)
                if not msg.get("more_body", False):
                    break
            body = b"".join(chunks)
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)

    def _message(self, size: int) -> str:
        return (f"request body of {size} bytes is over the limit of {self.max_bytes} bytes; "
                "send smaller pieces (or raise max_body_bytes in the settings)")

    @staticmethod
    async def _refuse(send: Send, status: int, message: str) -> None:
        resp = JSONResponse(errors.error_body(status, message, "InputError"), status)
        await send({"type": "http.response.start", "status": status, "headers": resp.raw_headers})
        await send({"type": "http.response.body", "body": resp.body})


PAGE_CSP = ("default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; "
            "form-action 'self'; connect-src 'self'; img-src 'self' data:{tiles}; style-src 'self'")
ALWAYS_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
                  (b"x-frame-options", b"DENY")]


def page_csp(settings: Settings) -> str:
    """The Content-Security-Policy of every HTML page: scripts, styles and data from our own origin only;
    images also from data: URIs and the configured basemap's origin."""
    from gridpatrol.api.display import tile_origin

    origin = tile_origin(settings)
    return PAGE_CSP.format(tiles=f" {origin}" if origin else "")


class SecurityHeaders:
    """nosniff, same-origin referrer and no framing on every response; the page CSP on every HTML one."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app, self.csp = app, csp.encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                headers = [(k, v) for k, v in msg.get("headers", []) if k.lower() not in dict(ALWAYS_HEADERS)]
                headers += ALWAYS_HEADERS
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html") and not any(k.lower() == b"content-security-policy" for k, _ in headers):
                    headers.append((b"content-security-policy", self.csp))
                msg = {**msg, "headers": headers}
            await send(msg)

        await self.app(scope, receive, secured)


class AccessLogAndAudit:
    """One JSON log line per request (method, path, status, duration, user), and an audit entry
    for every write attempt, allowed or refused (who, when, what, outcome).

    Plain ASGI rather than an ``@app.middleware("http")`` function, which costs a task and a
    stream per request. The audit entry is written before the response starts, so a client that
    got its answer finds the entry in the log.
    """

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app, self.store = app, store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        method, path = scope["method"], scope["path"]
        state = scope.setdefault("state", {})
        status = 500

        async def logged_send(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
                if method in WRITE_METHODS:
                    await self._audit(scope, state, method, path, status)
            await send(msg)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            principal = state.get("principal")
            client = scope.get("client")
            log.info("request", extra={
                "method": method, "path": path, "status": status,
                "duration_ms": round((time.perf_counter() - t0) * 1000, 2),
                "user": principal.name if principal is not None else None,
                "client": client[0] if client else None,
            })

    async def _audit(self, scope: Scope, state: dict, method: str, path: str, status: int) -> None:
        actor = state.get("principal")  # recorded by user id; None: no user was resolved
        detail: dict[str, Any] = {"status": status, "query": scope.get("query_string", b"").decode("latin-1")[:2000]}
        detail.update(state.get("audit_detail") or {})
        action = "login" if path == "/auth/token" else f"{method} {path}"
        try:
            await run_in_threadpool(users.record_audit, self.store, actor, action, path, detail)
        except Exception:  # noqa: BLE001  the response stands even if the audit store hiccups
            log.exception("audit write failed", extra={"path": path})


def _include_routers(app: FastAPI) -> None:
    """Include the service's routers, the map click first (routing tries them in order)."""
    from gridpatrol.api import ogc, pages
    from gridpatrol.api.routes import (
        areas,
        auth,
        buildings,
        cameras,
        export,
        grids,
        incidents,
        jobs,
        lookup,
        maps,
        phone,
        planner,
        routes,
        tracks,
    )

    for module in (lookup, auth, ogc, pages, areas, buildings, cameras, export, grids, incidents, maps,
                   planner, routes, phone, jobs, tracks):
        app.include_router(module.router)


def read_dsn(settings: Settings, store: Store) -> str | None:
    """The libpq string the one-statement read paths (map click, OGC item pages) use: the replica's
    when ``replica_db`` is set, else the store's (None on GeoPackage)."""
    if not settings.replica_db:
        return store.postgres_dsn
    if store.postgres_dsn is None:
        raise InputError("replica_db is set but the store is a GeoPackage: a replica needs a PostGIS store",
                         where="replica_db", hint="unset replica_db (GRIDPATROL_REPLICA_DB) or serve a PostGIS store")
    from gridpatrol.layers.store import libpq_conninfo, resolve_url

    return libpq_conninfo(resolve_url(settings.replica_db))


def create_app(store_url: str | None = None, *, settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """The gridpatrol service for the store at ``store_url`` (default: settings.db, GRIDPATROL_DB).

    Opens (and migrates) the store once; its engine pools connections for all requests.
    """
    settings = settings or load_settings()
    logs.configure(settings.log_level, settings.log_json)
    store = store or open_store(store_url or settings.db)
    from gridpatrol.api.routes.jobs import with_local_worker

    app = FastAPI(
        title="gridpatrol",
        summary="Grid management (网格化管理): grids, patrol routes, cameras and incidents, with OGC API – Features.",
        version="0.1.0",
        docs_url=None,  # served below from the vendored swagger-ui: FastAPI's default loads it from a CDN
        redoc_url=None,
        # closes the async PostGIS pool (api.deps.PgPool); on GeoPackage runs the job worker thread
        lifespan=with_local_worker(deps.lifespan),
    )
    app.state.settings = settings
    app.state.store = store
    app.state.read_dsn = read_dsn(settings, store)
    errors.install(app)

    from gridpatrol.api.ogc import ItemsFastPath
    from gridpatrol.api.routes.lookup import LookupFastPath

    app.add_middleware(ItemsFastPath)  # innermost: inside the access log (see api/ogc.py)
    app.add_middleware(LookupFastPath)  # inside the access log too (see api/routes/lookup.py)
    app.add_middleware(AccessLogAndAudit, store=store)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders, csp=page_csp(settings))  # outermost: every response, errors included
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """The interactive API docs, with swagger-ui served by this app (works offline, under the page CSP)."""
        from gridpatrol.api.pages import TEMPLATES

        return HTMLResponse(TEMPLATES.get_template("docs.html").render(openapi_url=app.openapi_url or "/openapi.json"))

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Readiness")
    def readyz() -> JSONResponse:
        """Ready when the store answers at the current schema version and the map assets exist."""
        checks: dict[str, str] = {}
        ok = True
        try:
            version = migrations.schema_version(store.engine)
            checks["store"] = f"ok ({store.dialect}, schema {version})"
            if version != migrations.CURRENT_VERSION:
                ok = False
                checks["store"] = f"schema {version}, expected {migrations.CURRENT_VERSION}"
        except Exception as exc:  # noqa: BLE001  any failure means "not ready", with the reason
            ok = False
            checks["store"] = f"unreachable: {str(exc).splitlines()[0][:200]}"
        try:
            check_vendor()
            checks["map_assets"] = "ok"
        except GridPatrolError as exc:
            ok = False
            checks["map_assets"] = str(exc)
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503)

    _include_routers(app)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory gridpatrol.api.app:app_from_env`` (settings and store from GRIDPATROL_*)."""
    return create_app()
