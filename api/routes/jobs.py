"""Jobs: queue long work (draw-grids, plan-routes, rebalance; one per planning area), follow its progress, cancel it."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from gridpatrol.api.auth import AuthError, require_permission
from gridpatrol.api.deps import RowId, SettingsDep, StoreDep, UserDep
from gridpatrol.gis.errors import InputError, NotFoundError
from gridpatrol.layers import job_queue
from gridpatrol.layers import jobs as jl
from gridpatrol.layers.store import Store
from gridpatrol.layers.users import Principal
from pydantic import BaseModel, Field

router = APIRouter(prefix="/jobs", tags=["jobs"])


class JobIn(BaseModel):
    """A job to queue: its kind and the parameters of the route it wraps."""

    kind: str = Field(max_length=64, description="draw-grids, plan-routes or rebalance")
    params: dict[str, Any] = Field(default_factory=dict, description="the body of the route the job wraps")


def job_out(job: dict[str, Any], tz: str) -> dict[str, Any]:
    """A job row as the API shows it: times in the county's zone, progress as steps done of total."""
    zone = ZoneInfo(tz)

    def when(v: Any) -> str | None:
        return v.astimezone(zone).isoformat() if v is not None else None

    return {
        "id": job["id"], "kind": job["kind"], "state": job["state"], "params": job["params"],
        "created_by": job["created_by"], "created_at": when(job["created_at"]),
        "started_at": when(job["started_at"]), "finished_at": when(job["finished_at"]),
        "attempts": job["attempts"],
        "progress": {"done": job["steps_done"], "total": job["steps_total"], "step": job["step"]},
        "result": job["result"], "error": job["error"], "cancel_requested": bool(job["cancel_requested"]),
    }


def _signed_in(principal: Principal) -> None:
    if principal.is_anonymous:
        raise AuthError("sign in to see or queue jobs")


def _visible(store: Store, principal: Principal, job_id: int) -> dict[str, Any]:
    """The job if the caller may see it (their own; admins: all); NotFoundError otherwise."""
    _signed_in(principal)
    job = jl.get(store, job_id)
    if principal.role != "admin" and job["created_by"] != principal.name:
        raise NotFoundError(f"no job {job_id}")
    return job


@router.post("", status_code=202, summary="Queue a job (checked before it is queued); answers its id")
async def submit(body: JobIn, request: Request, store: StoreDep, principal: UserDep,
                 settings: SettingsDep) -> dict[str, Any]:
    _signed_in(principal)
    kind = jl.KINDS.get(body.kind)
    if kind is None:
        raise InputError(f"unknown job kind {body.kind!r}", hint="kinds: " + ", ".join(jl.KINDS))
    require_permission(principal, kind.permission, f"run {body.kind} jobs")
    job_id = await run_in_threadpool(job_queue.submit, store, body.kind, body.params, created_by=principal.name)
    request.state.audit_detail = {"job_id": job_id, "kind": body.kind}
    return job_out(jl.get(store, job_id), settings.timezone)


@router.post("/per-area", status_code=202,
             summary="Queue one job per planning area (draw-grids, plan-routes): W workers work on W areas at once")
async def submit_per_area(body: JobIn, request: Request, store: StoreDep, principal: UserDep,
                          settings: SettingsDep) -> list[dict[str, Any]]:
    _signed_in(principal)
    kind = jl.KINDS.get(body.kind)
    if kind is None or body.kind not in job_queue.PER_AREA:
        raise InputError(f"{body.kind!r} jobs cannot be queued per area", hint="per area: " + ", ".join(job_queue.PER_AREA))
    require_permission(principal, kind.permission, f"run {body.kind} jobs")
    ids = await run_in_threadpool(job_queue.submit_per_area, store, body.kind, body.params, created_by=principal.name)
    request.state.audit_detail = {"job_ids": ids, "kind": body.kind}
    return [job_out(jl.get(store, i), settings.timezone) for i in ids]


@router.get("", summary="Jobs: your own (admins: everyone's), newest first")
def list_jobs(store: StoreDep, principal: UserDep, settings: SettingsDep,
              state: Annotated[str | None, Query(pattern="^(queued|running|done|failed|cancelled)$")] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    _signed_in(principal)
    rows = jl.list_jobs(store, created_by=None if principal.role == "admin" else principal.name,
                        states=(state,) if state else None, limit=limit)
    return [job_out(r, settings.timezone) for r in rows]


@router.get("/{job_id}", summary="A job: state, progress, result or error")
def get_job(job_id: RowId, store: StoreDep, principal: UserDep, settings: SettingsDep) -> dict[str, Any]:
    return job_out(_visible(store, principal, job_id), settings.timezone)


@router.delete("/{job_id}", summary="Cancel a job (queued: at once; running: at its next step, nothing written)")
async def cancel(job_id: RowId, request: Request, store: StoreDep, principal: UserDep,
                 settings: SettingsDep) -> dict[str, Any]:
    _visible(store, principal, job_id)
    await run_in_threadpool(job_queue.cancel, store, job_id)
    request.state.audit_detail = {"job_id": job_id}
    return job_out(jl.get(store, job_id), settings.timezone)


def with_local_worker(inner: Callable[[FastAPI], Any]) -> Callable[[FastAPI], Any]:
    """The app's lifespan plus, on a GeoPackage store, the in-process job worker (one thread)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store: Store = app.state.store
        worker = job_queue.start_in_process_worker(store)
        try:
            async with inner(app):
                yield
        finally:
            if worker is not None:
                await run_in_threadpool(worker.stop)

    return lifespan

