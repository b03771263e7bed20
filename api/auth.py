"""Roles and what they may do, row filters per role, and access tokens (JWT)."""
from __future__ import annotations

import time
import uuid
from typing import NamedTuple

import jwt
from gridpatrol.api.config import Settings
from gridpatrol.gis.errors import GridPatrolError, PermissionDenied
from gridpatrol.layers.incidents import LookupView
from gridpatrol.layers.users import ROLES, Principal
from gridpatrol.layers.visibility import secrecy_rows, worker_rows
from sqlalchemy import ColumnElement, Table, false

# What each role may do. Reading public layers (areas, roads, buildings, barriers, blocks, grids)
# needs no permission beyond being allowed in at all.
PERMISSIONS: dict[str, frozenset[str]] = {
    "read_routes": frozenset({"admin", "planner", "dispatcher", "worker"}),
    "read_incidents": frozenset({"admin", "dispatcher", "worker"}),
    "read_cameras": frozenset({"admin", "dispatcher"}),
    "read_workers": frozenset({"admin", "planner", "dispatcher", "worker"}),
    "edit_grids": frozenset({"admin", "planner"}),
    "plan_routes": frozenset({"admin", "planner"}),
    "create_incident": frozenset({"admin", "dispatcher", "worker"}),
    "advance_incident": frozenset({"admin", "dispatcher", "worker"}),
    "import_incidents": frozenset({"admin", "dispatcher"}),
    "edit_cameras": frozenset({"admin"}),
    "manage_users": frozenset({"admin"}),
    "read_audit": frozenset({"admin"}),
    # Patrol tracks (workers: their own only, see api/routes/tracks.py) and the assessment built from them.
    "record_tracks": frozenset({"admin", "dispatcher", "worker"}),
    "read_tracks": frozenset({"admin", "dispatcher", "worker"}),
}
# places and place_areas: the OSM villages and hamlets (nodes, areas) rural grids are named after
PUBLIC_LAYERS = ("areas", "roads", "buildings", "barriers", "places", "place_areas", "blocks", "grids")
# Layers beyond the public ones and the permission needed to see them at all.
PROTECTED_LAYERS = {"routes": "read_routes", "incidents": "read_incidents", "cameras": "read_cameras", "imports": "manage_users"}
# Fields of a layer that need a permission beyond reading the layer: layer → field → permission.
# The one table every channel consults (OGC items, item and schema, exports, GET /grids, the map
# click, the pages' data): a field hidden here is left out of the answer (not emptied) and cannot
# be filtered on. docs/security.md explains each choice.
FIELD_VISIBILITY: dict[str, dict[str, str]] = {
    # Who patrols a grid and where they start from: people, not map data.
    "grids": {"worker": "read_workers", "station_lon": "read_workers", "station_lat": "read_workers"},
    # A plan's note records worker assignments ("workers: 510104001001=王芳").
    "grid_plans": {"note": "read_workers"},
    # The file a camera came from names the supplier's list: administrators only.
    "cameras": {"source": "edit_cameras"},
    # The server-side path of an imported file (the layer itself is for administrators).
    "imports": {"source_path": "manage_users"},
}


class AuthError(GridPatrolError):
    """No valid credentials."""

    exit_code = 6


def can(principal: Principal, permission: str) -> bool:
    """Whether ``principal``'s role grants ``permission``."""
    return principal.role in PERMISSIONS[permission]


def require_permission(principal: Principal, permission: str, what: str) -> None:
    """Raise PermissionDenied (403) unless ``principal`` may ``permission``; ``what`` names the action."""
    if not can(principal, permission):
        allowed = ", ".join(r for r in ROLES if r in PERMISSIONS[permission])
        who = "anonymous users" if principal.is_anonymous else f"role {principal.role!r}"
        raise PermissionDenied(f"{who} may not {what}", hint=f"roles allowed: {allowed}")


def visible_layers(principal: Principal) -> list[str]:
    """The layers ``principal`` may read, in a stable order."""
    return [*PUBLIC_LAYERS, *(name for name, perm in PROTECTED_LAYERS.items() if can(principal, perm))]


def hidden_fields(principal: Principal, layer: str) -> frozenset[str]:
    """The fields of ``layer`` that ``principal`` may not see (see FIELD_VISIBILITY)."""
    rules = FIELD_VISIBILITY.get(layer, {})
    return frozenset(f for f, perm in rules.items() if not can(principal, perm))


def visible_frame(principal: Principal, layer: str, frame):  # noqa: ANN001, ANN201
    """``frame`` (a (Geo)DataFrame or a list of dicts of ``layer``'s rows) without the fields
    ``principal`` may not see."""
    hidden = hidden_fields(principal, layer)
    if not hidden:
        return frame
    if isinstance(frame, list):
        return [{k: v for k, v in row.items() if k not in hidden} for row in frame]
    return frame.drop(columns=[c for c in frame.columns if c in hidden])


def layer_filter(principal: Principal, layer: str, table: Table) -> ColumnElement[bool] | None:
    """The row filter ``principal`` gets on ``layer`` (None: every row); 403 if not visible at all.

    Workers see only routes and incidents of the grids of the current plan they are responsible
    for; dispatchers see cameras up to their secrecy level; admins see everything. Every count,
    extent and export of a layer is computed over this filter.
    """
    if layer in PUBLIC_LAYERS:
        return None
    perm = PROTECTED_LAYERS.get(layer)
    if perm is None:
        return false()
    require_permission(principal, perm, f"read layer {layer!r}")
    if principal.role == "admin":
        return None
    if layer == "cameras":
        return secrecy_rows(table, principal.max_secrecy_level)
    if principal.role == "worker" and layer in ("routes", "incidents"):
        return worker_rows(table, principal.name)
    return None


def lookup_view(principal: Principal) -> LookupView:
    """What ``principal`` may see of a map click: the same rules as :func:`layer_filter` (workers:
    incidents of their own grids of the current plan; dispatchers: cameras up to their secrecy
    level; admins: all) and :data:`FIELD_VISIBILITY` (the grid's worker)."""
    show_incidents = can(principal, "read_incidents")
    show_cameras = can(principal, "read_cameras")
    return LookupView(
        worker_names="worker" not in hidden_fields(principal, "grids"),
        incidents=show_incidents,
        incidents_of=principal.name if show_incidents and principal.role == "worker" else None,
        cameras=show_cameras,
        camera_max_secrecy=(None if principal.role == "admin" else int(principal.max_secrecy_level))
        if show_cameras else None,
    )


def issue_token(settings: Settings, principal: Principal) -> tuple[str, int]:
    """A signed bearer token for ``principal`` and its lifetime in seconds.

    ``ver`` is the user's token version when the token was issued: the token is revoked once the
    version moves on (see :func:`layers.users.revoke_tokens`)."""
    now = int(time.time())
    claims = {
        "sub": principal.name, "role": principal.role, "iat": now, "ver": int(principal.token_version),
        "exp": now + settings.token_ttl_s, "jti": uuid.uuid4().hex, "iss": "gridpatrol",
    }
    return jwt.encode(claims, settings.secret_key, algorithm="HS256"), settings.token_ttl_s


class TokenClaims(NamedTuple):
    """What the service reads from a verified token."""

    name: str
    version: int  # the user's token version at issue (0 for tokens made before schema version 3)
    exp: float  # expiry, seconds since the epoch


def decode_token(settings: Settings, token: str) -> TokenClaims:
    """The user name, token version and expiry of a valid token; AuthError if it is forged,
    expired or malformed. Whether it was revoked is decided against the user (see api.deps)."""
    try:
        claims = jwt.decode(
            token, settings.secret_key, algorithms=["HS256"], issuer="gridpatrol",
            options={"require": ["exp", "sub", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("access token expired", hint="log in again at POST /auth/token") from None
    except jwt.PyJWTError:
        raise AuthError("invalid access token", hint="log in at POST /auth/token") from None
    version = claims.get("ver", 0)
    if type(version) is not int or version < 0:
        raise AuthError("invalid access token", hint="log in at POST /auth/token")
    return TokenClaims(str(claims["sub"]), version, float(claims["exp"]))


def revoked_token() -> AuthError:
    """The error for a token whose user's token version has moved on."""
    return AuthError("access token revoked: the password was changed or reset, the user was deactivated "
                     "or reactivated, or all their sessions were logged out",
                     hint="log in again at POST /auth/token")
