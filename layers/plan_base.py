"""Edits made on a stale plan version are refused: the version the planner saw must still be the newest."""
from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

from gridpatrol.gis.errors import ConflictError
from gridpatrol.layers.models import GridPlan
from sqlalchemy import Connection, func, select

T = TypeVar("T")
_BASE: ContextVar[int | None] = ContextVar("gridpatrol_base_plan", default=None)


class StaleVersionError(ConflictError):
    """Another edit was saved since the planner loaded the plan version the edit was made on."""


def stale_error(base: int, latest: int | None) -> StaleVersionError:
    """The refusal of an edit made on version ``base`` while ``latest`` is the newest."""
    return StaleVersionError(
        f"方案已被他人修改：您看到的是版本 {base}，当前最新版本是 {latest}，本次编辑未保存 / the plan changed: "
        f"you edited version {base}, the newest is {latest}; nothing was saved",
        hint="重新载入当前版本后再编辑 / reload the current version and edit again")


def check_current(conn: Connection) -> None:
    """Inside an edit's write transaction: refuse it when a base version is set and is not the newest.

    The base row is locked first (PostGIS: FOR UPDATE), so two edits on one base serialise and the
    second sees the first one's version."""
    base = _BASE.get()
    if base is None:
        return
    t = GridPlan.__table__
    conn.execute(select(t.c.id).where(t.c.id == base).with_for_update()).first()
    latest = conn.execute(select(func.max(t.c.id))).scalar()
    if latest != base:
        raise stale_error(base, latest)


def on_base(base: int | None, latest: Callable[[], int], edit: Callable[[], T]) -> T:
    """Run ``edit`` (which writes one new version) only if ``base`` is the newest version (None: no check)."""
    if base is None:
        return edit()
    now = latest()
    if now != base:
        raise stale_error(base, now)
    token = _BASE.set(int(base))
    try:
        return edit()
    finally:
        _BASE.reset(token)


_ON_WRITE: ContextVar[Callable[[Connection, dict], None] | None] = ContextVar("gridpatrol_on_write", default=None)


def record_write(conn: Connection, what: dict) -> None:
    """Inside the one write transaction of long work (a new plan, a set of routes): let the job that
    runs it record ``what`` (e.g. ``{"plan_id": 7}``) in that same transaction, so the work and the
    job's result commit together or not at all."""
    hook = _ON_WRITE.get()
    if hook is not None:
        hook(conn, what)


def with_write_hook(hook: Callable[[Connection, dict], None], work: Callable[[], T]) -> T:
    """Run ``work`` with ``hook(conn, what)`` called by every ``record_write`` inside it."""
    token = _ON_WRITE.set(hook)
    try:
        return work()
    finally:
        _ON_WRITE.reset(token)
