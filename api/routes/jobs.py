"""Jobs: queue long work (draw-grids, plan-routes, rebalance, one per planning area; imports of an uploaded
file; link-incidents; patrol reports), follow its progress, fetch its result or file, cancel it."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from gridpatrol.api.auth import AuthError, require_permission
from gridpatrol.api.deps import RowId, SettingsDep, StoreDep, UserDep
from gridpatrol.gis.errors import InputError, NotFoundError
from gridpatrol.layers import job_queue
from gridpatrol.layers import jobs as jl
from gridpatrol.layers.store import Store
from gridpatrol.layers.users import Principal
from pydantic import BaseModel, Field, ValidationError

router = APIRouter(prefix="/jobs", tags=["jobs"])


class JobIn(BaseModel):
    """A job to queue: its kind and the parameters of the route it wraps."""

    kind: str = Field(max_length=64, description="draw-grids, plan-routes, rebalance, import-osm, import-households, "
                                                 "import-cameras, link-incidents or patrol-report")
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


SUBMIT_BODY = {"requestBody": {
    "required": True,
    "description": "JSON {kind, params}; or, for the imports (import-osm, import-households, import-cameras), "
                   "multipart/form-data with fields `kind`, `params` (JSON text) and `file` (the file the import "
                   "reads: the same kinds as its route). Files are uploaded, never named by a path on the server.",
    "content": {
        "application/json": {"schema": JobIn.model_json_schema()},
        "multipart/form-data": {"schema": {"type": "object", "required": ["kind", "file"], "properties": {
            "kind": {"type": "string"}, "params": {"type": "string", "description": "JSON object"},
            "file": {"type": "string", "format": "binary"}}}},
    },
}}


async def _read_submission(request: Request) -> tuple[JobIn, jl.Upload | None]:
    """The job a POST /jobs asks for: a JSON body, or a multipart form with the file an import reads."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    upload = None
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=10)
        raw = form.get("params") or "{}"
        try:
            params = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            params = None
        if not isinstance(params, dict):
            raise InputError("表单字段 params 不是 JSON 对象 / form field params is not a JSON object",
                             hint='e.g. params={"crs": "gcj02"}')
        values: Any = {"kind": form.get("kind") if isinstance(form.get("kind"), str) else None, "params": params}
        f = form.get("file")
        if f is not None and not isinstance(f, str):
            upload = jl.Upload(name=jl.safe_file_name(f.filename or "upload"), data=await f.read(),
                               media_type=(f.content_type or "application/octet-stream")[:100])
    elif ctype in ("application/json", ""):
        try:
            values = json.loads(await request.body() or b"null")
        except ValueError:
            raise InputError("请求体不是 JSON / the request body is not JSON",
                             hint='e.g. {"kind": "draw-grids", "params": {"seed": 1}}') from None
    else:
        raise InputError(f"不支持的 Content-Type {ctype!r} / cannot read a body of Content-Type {ctype!r}",
                         hint="send application/json, or multipart/form-data with a file")
    try:
        return JobIn.model_validate(values), upload
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors()]) from None


@router.post("", status_code=202, summary="Queue a job (checked before it is queued); answers its id",
             openapi_extra=SUBMIT_BODY)
async def submit(request: Request, store: StoreDep, principal: UserDep, settings: SettingsDep) -> dict[str, Any]:
    _signed_in(principal)
    body, upload = await _read_submission(request)
    kind = jl.KINDS.get(body.kind)
    if kind is None:
        raise InputError(f"没有这种任务 {body.kind!r} / unknown job kind {body.kind!r}", hint="kinds: " + ", ".join(jl.KINDS))
    require_permission(principal, kind.permission, f"run {body.kind} jobs")
    values = dict(body.params)
    if body.kind == "patrol-report":  # the county's zone and working hours, unless the caller names others
        values.setdefault("tz", settings.timezone)
        values.setdefault("hours", settings.work_hours)
    job_id = await run_in_threadpool(job_queue.submit, store, body.kind, values, created_by=principal.name,
                                     upload=upload, principal=principal)
    detail: dict[str, Any] = {"job_id": job_id, "kind": body.kind}
    if upload is not None:
        info = jl.file_info(store, job_id)["input"]
        detail["upload"] = {"name": info["name"], "bytes": info["size"], "sha256": info["sha256"]}
    request.state.audit_detail = detail
    return _with_files(store, job_out(jl.get(store, job_id), settings.timezone))


def _with_files(store: Store, out: dict[str, Any]) -> dict[str, Any]:
    """A job answer with its files: the upload it reads and what it made (``output.href``: its owner's download)."""
    files = jl.file_info(store, out["id"])
    out["input"] = files.get("input")
    if "output" in files:
        out["output"] = {**files["output"], "href": f"/jobs/{out['id']}/output"}
    else:
        out["output"] = None
    return out


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
    return _with_files(store, job_out(_visible(store, principal, job_id), settings.timezone))


@router.get("/{job_id}/output", summary="What a job made (a patrol report's XLSX): its owner only")
def get_output(job_id: RowId, store: StoreDep, principal: UserDep) -> Response:
    """The file is the owner's: it holds what they may see. Anyone else (admins too) gets a 404."""
    job = _visible(store, principal, job_id)
    if job["created_by"] != principal.name:
        raise NotFoundError(f"job {job_id} has no file for you")
    f = jl.read_file(store, job_id, "output") if job["state"] == "done" else None
    if f is None:
        raise NotFoundError(f"任务 {job_id} 没有生成文件 / job {job_id} has made no file (yet)")
    return Response(f["data"], media_type=f["media_type"],
                    headers={"Content-Disposition": f'attachment; filename="{jl.safe_file_name(f["name"])}"'})


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

