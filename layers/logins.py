"""Failed-login limits per account and per client address, kept in the store for every server process."""
from __future__ import annotations

import math
import time
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gridpatrol.gis.errors import GridPatrolError
from gridpatrol.layers.audit import audit
from gridpatrol.layers.models import LoginThrottle
from sqlalchemy import Connection, delete, insert, or_, select, text, update

if TYPE_CHECKING:
    from gridpatrol.layers.store import Store

# pg_advisory_xact_lock key serialising the counters across server processes.
_THROTTLE_LOCK = 74204


@dataclass(frozen=True)
class LoginLimits:
    """How many failed logins lock an account or a client address, within which window (seconds),
    and for how long (doubling with each lockout since the last successful login, up to the max)."""

    per_user: int = 5
    per_address: int = 20
    window_s: float = 15 * 60
    lockout_s: float = 15 * 60
    lockout_max_s: float = 24 * 3600


class LoginLocked(GridPatrolError):
    """Too many failed logins: the account or client address is locked for a while."""

    exit_code = 6

    def __init__(self, message: str, *, retry_after_s: float, hint: str | None = None):
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        super().__init__(message, hint=hint)


def _keys(name: str, address: str | None, limits: LoginLimits) -> list[tuple[str, int, str]]:
    """(row key, limit, what it is in a message) for the account and the client address."""
    user = unicodedata.normalize("NFKC", name).casefold()[:64]
    keys = [(f"user:{user}", limits.per_user, f"user {name!r}")]
    if address:
        keys.append((f"addr:{address}", limits.per_address, f"address {address}"))
    return keys


def _locked(what: str, seconds: float) -> LoginLocked:
    wait = max(1, math.ceil(seconds))
    return LoginLocked(f"too many failed logins: {what} is locked for {wait} more seconds",
                       retry_after_s=wait, hint="wait, then log in with the right password; an admin can reset "
                                                "the password meanwhile")


def _refuse_locked(conn: Connection, keys: list[tuple[str, int, str]], now: float) -> None:
    stmt = select(LoginThrottle.key, LoginThrottle.locked_until_s).where(LoginThrottle.key.in_([k for k, _, _ in keys]))
    until = dict(conn.execute(stmt).all())
    for key, _, what in keys:
        if (until.get(key) or 0) > now:
            raise _locked(what, until[key] - now)


def refuse_if_locked(store: Store, name: str, address: str | None, limits: LoginLimits) -> None:
    """Raise LoginLocked while the account ``name`` or the client ``address`` is locked."""
    with store.engine.connect() as conn:
        _refuse_locked(conn, _keys(name, address, limits), time.time())


def _lock_counters(conn: Connection) -> None:
    """Serialise counter changes across processes (PostgreSQL: an advisory lock; SQLite: take the
    write lock first with a write matching no row, so the rows are read inside it)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_advisory_xact_lock({_THROTTLE_LOCK})"))
    else:
        conn.execute(update(LoginThrottle).where(text("1 = 0")).values(failures=LoginThrottle.failures))


def record_failure(store: Store, name: str, address: str | None, limits: LoginLimits) -> None:
    """Count a failed login against the account and the address; the failure that reaches a limit
    locks it (written to the audit log as ``login-lockout``) and raises LoginLocked."""
    now = time.time()
    keys = _keys(name, address, limits)
    locked: LoginLocked | None = None
    with store.begin() as conn:
        _lock_counters(conn)
        # Rows with nothing left to remember: no recent failure and no lock within the max delay.
        conn.execute(delete(LoginThrottle).where(
            LoginThrottle.window_start_s < now - limits.window_s,
            or_(LoginThrottle.locked_until_s.is_(None), LoginThrottle.locked_until_s < now - limits.lockout_max_s)))
        for key, limit, what in keys:
            row = conn.execute(select(LoginThrottle.failures, LoginThrottle.window_start_s, LoginThrottle.lockouts)
                               .where(LoginThrottle.key == key)).first()
            if row is None:
                conn.execute(insert(LoginThrottle).values(key=key, failures=1, window_start_s=now, lockouts=0))
                failures, lockouts, start = 1, 0, now
            else:
                fresh = now - row.window_start_s > limits.window_s
                failures, lockouts = (1 if fresh else row.failures + 1), row.lockouts
                start = now if fresh else row.window_start_s
            values = {"failures": failures, "window_start_s": start}
            if failures >= limit:
                seconds = min(limits.lockout_s * 2 ** min(lockouts, 30), limits.lockout_max_s)
                values.update(failures=0, window_start_s=now, locked_until_s=now + seconds, lockouts=lockouts + 1)
                audit(conn, None, "login-lockout", key.replace("addr:", "address:", 1),
                      {"failures": failures, "window_s": limits.window_s, "locked_s": seconds,
                       "lockout": lockouts + 1, "username": name, "address": address})
                locked = locked or _locked(what, seconds)
            conn.execute(update(LoginThrottle).where(LoginThrottle.key == key).values(**values))
    if locked is not None:
        raise locked


def record_success(store: Store, name: str, address: str | None, limits: LoginLimits) -> None:
    """After the right password: raise LoginLocked if another process locked the account or address
    meanwhile, else reset the account's counter (the address keeps its count)."""
    keys = _keys(name, address, limits)
    with store.begin() as conn:
        _refuse_locked(conn, keys, time.time())
        if conn.execute(select(LoginThrottle.key).where(LoginThrottle.key == keys[0][0])).first() is None:
            return  # nothing to reset: no write, no lock (the usual login)
        _lock_counters(conn)
        _refuse_locked(conn, keys, time.time())
        conn.execute(delete(LoginThrottle).where(LoginThrottle.key == keys[0][0]))
