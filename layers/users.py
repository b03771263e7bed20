"""Users, roles, password hashing (argon2) and the audit log of every write."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gridpatrol.gis.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    PermissionDenied,
)
from gridpatrol.layers import logins
from gridpatrol.layers.audit import audit, read_audit, record_audit  # noqa: F401  (re-exported: the API writes through users)
from gridpatrol.layers.logins import LoginLimits
from gridpatrol.layers.models import User, utcnow
from gridpatrol.layers.names import clean_name
from gridpatrol.layers.store import Store
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import Connection, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

ROLES = ("admin", "planner", "dispatcher", "worker", "viewer")
MIN_PASSWORD_LEN = 10
# A dummy hash to verify against when the user does not exist, so that the response time
# does not tell an attacker which user names exist.
_HASHER = PasswordHash((Argon2Hasher(),))
_DUMMY_HASH = _HASHER.hash("not-a-real-password-0")


@dataclass(frozen=True)
class Principal:
    """Who is making a request: user name, role and the highest camera secrecy level they may see.

    ``token_version`` is the user's current token version: tokens issued at an older one are revoked.
    ``user_id`` is the user's row id (None: anonymous); the audit log records who by it.
    """

    name: str
    role: str
    max_secrecy_level: int = 0
    token_version: int = field(default=0, compare=False)
    user_id: int | None = field(default=None, compare=False)

    @property
    def is_anonymous(self) -> bool:
        return self.user_id is None and self.name == ANONYMOUS.name


ANONYMOUS = Principal(name="(anonymous)", role="viewer", max_secrecy_level=0)


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (PHC string)."""
    return _HASHER.hash(password)


def check_password_strength(password: str, name: str) -> None:
    """Raise InputError when ``password`` is too weak to store."""
    if len(password) < MIN_PASSWORD_LEN:
        raise InputError(f"password for {name!r} is shorter than {MIN_PASSWORD_LEN} characters")
    if password.strip().lower() == name.strip().lower():
        raise InputError(f"password for {name!r} must differ from the user name")


# Names the service and the command line write into the audit log for who is not a user.
RESERVED_NAMES = frozenset({"anonymous", "cli", "system", "root", "gridpatrol", "nobody"})
_NAME_FORBIDDEN = set("()[]{}<>\"'`\\")


def check_user_name(name: str) -> None:
    """Raise InputError unless ``name`` is a user name no one can mistake for another identity:
    1–64 printable characters, no surrounding spaces, no brackets or quotes, not a reserved name
    (``anonymous``, ``cli``, ``system``, … in any case or width)."""
    if not name or len(name) > 64 or name != name.strip() or any(
            unicodedata.category(ch)[0] in "CZ" and ch != " " for ch in name):
        raise InputError(f"user name {name!r} must be 1–64 printable characters without surrounding spaces",
                         hint="no control, format or line-separator characters")
    bad = sorted(set(name) & _NAME_FORBIDDEN)
    if bad:
        raise InputError(f"user name {name!r} must not contain {' '.join(bad)}",
                         hint="brackets and quotes are kept for names like (anonymous) in the audit log")
    plain = unicodedata.normalize("NFKC", name).casefold()
    if plain in RESERVED_NAMES:
        raise InputError(f"user name {name!r} is reserved", hint="reserved: " + ", ".join(sorted(RESERVED_NAMES)))


def _validate(name: str, role: str, max_secrecy_level: int) -> None:
    check_user_name(name)
    clean_name(name, "user")
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}", hint="roles: " + ", ".join(ROLES))
    check_secrecy_level(max_secrecy_level, name)


def check_secrecy_level(level: Any, name: str) -> int:
    """``level`` as an int if it is a whole number 0–9 (never truncated: 0.5 taken as 0 would
    widen a clearance silently); InputError naming user ``name`` otherwise."""
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= int(level) <= 9:
        raise InputError(f"max secrecy level {level!r} of user {name!r} must be a whole number from 0 to 9")
    return int(level)


def create_user(
    store: Store, name: str, role: str, password: str, *, max_secrecy_level: int | None = None, actor: "str | Principal | None" = None
) -> Principal:
    """Create user ``name`` with ``role``; ConflictError if the name is taken.

    ``max_secrecy_level`` defaults to 9 for admins (see everything) and 0 for other roles.
    The creation is written to the audit log in the same transaction.
    """
    level = (9 if role == "admin" else 0) if max_secrecy_level is None else max_secrecy_level
    _validate(name, role, level)
    level = int(level)
    check_password_strength(password, name)
    pw_hash = hash_password(password)
    try:
        with store.begin() as conn:
            _lock_users(conn)
            plain = unicodedata.normalize("NFKC", name).casefold()
            for (other,) in conn.execute(select(User.name)):
                if unicodedata.normalize("NFKC", other).casefold() == plain:
                    raise ConflictError(f"user {name!r} already exists" + (f" as {other!r}" if other != name else ""),
                                        hint="names differing only in case or width are the same user; "
                                             "choose another name or use set-password")
            user_id = conn.execute(
                insert(User).values(
                    name=name, role=role, password_hash=pw_hash, max_secrecy_level=level, active=True, created_at=utcnow()
                ).returning(User.id)
            ).scalar_one()
            audit(conn, actor or "cli", "create-user", f"user:{name}",
                  {"user_id": user_id, "role": role, "max_secrecy_level": level})
    except IntegrityError:
        raise ConflictError(f"user {name!r} already exists", hint="choose another name or use set-password") from None
    return Principal(name=name, role=role, max_secrecy_level=level, user_id=user_id)


def _revoked() -> dict[str, Any]:
    """UPDATE values that revoke every token issued so far (the version moves on)."""
    return {"token_version": User.token_version + 1, "tokens_revoked_at": utcnow()}


def set_password(store: Store, name: str, password: str, *, actor: "str | Principal | None" = None) -> None:
    """Replace the password of user ``name`` and revoke the tokens issued before."""
    check_password_strength(password, name)
    with store.begin() as conn:
        res = conn.execute(update(User).where(User.name == name)
                           .values(password_hash=hash_password(password), **_revoked()))
        if res.rowcount == 0:
            raise NotFoundError(f"no user {name!r}")
        audit(conn, actor or "cli", "set-password", f"user:{name}", {"tokens": "revoked"})


def revoke_tokens(store: Store, name: str, *, actor: "str | Principal | None" = None) -> None:
    """Revoke every token of user ``name`` issued so far (logout everywhere); NotFoundError if none."""
    with store.begin() as conn:
        res = conn.execute(update(User).where(User.name == name).values(**_revoked()))
        if res.rowcount == 0:
            raise NotFoundError(f"no user {name!r}", hint="list users with `gridpatrol users` or GET /auth/users")
        audit(conn, actor or "cli", "revoke-tokens", f"user:{name}", {})


def _lock_users(conn: Connection) -> None:
    """Serialise user changes that could leave no admin: two admins demoting each other at once
    must not both succeed. PostgreSQL: an advisory lock; SQLite: take the write lock first (a write
    matching no row), so the second waits instead of reading a snapshot that is about to change."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(74202)"))
    else:
        conn.execute(text("UPDATE users SET active = active WHERE 1 = 0"))


def _active_admins(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(User).where(
        User.role == "admin", User.active.is_(True))).scalar_one())


def update_user(
    store: Store, name: str, *, role: str | None = None, max_secrecy_level: int | None = None,
    active: bool | None = None, password: str | None = None, revoke_tokens: bool = False,
    actor: "str | Principal | None" = None,
) -> dict[str, Any]:
    """Change user ``name``: role, camera secrecy level, active flag and/or password (None: unchanged).

    A password reset, a change of the active flag (either way: reactivating does not revive old
    tokens) and ``revoke_tokens`` revoke every token issued so far.
    NotFoundError if there is no such user; ConflictError (nothing changed) if the change would
    leave no active admin. The change and its audit entry (what changed, never the password) are
    written in one transaction. Returns the user as :func:`list_users` shows it.
    """
    if role is not None and role not in ROLES:
        raise InputError(f"unknown role {role!r}", hint="roles: " + ", ".join(ROLES))
    if max_secrecy_level is not None:
        max_secrecy_level = check_secrecy_level(max_secrecy_level, name)
    if password is not None:
        check_password_strength(password, name)
    values: dict[str, Any] = {}
    if role is not None:
        values["role"] = role
    if max_secrecy_level is not None:
        values["max_secrecy_level"] = int(max_secrecy_level)
    if active is not None:
        values["active"] = bool(active)
    if password is not None:
        values["password_hash"] = hash_password(password)
    if not values and not revoke_tokens:
        raise InputError("nothing to change",
                         hint="give a role, max secrecy level, active flag, password or revoke the tokens")
    with store.begin() as conn:
        _lock_users(conn)
        before = conn.execute(select(User.role, User.max_secrecy_level, User.active).where(User.name == name)).first()
        if before is None:
            raise NotFoundError(f"no user {name!r}", hint="list users with `gridpatrol users` or GET /auth/users")
        revoke = revoke_tokens or password is not None or (active is not None and bool(active) != bool(before[2]))
        conn.execute(update(User).where(User.name == name).values(**values, **(_revoked() if revoke else {})))
        # Counted after the change, inside the same transaction: the rule holds even when two
        # admins demote each other at the same moment.
        if before[0] == "admin" and before[2] and _active_admins(conn) == 0:
            what = "deactivate" if active is False else "change the role of"
            raise ConflictError(f"cannot {what} {name!r}: it is the last active admin",
                                hint="make another user admin first")
        changes = {k: {"from": {"role": before[0], "max_secrecy_level": before[1], "active": before[2]}[k], "to": v}
                   for k, v in values.items() if k != "password_hash"}
        if password is not None:
            changes["password"] = "reset"
        if revoke:
            changes["tokens"] = "revoked"
        audit(conn, actor or "cli", "update-user", f"user:{name}", changes)
        row = conn.execute(select(*_LISTED).where(User.name == name)).one()
    return dict(row._mapping)


def change_own_password(store: Store, name: str, old_password: str, new_password: str) -> None:
    """User ``name`` replaces their password; PermissionDenied if ``old_password`` is wrong."""
    me = authenticate(store, name, old_password)
    if me is None:
        raise PermissionDenied("the old password is wrong", hint="nothing was changed")
    if new_password == old_password:
        raise InputError("the new password must differ from the old one")
    check_password_strength(new_password, name)
    with store.begin() as conn:
        res = conn.execute(update(User).where(User.name == name, User.active.is_(True))
                           .values(password_hash=hash_password(new_password), **_revoked()))
        if res.rowcount == 0:
            raise NotFoundError(f"no active user {name!r}")
        audit(conn, me, "change-own-password", f"user:{name}", {"tokens": "revoked"})


def get_user(store: Store, name: str, *, conn: Connection | None = None) -> Principal | None:
    """The active user ``name``, or None."""
    return get_user_state(store, name, conn=conn)[0]


def get_user_state(store: Store, name: str, *, conn: Connection | None = None) -> tuple[Principal | None, int | None]:
    """(the active user ``name`` or None, the user's token version or None if there is no such user).

    The version is given for deactivated users too, so a cache of "deactivated" can tell that a
    token is newer than what it knows (the user was reactivated and logged in elsewhere)."""
    stmt = select(User.name, User.role, User.max_secrecy_level, User.active, User.token_version, User.id).where(
        User.name == name)
    row = store.first_row(stmt, conn)
    if row is None:
        return None, None
    version = int(row[4] or 0)
    if not row[3]:
        return None, version
    return Principal(name=row[0], role=row[1], max_secrecy_level=int(row[2] or 0), token_version=version,
                     user_id=int(row[5])), version


def authenticate(store: Store, name: str, password: str) -> Principal | None:
    """The user if ``password`` is right for active user ``name``, else None (same time either way)."""
    with store.engine.connect() as c:
        row = c.execute(
            select(User.password_hash, User.role, User.max_secrecy_level, User.token_version, User.id).where(
                User.name == name, User.active.is_(True)
            )
        ).first()
    if row is None:
        _HASHER.verify(password, _DUMMY_HASH)
        return None
    ok, new_hash = _HASHER.verify_and_update(password, row[0])
    if not ok:
        return None
    if new_hash:  # argon2 parameters were raised since the hash was made
        with store.begin() as conn:
            conn.execute(update(User).where(User.name == name).values(password_hash=new_hash))
    return Principal(name=name, role=row[1], max_secrecy_level=int(row[2] or 0), token_version=int(row[3] or 0),
                     user_id=int(row[4]))


def login(store: Store, name: str, password: str, *, address: str | None, limits: LoginLimits) -> Principal | None:
    """:func:`authenticate` within the failed-login limits: LoginLocked (429) while the account or the
    client ``address`` is locked (the right password too), None for a wrong one (counted), else the
    user (the account's count is reset). Every login route calls this."""
    logins.refuse_if_locked(store, name, address, limits)
    principal = authenticate(store, name, password)
    if principal is None:
        logins.record_failure(store, name, address, limits)
        return None
    logins.record_success(store, name, address, limits)
    return principal


_LISTED = (User.name, User.role, User.max_secrecy_level, User.active, User.created_at, User.tokens_revoked_at)


def list_users(store: Store) -> list[dict[str, Any]]:
    """All users (without password hashes), with when their tokens were last revoked (None: never)."""
    with store.engine.connect() as c:
        rows = c.execute(select(*_LISTED).order_by(User.name)).all()
    return [dict(r._mapping) for r in rows]
