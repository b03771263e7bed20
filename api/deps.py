"""Request dependencies: the store, the settings and the current user (from the bearer token)."""
from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer

from api.auth import AuthError, decode_token
from api.config import Settings
from layers import users
from layers.store import Store
from layers.users import ANONYMOUS, Principal

# auto_error=False: a missing token means "anonymous", which current_user decides about.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)
COOKIE = "gp_token"


def get_store(request: Request) -> Store:
    """The app's store (opened once at startup; its engine pools connections)."""
    return request.app.state.store


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


# Users re-read from the store at most every USER_TTL_S seconds per process: a deactivated user
# or a changed role takes effect within that time (at once in the process that made the change,
# see forget_user), and busy map pages do not query per request.
USER_TTL_S = 5.0
_users: dict[tuple[str, str], tuple[float, Principal | None]] = {}


def _cached_user(store: Store, name: str) -> Principal | None:
    key = (store.url, name)
    now = time.monotonic()
    hit = _users.get(key)
    if hit is not None and now - hit[0] < USER_TTL_S:
        return hit[1]
    principal = users.get_user(store, name)
    if len(_users) > 10_000:
        _users.clear()
    _users[key] = (now, principal)
    return principal


def forget_user(store: Store, name: str) -> None:
    """Drop ``name`` from this process's user cache, so a change to the user applies at once."""
    _users.pop((store.url, name), None)


def current_user(request: Request, token: str | None = None) -> Principal:
    """The user of this request: from the bearer token, else anonymous (viewer) if allowed.

    Raises AuthError (401) for a bad token, or for no token when anonymous reading is off.
    The user is re-read from the store (at most every USER_TTL_S seconds), so a deactivated user
    or a changed role takes effect within that time.
    """
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    if token is None:
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" and value.strip() else None
    if token is None and request.method in ("GET", "HEAD"):
        # Map pages log in with a cookie. It is honoured for reads only, so a forged cross-site
        # form cannot write anything (writes need the Authorization header).
        token = request.cookies.get(COOKIE) or None
    settings = get_settings(request)
    if token is None:
        if not settings.allow_anonymous:
            raise AuthError("log in first", hint="POST /auth/token with username and password")
        principal = ANONYMOUS
    else:
        name = decode_token(settings, token)
        principal = _cached_user(get_store(request), name)
        if principal is None:
            raise AuthError(f"user {name!r} no longer exists or is deactivated")
    request.state.principal = principal
    return principal


def _current_user_dep(request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]) -> Principal:
    return current_user(request, token)


# Row ids are 32-bit integers in both stores: larger numbers are refused with 422, not sent to SQL.
MAX_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="row id")]
StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
UserDep = Annotated[Principal, Depends(_current_user_dep)]
