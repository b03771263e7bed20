"""Request dependencies: the store, the settings, the current user (from the bearer token) and,
on PostGIS, an asyncio connection pool for the hot read paths."""
from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.utils import get_authorization_scheme_param
from gridpatrol.api.auth import AuthError, TokenClaims, decode_token, revoked_token
from gridpatrol.api.config import Settings
from gridpatrol.api.errors import RETRY_AFTER_S
from gridpatrol.gis.errors import GridPatrolError, StoreError
from gridpatrol.layers import users
from gridpatrol.layers.features import PAGE_SETTINGS
from gridpatrol.layers.models import MAX_ID
from gridpatrol.layers.store import Store, db_error_line
from gridpatrol.layers.users import ANONYMOUS, Principal
from starlette.requests import HTTPConnection
from starlette.types import Scope

COOKIE = "gp_token"


def get_store(request: Request) -> Store:
    """The app's store (opened once at startup; its engine pools connections)."""
    return request.app.state.store


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


# Users re-read from the store at most every USER_TTL_S seconds per process: a deactivated user,
# a changed role or revoked tokens take effect within that time (at once in the process that made
# the change, see forget_user), and busy map pages do not query per request.
# (store URL, name) → (monotonic read time, the active user or None, the user's token version or
# None when there is no such user).
USER_TTL_S = 5.0
_users: dict[tuple[str, str], tuple[float, Principal | None, int | None]] = {}
# When forget_user last dropped a user: a read that began before must not be cached after it.
_forgotten: dict[tuple[str, str], float] = {}
# Verified tokens → their claims, so the signature is not checked again on every request. A token's
# signature and expiry never change, so an entry lives until the token expires (at most
# TOKEN_CACHE_S). Whether the token is revoked is not cached here: every request compares the
# token's version with the user's current one from the user cache above, so a revoked token is
# refused as soon as that entry is (at most USER_TTL_S old).
TOKEN_CACHE_S = 300.0
_tokens: dict[tuple[str, str], tuple[float, TokenClaims]] = {}


def token_claims(settings: Settings, token: str) -> TokenClaims:
    """The claims of ``token`` (AuthError if invalid), from the cache of verified tokens."""
    key = (settings.secret_key, token)
    now = time.time()
    hit = _tokens.get(key)
    if hit is not None and now < hit[0]:
        return hit[1]
    claims = decode_token(settings, token)
    if len(_tokens) > 10_000:
        _tokens.clear()
    _tokens[key] = (min(claims.exp, now + TOKEN_CACHE_S), claims)
    return claims


def fresh_user(store: Store, name: str, version: int | None = None) -> tuple[bool, Principal | None]:
    """(True, user) if this process read ``name`` within USER_TTL_S seconds, else (False, None).

    With a token's ``version``: also (False, None) when the token is newer than the entry (the
    user was changed and logged in through another process), so the store is asked again."""
    hit = _users.get((store.url, name))
    if hit is None or time.monotonic() - hit[0] >= USER_TTL_S:
        return False, None
    if version is not None and version > (-1 if hit[2] is None else hit[2]):
        return False, None
    return True, hit[1]


def _cached_user(store: Store, name: str, version: int | None = None) -> Principal | None:
    """The active user ``name`` (None: deactivated or unknown), from the cache when fresh (see
    :func:`fresh_user`), else read from the store."""
    fresh, principal = fresh_user(store, name, version)
    if fresh:
        return principal
    key = (store.url, name)
    started = time.monotonic()
    principal, known_version = users.get_user_state(store, name)
    if len(_users) > 10_000:
        _users.clear()
    if _forgotten.get(key, -1.0) < started:  # else the user changed during the read: do not cache it
        _users[key] = (started, principal, known_version)
    return principal


def remember_user(store: Store, principal: Principal) -> None:
    """Cache a user just read from the store (a successful login), replacing an older entry: a user
    re-enabled by another process can use the token they were just given at once."""
    if len(_users) > 10_000:
        _users.clear()
    _users[(store.url, principal.name)] = (time.monotonic(), principal, principal.token_version)


def forget_user(store: Store, name: str) -> None:
    """Drop ``name`` from this process's user cache, so a change to the user (revoked tokens
    included) applies at once."""
    key = (store.url, name)
    if len(_forgotten) > 10_000:
        _forgotten.clear()
    _forgotten[key] = time.monotonic()
    _users.pop(key, None)


def _token_principal(principal: Principal | None, claims: TokenClaims) -> Principal:
    """The user of a verified token: AuthError if the user is deactivated or the token revoked."""
    if principal is None:
        raise AuthError(f"user {claims.name!r} no longer exists or is deactivated")
    if claims.version < principal.token_version:
        raise revoked_token()
    if claims.version > principal.token_version:  # signed by us, yet newer than the store: not valid here
        raise AuthError("invalid access token", hint="log in at POST /auth/token")
    return principal


def request_token(request: HTTPConnection) -> str | None:
    """The access token of a request: ``Authorization: Bearer …``, else the map pages' cookie
    (for reads, and for writes only from our own pages' scripts). The one reader of both."""
    authorization = request.headers.get("authorization")
    scheme, value = get_authorization_scheme_param(authorization)  # FastAPI's OAuth2 parser
    if authorization and scheme.lower() == "bearer":
        return value
    if request.scope.get("method") in ("GET", "HEAD") or _page_write(request):
        # A forged cross-site form cannot write anything with the cookie (see _page_write).
        return request.cookies.get(COOKIE) or None
    return None


def client_address(request: Request) -> str | None:
    """The client's IP address as the server sees it (behind a reverse proxy: the proxy's)."""
    return request.client.host if request.client is not None else None


PAGE_HEADER = "x-gridpatrol-page"


def _page_write(request: HTTPConnection) -> bool:
    """A write sent by a script of our own pages: it carries ``X-GridPatrol-Page: 1`` (a cross-site form
    cannot set a header, a cross-origin script would need a CORS preflight we never grant) and an Origin
    naming this host."""
    origin = request.headers.get("origin")
    return (request.headers.get(PAGE_HEADER) == "1" and origin is not None
            and urlsplit(origin).netloc == request.headers.get("host"))


def principal_for_token(store: Store, settings: Settings, token: str | None, *,
                        read_store: bool = True) -> Principal | None:
    """The user of an access token (None: anonymous, a viewer, if allowed), the one decision
    every route and the map click's fast path make.

    Raises AuthError (401) for a bad, revoked or deactivated user's token, or for no token when
    anonymous reading is off. The user is re-read from the store at most every USER_TTL_S
    seconds; with ``read_store=False`` the answer is None instead of a store read."""
    if token is None:
        if not settings.allow_anonymous:
            raise AuthError("log in first", hint="POST /auth/token with username and password")
        return ANONYMOUS
    claims = token_claims(settings, token)
    fresh, principal = fresh_user(store, claims.name, claims.version)
    if not fresh:
        if not read_store:
            return None
        principal = _cached_user(store, claims.name, claims.version)
    return _token_principal(principal, claims)


def known_principal(scope: Scope, store: Store, settings: Settings) -> Principal | None:
    """The user of a request as every route decides it (:func:`request_token` and
    :func:`principal_for_token`), without reading the store: None when the route must decide (a
    user not in the fresh cache, a bad or revoked token, no token where anonymous reading is off).
    The fast paths in front of FastAPI (the map click, OGC item pages) answer only for such a user."""
    try:
        return principal_for_token(store, settings, request_token(HTTPConnection(scope)), read_store=False)
    except GridPatrolError:
        return None  # the route refuses it, with its message


def fast_path_user(scope: Scope, parsed: object) -> Principal | None:
    """The user a fast path in front of FastAPI may answer for: None (the route answers) unless its query
    parsed (``parsed`` is not None), the app has a read pool (``read_dsn``, see :func:`pg_pool`: PostGIS, on
    the replica when one is set) and the token is one this process knows (:func:`known_principal`)."""
    app = scope.get("app")
    if parsed is None or app is None or getattr(app.state, "read_dsn", None) is None:
        return None
    return known_principal(scope, app.state.store, app.state.settings)


def current_user(request: Request, token: str | None = None) -> Principal:
    """The user of this request (``token``: instead of the request's own), see
    :func:`principal_for_token`; remembered on the request."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    principal = principal_for_token(get_store(request), get_settings(request),
                                    request_token(request) if token is None else token)
    request.state.principal = principal
    return principal


class _CurrentUser(OAuth2PasswordBearer):
    """The current-user dependency; an OAuth2 scheme, so the API docs offer the password login."""

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        """:func:`current_user` on the event loop: the store is only read (in a worker thread)
        when the user cache has no fresh entry."""
        cached = getattr(request.state, "principal", None)
        if cached is not None:
            return cached
        store, settings, token = get_store(request), get_settings(request), request_token(request)
        principal = principal_for_token(store, settings, token, read_store=False)
        if principal is None:
            principal = await run_in_threadpool(principal_for_token, store, settings, token)
        request.state.principal = principal
        return principal


_current_user_dep = _CurrentUser(tokenUrl="/auth/token", auto_error=False)


# Plain functions would run in a worker thread per request (FastAPI does that for every
# non-async dependency); these only read app.state.
async def _store_dep(request: Request) -> Store:
    return request.app.state.store


async def _settings_dep(request: Request) -> Settings:
    return request.app.state.settings


# ---------------------------------------------------------------------------------------------
# An asyncio pool of psycopg connections (PostGIS only) for the read paths that run one
# statement per request (the map click), so they need no worker thread and no SQLAlchemy.

class PgPool:
    """A psycopg_pool AsyncConnectionPool of up to ``size`` autocommit connections; statements
    are prepared on the server, with generic plans (planned once per connection). When a
    statement meets a connection the server dropped, every idle connection is checked (dead ones
    discarded) before the one retry; connections are not checked on every checkout, which would
    cost the busiest request a round trip."""

    def __init__(self, dsn: str, size: int) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.size, self.dsn = max(1, int(size)), dsn
        self.pool = AsyncConnectionPool(
            dsn, min_size=1, max_size=self.size, open=False, kwargs={"autocommit": True},
            configure=self._configure, timeout=10.0)
        self._opened = False
        self._lock = asyncio.Lock()

    @staticmethod
    async def _configure(conn: Any) -> None:
        # The OGC item pages' settings (times in UTC, no JIT, no parallel workers) suit every
        # one-statement read of this pool; the map click's statement writes its times itself.
        for key, value in {"plan_cache_mode": "force_generic_plan", **PAGE_SETTINGS}.items():
            await conn.execute(f"SET {key} = '{value}'")

    async def open(self) -> None:
        """Open the pool (once; later calls return at once)."""
        if self._opened:
            return
        async with self._lock:
            if not self._opened:
                await self.pool.open(wait=False)
                self._opened = True

    async def fetchone(self, sql: str, params: dict[str, Any]) -> tuple | None:
        """The first row of ``sql``; retried once on another connection if the server dropped the
        connection (a restart, ``pg_terminate_backend``); StoreError (503) if that fails too."""
        import psycopg
        from psycopg_pool import PoolTimeout

        await self.open()
        for attempt in (0, 1):
            try:
                async with self.pool.connection() as conn:
                    cur = await conn.execute(sql, params, prepare=True)
                    return await cur.fetchone()
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if attempt:
                    raise store_unavailable(exc, self.dsn) from None
                await self.pool.check()  # a restart or pg_terminate_backend drops them all
        return None  # not reached

    async def close(self) -> None:
        """Close every connection of the pool."""
        if self._opened:
            await self.pool.close()
            self._opened = False


def store_unavailable(exc: BaseException, dsn: str | None = None) -> StoreError:
    """The 503 error (with Retry-After, see api.errors) for a store that cannot be reached at ``dsn``."""
    return StoreError(f"the store is unavailable ({db_error_line(exc, dsn)}); try again in {RETRY_AFTER_S} s")


_pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def pg_pool(app: FastAPI) -> PgPool | None:
    """The PostGIS pool of ``app`` for the running event loop (None on GeoPackage), on the replica
    when one is configured (``replica_db``)."""
    dsn = getattr(app.state, "read_dsn", None)
    if dsn is None:
        return None
    per_loop = _pools.setdefault(asyncio.get_running_loop(), {})
    pool = per_loop.get(id(app))
    if pool is None:
        pool = per_loop[id(app)] = PgPool(dsn, app.state.settings.pg_async_pool)
    return pool


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open this app's async pool when the server starts and close it when it stops."""
    pool = pg_pool(app)
    if pool is not None:
        await pool.open()
    yield
    pool = _pools.get(asyncio.get_running_loop(), {}).pop(id(app), None)
    if pool is not None:
        await pool.close()


RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="row id")]
StoreDep = Annotated[Store, Depends(_store_dep)]
SettingsDep = Annotated[Settings, Depends(_settings_dep)]
UserDep = Annotated[Principal, Depends(_current_user_dep)]
