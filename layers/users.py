"""Users, roles, password hashing (argon2) and the audit log of every write."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from gis.errors import ConflictError, InputError, NotFoundError
from layers.models import AuditEntry, User, utcnow
from layers.store import Store

ROLES = ("admin", "planner", "dispatcher", "worker", "viewer")
MIN_PASSWORD_LEN = 10
# A dummy hash to verify against when the user does not exist, so that the response time
# does not tell an attacker which user names exist.
_HASHER = PasswordHash((Argon2Hasher(),))
_DUMMY_HASH = _HASHER.hash("not-a-real-password-0")


@dataclass(frozen=True)
class Principal:
    """Who is making a request: user name, role and the highest camera secrecy level they may see."""

    name: str
    role: str
    max_secrecy_level: int = 0

    @property
    def is_anonymous(self) -> bool:
        return self.name == ANONYMOUS.name


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


def _validate(name: str, role: str, max_secrecy_level: int) -> None:
    if not name or len(name) > 64 or not name.isprintable() or name != name.strip():
        raise InputError(f"user name {name!r} must be 1–64 printable characters without surrounding spaces")
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}", hint="roles: " + ", ".join(ROLES))
    if not 0 <= int(max_secrecy_level) <= 9:
        raise InputError(f"max secrecy level {max_secrecy_level} must be between 0 and 9")


def create_user(
    store: Store, name: str, role: str, password: str, *, max_secrecy_level: int | None = None, actor: str | None = None
) -> Principal:
    """Create user ``name`` with ``role``; ConflictError if the name is taken.

    ``max_secrecy_level`` defaults to 9 for admins (see everything) and 0 for other roles.
    The creation is written to the audit log in the same transaction.
    """
    level = (9 if role == "admin" else 0) if max_secrecy_level is None else int(max_secrecy_level)
    _validate(name, role, level)
    check_password_strength(password, name)
    pw_hash = hash_password(password)
    try:
        with store.begin() as conn:
            conn.execute(
                insert(User).values(
                    name=name, role=role, password_hash=pw_hash, max_secrecy_level=level, active=True, created_at=utcnow()
                )
            )
            audit(conn, actor or "cli", "create-user", f"user:{name}", {"role": role, "max_secrecy_level": level})
    except IntegrityError:
        raise ConflictError(f"user {name!r} already exists", hint="choose another name or use set-password") from None
    return Principal(name=name, role=role, max_secrecy_level=level)


def set_password(store: Store, name: str, password: str, *, actor: str | None = None) -> None:
    """Replace the password of user ``name``."""
    check_password_strength(password, name)
    with store.begin() as conn:
        res = conn.execute(update(User).where(User.name == name).values(password_hash=hash_password(password)))
        if res.rowcount == 0:
            raise NotFoundError(f"no user {name!r}")
        audit(conn, actor or "cli", "set-password", f"user:{name}", {})


def get_user(store: Store, name: str, *, conn: Connection | None = None) -> Principal | None:
    """The active user ``name``, or None."""
    stmt = select(User.name, User.role, User.max_secrecy_level).where(User.name == name, User.active.is_(True))
    if conn is not None:
        row = conn.execute(stmt).first()
    else:
        with store.engine.connect() as c:
            row = c.execute(stmt).first()
    return Principal(name=row[0], role=row[1], max_secrecy_level=int(row[2] or 0)) if row else None


def authenticate(store: Store, name: str, password: str) -> Principal | None:
    """The user if ``password`` is right for active user ``name``, else None (same time either way)."""
    with store.engine.connect() as c:
        row = c.execute(
            select(User.password_hash, User.role, User.max_secrecy_level).where(
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
    return Principal(name=name, role=row[1], max_secrecy_level=int(row[2] or 0))


def list_users(store: Store) -> list[dict[str, Any]]:
    """All users (without password hashes)."""
    with store.engine.connect() as c:
        rows = c.execute(
            select(User.name, User.role, User.max_secrecy_level, User.active, User.created_at).order_by(User.name)
        ).all()
    return [dict(r._mapping) for r in rows]


def audit(conn: Connection, actor: str | None, action: str, target: str | None, detail: dict[str, Any]) -> None:
    """Append an audit entry inside the caller's transaction (who, when, what)."""
    conn.execute(
        insert(AuditEntry).values(
            at=utcnow(), actor=actor, action=action, target=target,
            detail_json=json.dumps(detail, ensure_ascii=False, default=str)[:20000],
        )
    )


def record_audit(store: Store, actor: str | None, action: str, target: str | None, detail: dict[str, Any]) -> None:
    """Append an audit entry in its own transaction."""
    with store.begin() as conn:
        audit(conn, actor, action, target, detail)


def read_audit(store: Store, *, since: datetime | None = None, actor: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Audit entries, newest first."""
    stmt = select(AuditEntry.__table__).order_by(AuditEntry.id.desc()).limit(limit)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    with store.engine.connect() as c:
        rows = c.execute(stmt).all()
    out = []
    for r in rows:
        d = dict(r._mapping)
        out.append({
            "id": d["id"], "at": d["at"], "actor": d["actor"], "action": d["action"],
            "target": d["target"], "detail": json.loads(d["detail_json"] or "{}"),
        })
    return out
