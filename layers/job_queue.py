"""The job queue: procrastinate in PostgreSQL on PostGIS (any number of workers), one thread on GeoPackage."""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from gridpatrol.gis.errors import StoreError
from gridpatrol.layers import jobs
from gridpatrol.layers.store import Store, libpq_conninfo, open_store

TASK = "gridpatrol_job"
log = logging.getLogger("gridpatrol.jobs")
_apps: dict[str, Any] = {}
_apps_lock = threading.Lock()
_stores: dict[str, Store] = {}


def _store_for(url: str) -> Store:
    with _apps_lock:
        if url not in _stores:
            _stores[url] = open_store(url)
        return _stores[url]


def make_app(url: str):  # noqa: ANN201
    """A procrastinate App on the queue tables of the PostGIS store at ``url``, with the one task."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=libpq_conninfo(url)))

    @app.task(name=TASK, retry=procrastinate.RetryStrategy(max_attempts=jobs.MAX_ATTEMPTS, wait=1,
                                                          retry_exceptions={jobs.RetryableJobError}))
    def gridpatrol_job(job_id: int) -> str:
        return jobs.run_job(_store_for(url), job_id)

    return app


def _sync_app(store: Store):  # noqa: ANN202
    with _apps_lock:
        app = _apps.get(store.url)
        if app is None:
            app = _apps[store.url] = make_app(store.url).open()
        return app


def submit(store: Store, kind: str, values: dict[str, Any] | None, *, created_by: str | None,
           upload: jobs.Upload | None = None, principal: Any = None) -> int:
    """Check ``values`` and ``upload`` (InputError before anything is queued), queue the job; returns its id.

    ``upload``: the file a kind that reads one (imports) works on, stored with the job. ``principal``:
    the user queueing (the API), for kinds whose parameters depend on who asks (a worker's own report)."""
    params = jobs.parse_params(kind, values)
    jobs.check_upload(kind, upload)
    kind_ = jobs.KINDS[kind]
    if kind_.scope is not None and principal is not None:
        params = kind_.scope(params, principal)
    params, lock = kind_.pin(store, params)
    job_id = jobs.create(store, kind, params, created_by=created_by, lock_key=lock, upload=upload)
    if store.is_gpkg:
        wake(store)
        return job_id
    try:
        qid = _sync_app(store).tasks[TASK].configure(lock=lock).defer(job_id=job_id)
    except Exception as exc:  # noqa: BLE001  the row must not claim to be queued when the queue refused it
        with store.begin() as conn:
            conn.execute(jobs.T.update().where(jobs.T.c.id == job_id).values(
                state="failed", error=f"could not queue: {exc}", finished_at=jobs.utcnow()))
        raise StoreError(f"could not queue job {job_id}: {str(exc).splitlines()[0]}") from None
    jobs.set_queue_id(store, job_id, qid)
    return job_id


PER_AREA = ("draw-grids", "plan-routes")


def submit_per_area(store: Store, kind: str, values: dict[str, Any] | None, *, created_by: str | None) -> list[int]:
    """Queue one ``kind`` job per planning area (draw-grids: every planning area; plan-routes: every area
    with grids in the plan, pinned now), so W workers work on W areas at once; returns the job ids.

    ``values`` are checked once before anything is queued (InputError: nothing queued)."""
    from gridpatrol.gis.errors import InputError

    if kind not in PER_AREA:
        raise InputError(f"{kind!r} jobs cannot be queued per area", hint="per area: " + ", ".join(PER_AREA))
    values = dict(values or {})
    for key in ("area", "grids"):
        if values.get(key) is not None:
            raise InputError(f"{kind} per area: parameter {key} is set by the queue, leave it out")
    params = jobs.parse_params(kind, values)
    if kind == "draw-grids":
        from gridpatrol.layers.grids import area_codes

        codes = area_codes(store)
    else:
        from gridpatrol.layers.grids import read_grids

        params, _lock = jobs.KINDS[kind].pin(store, params)
        values["plan_id"] = params.plan_id
        grids = read_grids(store, params.plan_id)
        codes = sorted({str(c) for c in grids["parent_code"].dropna()})
    return [submit(store, kind, {**values, "area": code}, created_by=created_by) for code in codes]


def cancel(store: Store, job_id: int) -> str:
    """Cancel job ``job_id`` (see jobs.request_cancel); on PostGIS the queue's entry too. Returns its state."""
    state = jobs.request_cancel(store, job_id)
    qid = jobs.get(store, job_id)["queue_id"]
    if not store.is_gpkg and qid is not None and state in ("cancelled", "running"):
        try:
            _sync_app(store).job_manager.cancel_job_by_id(int(qid), abort=state == "running")
        except Exception:  # noqa: BLE001  our row decides: a worker skips a cancelled job anyway
            log.warning("job %s: the queue entry %s could not be cancelled", job_id, qid)
    return state


async def _recover(app, store: Store, stalled_s: float, every_s: float) -> None:  # noqa: ANN001
    """Retry (or fail) the jobs of workers that stopped beating for ``stalled_s`` s, every ``every_s`` s."""
    from procrastinate.jobs import Status

    while True:
        try:
            for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_s):
                job_id = int(job.task_kwargs.get("job_id", 0))
                state = await asyncio.to_thread(jobs.requeue_or_fail, store, job_id,
                                                f"worker lost (no heartbeat for {stalled_s:g} s)")
                if state == "queued":
                    await app.job_manager.retry_job(job)
                elif state:
                    await app.job_manager.finish_job_by_id_async(job.id, status=Status.FAILED, delete_job=False)
                log.warning("job %s: its worker was lost; now %s", job_id, state or "handled elsewhere")
            await app.job_manager.prune_stalled_workers(seconds_since_heartbeat=stalled_s)
        except Exception as exc:  # noqa: BLE001  recovery is retried on the next round
            log.warning("stalled-job check failed: %s", exc)
        await asyncio.sleep(every_s)


def run_pg_worker(store: Store, *, concurrency: int = 1, heartbeat_s: float = 10.0, stalled_s: float = 30.0,
                  wait: bool = True) -> None:
    """Run a procrastinate worker on the store's queue until stopped (SIGINT/SIGTERM).

    It also retries the jobs of lost workers (no heartbeat for ``stalled_s`` s), so any live
    worker recovers what a killed one left. With ``wait=False`` it stops when the queue is empty."""
    _stores.setdefault(store.url, store)

    async def main() -> None:
        app = make_app(store.url)
        async with app.open_async():
            rec = asyncio.create_task(_recover(app, store, stalled_s, heartbeat_s))
            try:
                await app.run_worker_async(concurrency=concurrency, wait=wait, update_heartbeat_interval=heartbeat_s,
                                           stalled_worker_timeout=stalled_s, fetch_job_polling_interval=heartbeat_s)
            finally:
                rec.cancel()

    asyncio.run(main())


class LocalWorker:
    """The GeoPackage store's worker: one thread running queued jobs one at a time, in this process."""

    def __init__(self, store: Store, *, poll_s: float = 2.0, lease_s: float = 30.0, heartbeat_s: float = 5.0) -> None:
        self.store, self.poll_s, self.lease_s, self.heartbeat_s = store, poll_s, lease_s, heartbeat_s
        self.wakeup = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True, name="gridpatrol-jobs")

    def recover(self) -> None:
        """Queue again (or fail) the running jobs whose lease ran out: their worker was lost."""
        for job_id in jobs.lost_jobs(self.store, self.lease_s):
            jobs.requeue_or_fail(self.store, job_id, f"worker lost (no heartbeat for {self.lease_s:g} s)")

    def run_once(self) -> int | None:
        """Recover lost jobs, then run the oldest queued job; returns its id (None: none was queued)."""
        self.recover()
        job_id = jobs.next_queued(self.store)
        if job_id is None:
            return None
        try:
            jobs.run_job(self.store, job_id, heartbeat_s=self.heartbeat_s)
        except jobs.RetryableJobError as exc:
            log.warning("job %s will be retried: %s", job_id, exc)
        return job_id

    def run(self) -> None:
        """Loop until stopped: run jobs, else wait for a new one (or ``poll_s`` s)."""
        while not self.stopping.is_set():
            try:
                ran = self.run_once()
            except Exception as exc:  # noqa: BLE001  the loop outlives a store hiccup
                log.warning("job worker: %s", exc)
                ran = None
            if ran is None:
                self.wakeup.wait(self.poll_s)
                self.wakeup.clear()

    def start(self) -> LocalWorker:
        _local[self.store.url] = self
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop after the job in hand (if any) and wait for the thread."""
        self.stopping.set()
        self.wakeup.set()
        self.thread.join()
        _local.pop(self.store.url, None)


_local: dict[str, LocalWorker] = {}


def run_until_empty(store: Store, *, concurrency: int = 1, heartbeat_s: float = 10.0, stalled_s: float = 30.0) -> None:
    """Run the store's queued jobs in this process until none is queued (``gridpatrol worker
    --until-empty``): a procrastinate worker on PostGIS, a LocalWorker's loop on a GeoPackage."""
    if not store.is_gpkg:
        run_pg_worker(store, concurrency=concurrency, heartbeat_s=heartbeat_s, stalled_s=stalled_s, wait=False)
        return
    w = LocalWorker(store, poll_s=min(heartbeat_s, 2.0), lease_s=stalled_s, heartbeat_s=heartbeat_s)
    while w.run_once() is not None:
        pass


def start_in_process_worker(store: Store) -> LocalWorker | None:
    """On a GeoPackage store, start the server's own job worker (one thread); PostGIS has separate workers."""
    return LocalWorker(store).start() if store.is_gpkg else None


def wake(store: Store) -> None:
    """Tell this process's GeoPackage worker (if any) that a job was queued."""
    w = _local.get(store.url)
    if w is not None:
        w.wakeup.set()


def drop_queue_sql(schema: str) -> str:
    """SQL dropping procrastinate's tables, functions and types (``procrastinate_*``) in ``schema``:
    a restore replaces the store's queue with the one in the backup."""
    lit = "'" + schema.replace("'", "''") + "'"
    like = r"'procrastinate\_%'"
    return f"""DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT format('DROP TABLE IF EXISTS %I.%I CASCADE', schemaname, tablename) AS s FROM pg_tables
           WHERE schemaname = {lit} AND tablename LIKE {like} LOOP EXECUTE r.s; END LOOP;
  FOR r IN SELECT format('DROP FUNCTION IF EXISTS %I.%I(%s) CASCADE', n.nspname, p.proname,
                         pg_get_function_identity_arguments(p.oid)) AS s
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = {lit} AND p.proname LIKE {like} LOOP EXECUTE r.s; END LOOP;
  FOR r IN SELECT format('DROP TYPE IF EXISTS %I.%I CASCADE', n.nspname, t.typname) AS s
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = {lit} AND t.typname LIKE {like} AND t.typtype IN ('e', 'c') LOOP EXECUTE r.s; END LOOP;
END $$;"""
