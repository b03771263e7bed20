"""The audit log: append-only entries chained by SHA-256, so an edit, a gap or a fork is detectable."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from gridpatrol.gis.errors import GridPatrolError
from gridpatrol.layers.models import AuditEntry, utcnow
from sqlalchemy import Connection, insert, select, text, update

if TYPE_CHECKING:
    from gridpatrol.layers.store import Store

# The previous hash of the first entry.
GENESIS = "0" * 64
# pg_advisory_xact_lock key serialising appends across server processes (74201: migrations,
# 74202: user changes).
_CHAIN_LOCK = 74203
_REFUSED = "audit_log is append-only"


class AuditChainBroken(GridPatrolError):
    """The audit log's hash chain does not verify: an entry was edited, removed or forged."""

    exit_code = 7


def _now_ms() -> datetime:
    """Now (UTC) to the millisecond: what a GeoPackage keeps, so the hash of an entry read back matches."""
    now = utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _at(value: datetime | str | None) -> str:
    """``value`` as UTC ISO text with microseconds (SQLite gives naive UTC, PostgreSQL aware)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(row: Any, prev_hash: str) -> str:
    """SHA-256 (hex) of an entry's canonical serialisation (a compact JSON array of id, time,
    actor id, actor, action, target and detail, then ``prev_hash``)."""
    m = row._mapping if hasattr(row, "_mapping") else row
    payload = [int(m["id"]), _at(m["at"]), m["actor_id"], m["actor"], m["action"], m["target"],
               m["detail_json"], prev_hash]
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _lock_chain(conn: Connection) -> None:
    """Serialise appends: two server processes must not both append after the same entry.
    PostgreSQL: an advisory lock; SQLite: take the write lock first (a write matching no row),
    so the last entry is read inside the lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_advisory_xact_lock({_CHAIN_LOCK})"))
    else:
        conn.execute(text("UPDATE gp_schema_version SET version = version WHERE 1 = 0"))


def _actor(actor: Any) -> tuple[str | None, int | None]:
    """(name, user id) of an actor: a Principal (id None when anonymous) or a plain name (the
    command line's OS user, the system), which never carries a user id."""
    if actor is None or isinstance(actor, str):
        return actor, None
    return actor.name, getattr(actor, "user_id", None)


def audit(conn: Connection, actor: Any, action: str, target: str | None, detail: dict[str, Any]) -> None:
    """Append an audit entry inside the caller's transaction (who, when, what), chained to the last."""
    _lock_chain(conn)
    last = conn.execute(select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).first()
    name, actor_id = _actor(actor)
    row = {
        "id": (int(last[0]) + 1) if last else 1, "at": _now_ms(), "actor": name, "actor_id": actor_id,
        "action": action, "target": target,
        "detail_json": json.dumps(detail, ensure_ascii=False, default=str)[:20000],
    }
    prev = (last[1] or GENESIS) if last else GENESIS
    conn.execute(insert(AuditEntry).values(**row, prev_hash=prev, hash=entry_hash(row, prev)))


def record_audit(store: Store, actor: Any, action: str, target: str | None, detail: dict[str, Any]) -> None:
    """Append an audit entry in its own transaction."""
    with store.begin() as conn:
        audit(conn, actor, action, target, detail)


def read_audit(store: Store, *, since: datetime | None = None, actor: str | None = None,
               limit: int = 1000) -> list[dict[str, Any]]:
    """Audit entries, newest first."""
    stmt = select(AuditEntry.__table__).order_by(AuditEntry.id.desc()).limit(limit)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    with store.engine.connect() as c:
        rows = c.execute(stmt).all()
    return [{
        "id": d["id"], "at": d["at"], "actor": d["actor"], "actor_id": d["actor_id"], "action": d["action"],
        "target": d["target"], "detail": json.loads(d["detail_json"] or "{}"), "hash": d["hash"],
    } for d in (r._mapping for r in rows)]


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify` found: entries verified and the hash of the newest one."""

    entries: int
    head_hash: str


def verify(store: Store) -> ChainReport:
    """Check every entry's hash and its link to the previous one, oldest first.

    Raises AuditChainBroken naming the first entry that does not verify (edited, a gap before it,
    or forged); returns how many verified and the newest hash (keep it elsewhere: removing the
    newest entries is only detectable against it)."""
    prev, n = GENESIS, 0
    with store.engine.connect() as c:
        rows = c.execution_options(yield_per=2000).execute(select(AuditEntry.__table__).order_by(AuditEntry.id))
        for row in rows:
            m = row._mapping
            if m["prev_hash"] != prev:
                raise AuditChainBroken(f"audit entry {m['id']} does not link to the entry before it: an entry "
                                       f"before it was removed or changed ({n} entries verified before it)",
                                       hint="restore the audit log from a backup")
            if m["hash"] != entry_hash(m, prev):
                raise AuditChainBroken(f"audit entry {m['id']} was changed after it was written: its hash does not "
                                       f"match ({n} entries verified before it)", hint="restore the audit log from a backup")
            prev, n = m["hash"], n + 1
    return ChainReport(entries=n, head_hash=prev)


def chain_existing(conn: Connection) -> int:
    """Give entries written before the hash chain (schema < 4) their hashes, in id order; returns
    how many. Used by the migration, before the log becomes append-only."""
    prev, done = GENESIS, 0
    for row in conn.execute(select(AuditEntry.__table__).order_by(AuditEntry.id)).all():
        m = row._mapping
        if m["hash"] is None:
            h = entry_hash(m, prev)
            conn.execute(update(AuditEntry).where(AuditEntry.id == m["id"]).values(prev_hash=prev, hash=h))
            done += 1
            prev = h
        else:
            prev = m["hash"]
    return done


def make_append_only(conn: Connection) -> None:
    """Triggers that refuse UPDATE and DELETE on the audit log (and TRUNCATE on PostgreSQL), and a
    unique previous hash, so that two entries can never follow the same one (no fork)."""
    conn.execute(text("CREATE UNIQUE INDEX IF NOT EXISTS uq_audit_log_prev_hash ON audit_log (prev_hash)"))
    if conn.dialect.name == "postgresql":
        conn.execute(text(
            "CREATE OR REPLACE FUNCTION gp_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{_REFUSED}: % refused', TG_OP "
            "USING ERRCODE = 'insufficient_privilege'; END $$"))
        conn.execute(text("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log"))
        conn.execute(text("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
                          "FOR EACH ROW EXECUTE FUNCTION gp_audit_append_only()"))
        conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log"))
        conn.execute(text("CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
                          "FOR EACH STATEMENT EXECUTE FUNCTION gp_audit_append_only()"))
        return
    for op in ("UPDATE", "DELETE"):
        conn.execute(text(f"CREATE TRIGGER IF NOT EXISTS audit_log_no_{op.lower()} BEFORE {op} ON audit_log "
                          f"BEGIN SELECT RAISE(ABORT, '{_REFUSED}: {op} refused'); END"))
