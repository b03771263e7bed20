"""Jobs in the store: their rows (state, progress, result), the kinds of work, and running one job."""
from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from gridpatrol.gis.errors import GridPatrolError, InputError, NotFoundError, PermissionDenied
from gridpatrol.layers.models import Job, JobFile, utcnow
from gridpatrol.layers.plan_base import with_write_hook
from gridpatrol.layers.plan_params import DrawJobParams, RebalanceParams, RoutesJobParams
from gridpatrol.layers.store import Store
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, and_, insert, select, update

log = logging.getLogger("gridpatrol.jobs")
STATES = ("queued", "running", "done", "failed", "cancelled")
ENDED = frozenset({"done", "failed", "cancelled"})
# A job is started at most this often: a worker lost mid-job (killed, machine gone) counts as an attempt.
MAX_ATTEMPTS = 3
Progress = Callable[[str], None]
T = Job.__table__
F = JobFile.__table__


class JobCancelled(Exception):
    """Raised inside a job's work when its cancellation was asked for: nothing is written."""


class JobSuperseded(Exception):
    """Raised in a job's write when a later attempt has taken the job over (this worker's lease ran out
    while it still worked, e.g. starved of CPU): this attempt writes nothing, the later one counts."""


@dataclass(frozen=True)
class Kind:
    """A kind of job: its parameters, the permission it needs, its work and its lock."""

    model: type[BaseModel]
    permission: str  # a name of api.auth.PERMISSIONS: the same as the route the job wraps
    run: Callable[[Store, Any, Progress, str | None], dict]
    steps: Callable[[Store, Any], int]  # how many progress steps the work reports (an estimate)
    pin: Callable[[Store, Any], tuple[Any, str | None]]  # params with the plan fixed now, and the lock key
    # Suffixes of the file the job reads (an upload stored with the job); empty: the kind takes no file.
    files: tuple[str, ...] = ()
    # Params checked and narrowed for the user queueing (and, again, for the user when it runs), e.g.
    # a grid worker's patrol report is their own; PermissionDenied / InputError otherwise.
    scope: Callable[[Any, Any], Any] | None = None
    # The work depends on who queued it (secrecy levels, own data): it runs as that user, as they are
    # when it runs (a user deactivated or stripped of the permission meanwhile: the job fails).
    needs_user: bool = False


@dataclass(frozen=True)
class JobContext:
    """What a running job's work may ask: its id, its uploaded file (a temporary copy) and its user."""

    job_id: int
    input_path: Path | None = None
    input_label: str = ""
    principal: Any = None  # layers.users.Principal, for kinds with needs_user


_CONTEXT: ContextVar[JobContext | None] = ContextVar("gridpatrol_job_context", default=None)


def job_context() -> JobContext:
    """The context of the job whose work is running in this thread."""
    ctx = _CONTEXT.get()
    if ctx is None:
        raise RuntimeError("not inside a job")
    return ctx


@dataclass(frozen=True)
class Upload:
    """A file sent with a job: a safe name (no directories), its bytes and media type."""

    name: str
    data: bytes
    media_type: str = "application/octet-stream"


def safe_file_name(name: str) -> str:
    """``name`` without directories or odd characters (at most 100 characters); "upload" if nothing is left."""
    base = Path(str(name).replace("\\", "/")).name
    base = re.sub(r"[^\w.\-]+", "_", base)[:100].lstrip(".")
    return base or "upload"


def check_upload(kind: str, upload: Upload | None) -> None:
    """InputError unless ``kind`` takes a file and ``upload`` is one of its kinds (or takes none and has none)."""
    suffixes = KINDS[kind].files
    if not suffixes:
        if upload is not None:
            raise InputError(f"{kind} 任务不需要上传文件 / {kind} jobs take no file: send the parameters as JSON")
        return
    if upload is None:
        raise InputError(f"{kind} 任务需要上传文件（multipart/form-data 的 file 字段） / {kind} jobs need a file: "
                         "send multipart/form-data with fields kind, params (JSON) and file",
                         hint="文件类型 / file kinds: " + ", ".join(suffixes))
    low = upload.name.lower()
    if not any(low.endswith(s) for s in suffixes):
        raise InputError(f"上传的文件 {upload.name!r} 类型不对 / upload {upload.name!r}: not a file {kind} reads",
                         hint="文件类型 / file kinds: " + ", ".join(suffixes))
    if not upload.data.strip():
        raise InputError(f"上传的文件 {upload.name!r} 是空的 / upload {upload.name!r} is empty")


def read_file(store: Store, job_id: int, role: str) -> dict[str, Any] | None:
    """The job's ``input`` or ``output`` file (name, media_type, sha256, size, data), or None."""
    row = store.first_row(select(F.c.name, F.c.media_type, F.c.sha256, F.c.size, F.c.data).where(
        and_(F.c.job_id == job_id, F.c.role == role)))
    return dict(row._mapping) if row is not None else None


def file_info(store: Store, job_id: int) -> dict[str, dict[str, Any]]:
    """``{role: {name, media_type, sha256, size}}`` of a job's files (no data)."""
    with store.engine.connect() as c:
        rows = c.execute(select(F.c.role, F.c.name, F.c.media_type, F.c.sha256, F.c.size).where(F.c.job_id == job_id))
        return {r.role: {"name": r.name, "media_type": r.media_type, "sha256": r.sha256, "size": r.size} for r in rows}


def _insert_file(conn: Connection, job_id: int, role: str, name: str, media_type: str, data: bytes) -> None:
    conn.execute(insert(F).values(job_id=job_id, role=role, name=safe_file_name(name), media_type=media_type,
                                  sha256=hashlib.sha256(data).hexdigest(), size=len(data), data=data,
                                  created_at=utcnow()))


def save_output(conn: Connection, job_id: int, name: str, media_type: str, data: bytes) -> None:
    """Keep what a job made for its owner (inside the work's write transaction)."""
    conn.execute(F.delete().where(and_(F.c.job_id == job_id, F.c.role == "output")))
    _insert_file(conn, job_id, "output", name, media_type, data)


def run_as(store: Store, created_by: str | None) -> Any:
    """The user a job runs as: the one who queued it, as they are now (the command line: an admin)."""
    from gridpatrol.layers.users import Principal, get_user

    if created_by is not None and created_by.startswith("cli:"):  # queued by the store's operator
        return Principal(name=created_by, role="admin", max_secrecy_level=9)
    who = get_user(store, created_by) if created_by else None
    if who is None:
        raise PermissionDenied(f"提交任务的用户 {created_by!r} 不存在或已停用 / the user {created_by!r} who queued "
                               "the job no longer exists or is deactivated")
    return who


def _newest(store: Store) -> int | None:
    from gridpatrol.layers.grids import latest_plan_id

    try:
        return latest_plan_id(store)
    except NotFoundError:
        return None


def _draw(store: Store, p: DrawJobParams, say: Progress, by: str | None) -> dict:
    from gridpatrol.layers import grids as gl

    params = gl.PlanParams(**p.model_dump(exclude={"name", "area"}))
    if p.area is not None:
        return {"plan_id": gl.draw_area(store, p.area, params, progress=say, created_by=by, name=p.name),
                "area": p.area}
    return {"plan_id": gl.draw_grids(store, params, progress=say, created_by=by, name=p.name)}


def _draw_steps(store: Store, p: DrawJobParams) -> int:
    from gridpatrol.layers.grids import planning_areas

    if p.area is not None:
        return 6  # coverage, read, blocks, adjacency, partition, write
    return 4 * max(len(planning_areas(store)), 1) + 1  # read, blocks, adjacency, partition per area; write


def area_grid_codes(store: Store, plan_id: int | None, area: str) -> list[str]:
    """Codes of the grids of plan ``plan_id`` (None: the newest) inside planning area ``area``; InputError if none."""
    from gridpatrol.layers.grids import read_grids

    grids = read_grids(store, plan_id)
    codes = sorted(grids.loc[grids["parent_code"].astype(str) == str(area), "code"].astype(str))
    if not codes:
        areas = sorted({str(c) for c in grids["parent_code"].dropna()})
        raise InputError(f"plan {plan_id or 'newest'} has no grids in area {area!r}",
                         hint="areas of the plan: " + ", ".join(areas[:50]))
    return codes


def _routes(store: Store, p: RoutesJobParams, say: Progress, _by: str | None) -> dict:
    from gridpatrol.layers import routes as rl

    codes = area_grid_codes(store, p.plan_id, p.area) if p.area is not None else p.grids
    targets = rl.grid_targets(store, codes, p.plan_id)
    out = rl.plan_routes(store, targets, mode=p.mode, workers=p.workers, start=p.start, time_limit_s=p.time_limit_s,
                         skip_failures=True, progress=say)
    return {"planned": sum(o.ok for o in out), "failed": {o.code: o.error for o in out if not o.ok}}


def _routes_steps(store: Store, p: RoutesJobParams) -> int:
    from gridpatrol.layers import routes as rl

    if p.area is not None:
        return len(area_grid_codes(store, p.plan_id, p.area)) + 1
    return len(rl.grid_targets(store, p.grids, p.plan_id)) + 1


def _rebalance(store: Store, p: RebalanceParams, say: Progress, by: str | None) -> dict:
    from gridpatrol.layers import grids as gl

    say("rebalancing " + ", ".join(p.codes))
    res = gl.rebalance_grids(store, p.codes, plan_id=p.plan_id, force=p.force, created_by=by)
    return {"plan_id": res.plan_id, "parent_plan_id": res.parent_plan_id, "changed": res.changed_codes}


def _pin_plan(store: Store, p: Any) -> tuple[Any, str]:
    # The plan a job works on is fixed when it is queued, and is its lock: two jobs on one plan
    # run one after the other, in the order they were queued.
    pid = p.plan_id or _newest(store)
    return p.model_copy(update={"plan_id": pid}), f"plan:{pid}"


def _pin_routes(store: Store, p: RoutesJobParams) -> tuple[Any, str]:
    # Routes of one area of a plan: jobs on other areas of the plan write other grids' routes and may
    # run at once; the area must have grids in the pinned plan (refused before queueing otherwise).
    p, lock = _pin_plan(store, p)
    if p.area is None:
        return p, lock
    area_grid_codes(store, p.plan_id, p.area)
    return p, f"{lock}:area:{p.area}"


def _pin_draw(store: Store, p: DrawJobParams) -> tuple[Any, str]:
    # A whole drawing builds on the newest plan (its locked grids): it takes that plan's lock. An
    # area's drawing takes the area's lock: drawings of different areas run at once, and each writes
    # on top of the newest plan when it ends (layers/grids/area_draw.py).
    if p.area is None:
        return p, f"plan:{_newest(store)}"
    from gridpatrol.layers.grids import area_codes

    codes = area_codes(store)
    if str(p.area) not in codes:
        raise InputError(f"draw-grids: parameter area = {p.area!r}: no such planning area",
                         hint="planning areas: " + ", ".join(codes[:50]))
    # The rules are fixed now (area_params): a rural plan's area is redrawn rurally with its limits
    # unless the request chose the mode (the stored job shows them; the worker sees every field set).
    from gridpatrol.layers.grids import area_params

    p = p.model_copy(update=area_params(store, p).model_dump())
    return p, f"area:{p.area}"


KINDS: dict[str, Kind] = {
    "draw-grids": Kind(DrawJobParams, "edit_grids", _draw, _draw_steps, _pin_draw),
    "plan-routes": Kind(RoutesJobParams, "plan_routes", _routes, _routes_steps, _pin_routes),
    "rebalance": Kind(RebalanceParams, "edit_grids", lambda s, p, say, by: _rebalance(s, p, say, by),
                      lambda _s, _p: 1, _pin_plan),
}


def parse_params(kind: str, values: dict[str, Any] | None) -> BaseModel:
    """``values`` checked by the model of ``kind`` (the one its route uses); InputError naming the field
    (in Chinese, then English, as the API's other refusals)."""
    if kind not in KINDS:
        raise InputError(f"没有这种任务 {kind!r} / unknown job kind {kind!r}", hint="kinds: " + ", ".join(KINDS))
    model = KINDS[kind].model
    try:
        params = model.model_validate(values or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ())) or "parameters"
        what = "未知参数" if err.get("type") == "extra_forbidden" else (
            "缺少参数" if err.get("type") == "missing" else "参数不正确")
        shown = f" = {repr(err.get('input'))[:80]}" if err.get("loc") else ""
        raise InputError(f"{kind} 任务{what} {where} / {kind}: parameter {where}{shown}: {err.get('msg')}") from None
    checked = getattr(params, "checked", None)
    return checked() if checked else params


def create(store: Store, kind: str, params: BaseModel, *, created_by: str | None, lock_key: str | None,
           upload: Upload | None = None) -> int:
    """Insert a queued job row (and its uploaded file, in the same transaction); returns its id."""
    with store.begin() as conn:
        res = conn.execute(insert(T).values(
            kind=kind, params_json=params.model_dump_json(by_alias=True), state="queued", created_by=created_by,
            created_at=utcnow(), attempts=0, steps_done=0, cancel_requested=False, lock_key=lock_key))
        job_id = int(res.inserted_primary_key[0])
        if upload is not None:
            _insert_file(conn, job_id, "input", upload.name, upload.media_type, upload.data)
        return job_id


def set_queue_id(store: Store, job_id: int, queue_id: int) -> None:
    """Remember the queue's (procrastinate's) id of a job."""
    with store.begin() as conn:
        conn.execute(update(T).where(T.c.id == job_id).values(queue_id=queue_id))


def _out(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    d["params"] = json.loads(d.pop("params_json") or "{}")
    d["result"] = json.loads(d.pop("result_json")) if d.get("result_json") else None
    return d


def get(store: Store, job_id: int, conn: Connection | None = None) -> dict[str, Any]:
    """The job ``job_id`` as a dict (params and result decoded); NotFoundError if there is none."""
    stmt = select(T).where(T.c.id == job_id)
    row = store.first_row(stmt, conn)
    if row is None:
        raise NotFoundError(f"no job {job_id}")
    return _out(row)


def list_jobs(store: Store, *, created_by: str | None = None, states: tuple[str, ...] | None = None,
              limit: int = 1000) -> list[dict[str, Any]]:
    """Jobs, newest first; only ``created_by``'s when given, only in ``states`` when given."""
    stmt = select(T).order_by(T.c.id.desc()).limit(limit)
    if created_by is not None:
        stmt = stmt.where(T.c.created_by == created_by)
    if states:
        stmt = stmt.where(T.c.state.in_(states))
    with store.engine.connect() as c:
        return [_out(r) for r in c.execute(stmt)]


def claim(store: Store, job_id: int) -> int | None:
    """Mark a queued job running (one more attempt); its attempt number, None when it is not queued
    (ended, cancelled, taken)."""
    now = utcnow()
    with store.begin() as conn:
        res = conn.execute(update(T).where(and_(T.c.id == job_id, T.c.state == "queued")).values(
            state="running", started_at=now, heartbeat_at=now, attempts=T.c.attempts + 1, step=None))
        if res.rowcount != 1:
            return None
        return int(conn.execute(select(T.c.attempts).where(T.c.id == job_id)).scalar())


def beat(store: Store, job_id: int, *, done: int | None = None, step: str | None = None) -> bool:
    """Renew a running job's lease (and record progress); True when its cancellation was asked for."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if done is not None:
        values.update(steps_done=done, step=step)
    with store.begin() as conn:
        conn.execute(update(T).where(and_(T.c.id == job_id, T.c.state == "running")).values(**values))
        return bool(conn.execute(select(T.c.cancel_requested).where(T.c.id == job_id)).scalar())


def finish(conn: Connection, job_id: int, state: str, *, result: dict | None = None, error: str | None = None,
           attempt: int | None = None) -> None:
    """End a running job in ``state`` with its result or error (inside the caller's transaction); with
    ``attempt``, only while that attempt is the one running (a later one may have taken over)."""
    values: dict[str, Any] = {"state": state, "finished_at": utcnow(), "error": error}
    if result is not None:
        values["result_json"] = json.dumps(result, ensure_ascii=False, default=str)
    if state == "done":
        values["steps_done"] = T.c.steps_total
    cond = and_(T.c.id == job_id, T.c.state == "running")
    if attempt is not None:
        cond = and_(cond, T.c.attempts == attempt)
    conn.execute(update(T).where(cond).values(**values))


def request_cancel(store: Store, job_id: int) -> str:
    """Cancel a job: a queued one at once, a running one at its next step (nothing it did is written).

    Returns the job's state afterwards (an ended job is left as it was)."""
    with store.begin() as conn:
        conn.execute(update(T).where(and_(T.c.id == job_id, T.c.state == "queued")).values(
            state="cancelled", finished_at=utcnow(), cancel_requested=True))
        conn.execute(update(T).where(and_(T.c.id == job_id, T.c.state == "running")).values(cancel_requested=True))
        return get(store, job_id, conn)["state"]


def requeue_or_fail(store: Store, job_id: int, reason: str, attempt: int | None = None) -> str:
    """A running job whose worker was lost: queued again while attempts remain, else failed with ``reason``.
    With ``attempt``: only if that attempt is the one running.

    Returns the new state ('' when the job was not running: another worker dealt with it)."""
    with store.begin() as conn:
        row = conn.execute(select(T.c.state, T.c.attempts, T.c.cancel_requested).where(T.c.id == job_id)
                           .with_for_update()).first()
        if row is None or row.state != "running" or (attempt is not None and row.attempts != attempt):
            return ""
        if row.cancel_requested:
            state, err = "cancelled", f"{reason}; cancelled"
        elif row.attempts >= MAX_ATTEMPTS:
            state, err = "failed", f"{reason}; gave up after {row.attempts} attempts"
        else:
            state, err = "queued", f"{reason}; retrying (attempt {row.attempts + 1} of {MAX_ATTEMPTS})"
        conn.execute(update(T).where(T.c.id == job_id).values(
            state=state, error=err, heartbeat_at=None, finished_at=None if state == "queued" else utcnow()))
        return state


def lost_jobs(store: Store, lease_s: float) -> list[int]:
    """Ids of running jobs whose lease ran out: no heartbeat for ``lease_s`` seconds."""
    cutoff = utcnow() - timedelta(seconds=lease_s)
    with store.engine.connect() as c:
        return [int(r[0]) for r in c.execute(select(T.c.id).where(and_(
            T.c.state == "running", T.c.heartbeat_at < cutoff)).order_by(T.c.id))]


def next_queued(store: Store) -> int | None:
    """The oldest queued job's id, or None."""
    with store.engine.connect() as c:
        v = c.execute(select(T.c.id).where(T.c.state == "queued").order_by(T.c.id).limit(1)).scalar()
    return int(v) if v is not None else None


class _Heartbeat:
    """Renews a job's lease every ``every_s`` seconds from a thread while its work runs.

    On a GeoPackage it also writes the progress the work reports (``report``): SQLite has one writer,
    and work that reports progress inside its own write transaction (an import joining rows) would
    wait for itself if it wrote the progress from its own thread. The thread's write waits for that
    transaction instead; ``cancelled`` is what the last beat read."""

    def __init__(self, store: Store, job_id: int, every_s: float) -> None:
        self.stop = threading.Event()
        self.poke = threading.Event()
        self.lock = threading.Lock()
        self.pending: tuple[int, str] | None = None
        self.cancelled = False
        self.thread = threading.Thread(target=self._run, args=(store, job_id, every_s), daemon=True,
                                       name=f"gridpatrol-job-{job_id}-heartbeat")

    def report(self, done: int, step: str) -> bool:
        """Record progress (written by the thread at once); True when the job's cancellation was asked for."""
        with self.lock:
            self.pending = (done, step)
        self.poke.set()
        return self.cancelled

    def _run(self, store: Store, job_id: int, every_s: float) -> None:
        while not self.stop.is_set():
            self.poke.wait(every_s)
            self.poke.clear()
            with self.lock:
                pending, self.pending = self.pending, None
            try:
                if pending is None:
                    self.cancelled = beat(store, job_id) or self.cancelled
                else:
                    self.cancelled = beat(store, job_id, done=pending[0], step=pending[1]) or self.cancelled
            except Exception:  # noqa: BLE001  a missed beat is retried; the work goes on
                if pending is not None:
                    with self.lock:
                        self.pending = self.pending or pending

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.poke.set()
        self.thread.join()


def _relabel(exc: GridPatrolError, path: Path, label: str) -> GridPatrolError:
    """``exc`` with the temporary copy's path replaced by the name the user uploaded."""
    def fix(v: str | None) -> str | None:
        return v.replace(str(path.resolve()), label).replace(str(path), label) if v else v

    hint = exc.hint
    if hint and "--skip-bad" in hint:  # the command line's way out; a job is all or nothing
        hint = "fix the rows and queue the whole file again; nothing is imported while any row is bad"
    return type(exc)(fix(exc.message) or "", where=fix(exc.where), hint=hint)


class RetryableJobError(Exception):
    """A job's work failed unexpectedly and will be tried again (the message says why)."""


def run_job(store: Store, job_id: int, *, heartbeat_s: float = 5.0) -> str:
    """Run job ``job_id`` if it is queued; returns its state afterwards.

    The work's one write transaction also marks the job done with its result, so a worker killed
    at any moment leaves either nothing or the whole result and a done job. A GridPatrolError
    (bad data, refusal) fails the job; an unexpected error queues it again while attempts remain
    and raises RetryableJobError (the queue retries it), else fails it."""
    attempt = claim(store, job_id)
    if attempt is None:
        return get(store, job_id)["state"]
    row = get(store, job_id)
    kind = KINDS[row["kind"]]
    params = kind.model.model_validate(row["params"])
    total = max(int(kind.steps(store, params)), 1)
    with store.begin() as conn:
        conn.execute(update(T).where(T.c.id == job_id).values(steps_total=total))
    count = [0]
    last_step: list[str | None] = [None]
    hb = _Heartbeat(store, job_id, heartbeat_s)

    def say(msg: str) -> None:
        count[0] += 1
        last_step[0] = str(msg)[:500]
        done = min(count[0], total - 1)
        if hb.report(done, last_step[0]) if store.is_gpkg else beat(store, job_id, done=done, step=last_step[0]):
            raise JobCancelled

    def in_write(conn: Connection, what: dict) -> None:
        # In the work's own transaction: refuse to commit a cancelled job's work, or the work of an
        # attempt another one has taken over (never two plans for one job); else end the job.
        row = conn.execute(select(T.c.cancel_requested, T.c.state, T.c.attempts).where(T.c.id == job_id)
                           .with_for_update()).one()
        if row.state != "running" or row.attempts != attempt:
            raise JobSuperseded
        if row.cancel_requested:
            raise JobCancelled
        if last_step[0] is not None:  # the last step the work reported (on a GeoPackage maybe not written yet)
            conn.execute(update(T).where(T.c.id == job_id).values(step=last_step[0]))
        finish(conn, job_id, "done", result=what, attempt=attempt)

    try:
        with hb, tempfile.TemporaryDirectory(prefix="gridpatrol-job-") as tmp:
            ctx = JobContext(job_id)
            if kind.needs_user:
                who = run_as(store, row["created_by"])
                params = kind.scope(params, who) if kind.scope else params
                ctx = JobContext(job_id, principal=who)
            if kind.files:
                f = read_file(store, job_id, "input")
                if f is None:
                    raise InputError("任务的上传文件不见了 / the job's uploaded file is missing")
                path = Path(tmp) / safe_file_name(f["name"])
                path.write_bytes(f["data"])
                ctx = JobContext(job_id, input_path=path, input_label=f"upload {f['name']}", principal=ctx.principal)
            token = _CONTEXT.set(ctx)
            try:
                result = with_write_hook(in_write, lambda: kind.run(store, params, say, row["created_by"]))
            except GridPatrolError as exc:
                if ctx.input_path is None:
                    raise
                raise _relabel(exc, ctx.input_path, ctx.input_label) from None
            finally:
                _CONTEXT.reset(token)
    except JobSuperseded:
        log.warning("job %s: attempt %s was taken over by a later one; its work is dropped", job_id, attempt)
        return get(store, job_id)["state"]
    except JobCancelled:
        with store.begin() as conn:
            finish(conn, job_id, "cancelled", error="cancelled", attempt=attempt)
        return get(store, job_id)["state"]
    except GridPatrolError as exc:
        with store.begin() as conn:
            finish(conn, job_id, "failed", error=str(exc), attempt=attempt)
        return get(store, job_id)["state"]
    except Exception as exc:  # noqa: BLE001  anything else: the queue may retry it
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        state = requeue_or_fail(store, job_id, reason, attempt)
        if state == "queued":
            raise RetryableJobError(reason) from exc
        return state or get(store, job_id)["state"]
    with store.begin() as conn:
        # The write already ended the job (with the plan id); the full summary completes its result.
        job = get(store, job_id, conn)
        if job["attempts"] != attempt:
            return job["state"]  # taken over by a later attempt (work that wrote nothing)
        merged = {**(job["result"] or {}), **result}
        values: dict[str, Any] = {"result_json": json.dumps(merged, ensure_ascii=False, default=str)}
        if job["state"] == "running" and last_step[0] is not None:
            values["step"] = last_step[0]
        conn.execute(update(T).where(T.c.id == job_id).values(**values))
        finish(conn, job_id, "done", result=merged, attempt=attempt)  # work that wrote nothing ends here
    return get(store, job_id)["state"]


# The kinds that wrap imports, link-incidents and patrol reports (they need Kind and the helpers above).
from gridpatrol.layers import job_kinds as _more  # noqa: E402

KINDS.update(_more.KINDS)
