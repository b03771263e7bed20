"""Log in (OAuth2 password flow), log out everywhere, who-am-I, users and the audit log."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request, Response
from gridpatrol.api import deps
from gridpatrol.api.auth import (
    PERMISSIONS,
    AuthError,
    can,
    issue_token,
    require_permission,
    visible_layers,
)
from gridpatrol.api.deps import SettingsDep, StoreDep, UserDep
from gridpatrol.layers import users
from pydantic import BaseModel, Field, StrictInt

router = APIRouter(prefix="/auth", tags=["auth"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: str = Field(description="admin | planner | dispatcher | worker | viewer")
    password: str = Field(min_length=users.MIN_PASSWORD_LEN, max_length=1024)
    max_secrecy_level: StrictInt | None = Field(default=None, ge=0, le=9, description="highest camera secrecy level (whole number)")


class UserPatch(BaseModel):
    role: str | None = Field(default=None, description="admin | planner | dispatcher | worker | viewer")
    max_secrecy_level: StrictInt | None = Field(default=None, ge=0, le=9, description="highest camera secrecy level (whole number)")
    active: bool | None = Field(default=None, description="false: deactivate (its tokens stop working), true: "
                                "reactivate (tokens issued before stay revoked: the user logs in again)")
    password: str | None = Field(default=None, min_length=users.MIN_PASSWORD_LEN, max_length=1024,
                                 description="reset the password (revokes the user's tokens)")
    revoke_tokens: bool | None = Field(default=None, description="true: revoke every token of the user issued "
                                       "so far (log them out everywhere)")


class PasswordChange(BaseModel):
    old_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=users.MIN_PASSWORD_LEN, max_length=1024)


UserName = Annotated[str, Path(min_length=1, max_length=64, description="user name")]


@router.post("/token", response_model=TokenOut, summary="Log in (OAuth2 password flow)",
             responses={401: {"description": "wrong user name or password"},
                        429: {"description": "too many failed logins: locked, see the Retry-After header"}})
def login(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    username: Annotated[str, Form(min_length=1, max_length=64)],
    password: Annotated[str, Form(min_length=1, max_length=1024)],
) -> TokenOut:
    """Exchange a user name and password for a bearer token (send it as ``Authorization: Bearer …``).

    The token is valid for ``expires_in`` seconds unless revoked before: by a password change or
    reset, deactivation or reactivation of the user, or a logout everywhere (``POST /auth/logout``,
    ``revoke_tokens`` in ``PATCH /auth/users/{name}``, ``gridpatrol user NAME --revoke-tokens``).
    A revoked token is answered with 401 "access token revoked".

    Failed logins are limited per account and per client address (settings ``login_*``, shared by
    every server process): over the limit the answer is 429 with ``Retry-After`` (seconds), even
    for the right password, until the lock ends."""
    request.state.audit_detail = {"username": username}
    principal = users.login(store, username, password, address=deps.client_address(request),
                            limits=settings.login_limits)
    if principal is None:
        raise AuthError("wrong user name or password")
    request.state.principal = principal
    deps.remember_user(store, principal)
    token, ttl = issue_token(settings, principal)
    return TokenOut(access_token=token, expires_in=ttl, role=principal.role)


@router.post("/logout", summary="Log out everywhere: revoke all your tokens")
def logout(response: Response, store: StoreDep, principal: UserDep) -> dict[str, str]:
    """Revoke every token of the calling user issued so far, on every device: at once in this
    server process, within ``deps.USER_TTL_S`` (5) seconds in other worker processes. Also clears
    the map pages' login cookie. Audited as ``revoke-tokens``. Log in again for a new token."""
    if principal.is_anonymous:
        raise AuthError("log in first", hint="POST /auth/token with username and password")
    users.revoke_tokens(store, principal.name, actor=principal)
    deps.forget_user(store, principal.name)
    response.delete_cookie(deps.COOKIE)
    return {"name": principal.name, "status": "logged out: all tokens revoked"}


@router.get("/me", summary="Who am I")
def me(principal: UserDep) -> dict[str, Any]:
    """The current user's name, role, secrecy level, permissions and readable layers."""
    return {
        "name": principal.name, "role": principal.role, "max_secrecy_level": principal.max_secrecy_level,
        "anonymous": principal.is_anonymous,
        "permissions": sorted(p for p in PERMISSIONS if can(principal, p)),
        "layers": visible_layers(principal),
    }


@router.get("/users", summary="List users (admin)")
def get_users(store: StoreDep, principal: UserDep) -> list[dict[str, Any]]:
    """Every user: name, role, secrecy level, active flag, created_at, and ``tokens_revoked_at``
    (when their tokens were last revoked; null: never)."""
    require_permission(principal, "manage_users", "list users")
    return users.list_users(store)


@router.post("/users", status_code=201, summary="Create a user (admin)")
def post_user(body: UserIn, store: StoreDep, principal: UserDep) -> dict[str, Any]:
    require_permission(principal, "manage_users", "create users")
    created = users.create_user(
        store, body.name, body.role, body.password, max_secrecy_level=body.max_secrecy_level, actor=principal
    )
    return {"name": created.name, "role": created.role, "max_secrecy_level": created.max_secrecy_level}


@router.patch("/users/{name}",
              summary="Change a user: role, secrecy level, deactivate/reactivate, reset password, revoke tokens (admin)")
def patch_user(name: UserName, body: UserPatch, request: Request, store: StoreDep, principal: UserDep) -> dict[str, Any]:
    """Only the fields given change. A deactivated user's tokens stop working at once in this
    server process (within ``deps.USER_TTL_S`` seconds in other worker processes); so does a
    role change. A password reset, deactivation, reactivation and ``"revoke_tokens": true``
    revoke every token the user was issued before (same timing): reactivation does not revive
    them. Deactivating or demoting the last active admin is refused (409)."""
    require_permission(principal, "manage_users", "change users")
    request.state.audit_detail = {"user": name, "fields": sorted(body.model_dump(exclude_none=True))}
    out = users.update_user(store, name, role=body.role, max_secrecy_level=body.max_secrecy_level,
                            active=body.active, password=body.password, revoke_tokens=bool(body.revoke_tokens),
                            actor=principal)
    deps.forget_user(store, name)
    return out


@router.post("/me/password", summary="Change your own password (needs the old one; revokes your tokens)")
def change_my_password(body: PasswordChange, store: StoreDep, principal: UserDep) -> dict[str, str]:
    """Replace your password. Every token you were issued before, this one included, is revoked
    (at once in this server process, within ``deps.USER_TTL_S`` seconds in others): log in again
    with the new password."""
    if principal.is_anonymous:
        raise AuthError("log in first", hint="POST /auth/token with username and password")
    users.change_own_password(store, principal.name, body.old_password, body.new_password)
    deps.forget_user(store, principal.name)
    return {"name": principal.name, "status": "password changed; all your tokens were revoked, log in again"}


@router.get("/audit", summary="Audit log (admin)")
def get_audit(
    store: StoreDep, principal: UserDep, actor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 200,
) -> list[dict[str, Any]]:
    """Audit entries, newest first: every write through the service and every login attempt."""
    require_permission(principal, "read_audit", "read the audit log")
    return users.read_audit(store, actor=actor, limit=limit)
