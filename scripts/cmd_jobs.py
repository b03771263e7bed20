"""CLI commands for queued work: ``worker`` (run jobs) and ``jobs`` (list, follow, cancel, wait)."""
from __future__ import annotations

import os
import time
from typing import Annotated, Optional
from zoneinfo import ZoneInfo

import typer
from gridpatrol.scripts.cli_texts import t
from gridpatrol.scripts.cliutil import console, err_console, open_cli_store, print_table, progress_steps


def _local(v) -> str:  # noqa: ANN001
    zone = ZoneInfo(os.environ.get("GRIDPATROL_TIMEZONE", "Asia/Shanghai"))
    return v.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if v is not None else ""


def _row(j: dict) -> dict:
    total = j["steps_total"]
    return {"id": j["id"], "kind": j["kind"], "state": j["state"], "by": j["created_by"] or "",
            "queued": _local(j["created_at"]), "progress": f"{j['steps_done']}/{total}" if total else "",
            "step": (j["step"] or "")[:60], "tries": j["attempts"],
            "result / error": str(j["error"] if j["state"] in ("failed", "cancelled") else (j["result"] or ""))[:80]}


def queue_jobs(store, kind: str, values: dict, per_area: bool) -> list[int]:  # noqa: ANN001
    """Queue ``kind`` (one job, or one per planning area) as the user running the command; print the ids."""
    import getpass

    from gridpatrol.layers import job_queue

    who = f"cli:{getpass.getuser()}"  # the command line has no signed-in user: admins see these jobs
    if per_area:
        ids = job_queue.submit_per_area(store, kind, values, created_by=who)
    else:
        ids = [job_queue.submit(store, kind, values, created_by=who)]
    console.print(t("queued_jobs", n=len(ids), kind=kind) + ", ".join(map(str, ids)))
    err_console.print(t("run_workers"), highlight=False)
    return ids


app = typer.Typer()


@app.command("worker")
def worker_cmd(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Jobs at once in this process (PostGIS)")] = 1,
    heartbeat_s: Annotated[float, typer.Option("--heartbeat", min=0.5, help="Seconds between heartbeats")] = 10.0,
    stalled_s: Annotated[float, typer.Option("--stalled-after", min=1.0,
                                             help="A worker silent this long (s) is lost: its job is retried")] = 30.0,
    until_empty: Annotated[bool, typer.Option("--until-empty", help="Stop when no job is queued")] = False,
) -> None:
    """Run queued jobs until stopped (Ctrl+C). PostGIS: any number of workers on any machines
    share the queue; GeoPackage: one job at a time (the server runs one such worker itself)."""
    from gridpatrol.layers import job_queue

    store = open_cli_store(ctx, create=False)
    err_console.print(t("worker_on", url=store.display_url(), n=concurrency))
    try:
        if until_empty:
            job_queue.run_until_empty(store, concurrency=concurrency, heartbeat_s=heartbeat_s, stalled_s=stalled_s)
        elif not store.is_gpkg:
            job_queue.run_pg_worker(store, concurrency=concurrency, heartbeat_s=heartbeat_s, stalled_s=stalled_s)
        else:
            w = job_queue.LocalWorker(store, poll_s=min(heartbeat_s, 2.0), lease_s=stalled_s, heartbeat_s=heartbeat_s)
            while True:
                if w.run_once() is None:
                    time.sleep(w.poll_s)
    except KeyboardInterrupt:
        pass
    finally:
        store.dispose()


@app.command("jobs")
def jobs_cmd(
    ctx: typer.Context,
    follow: Annotated[Optional[int], typer.Option(help="Show job ID's progress until it ends")] = None,
    cancel: Annotated[Optional[int], typer.Option(help="Cancel job ID")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Block until every queued or running job has ended; "
                                                      "exit 1 if one of them failed")] = False,
    state: Annotated[Optional[str], typer.Option(help="List only jobs in this state")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Jobs to list, newest first")] = 50,
    poll_s: Annotated[float, typer.Option("--poll", min=0.1, help="Seconds between looks at the store")] = 1.0,
) -> None:
    """List jobs (newest first), follow one, cancel one, or wait for the queue to drain."""
    from gridpatrol.gis.errors import InputError
    from gridpatrol.layers import job_queue
    from gridpatrol.layers import jobs as jl

    if state is not None and state not in jl.STATES:
        raise InputError(f"--state {state!r} is not a job state", hint="states: " + ", ".join(jl.STATES))
    store = open_cli_store(ctx, create=False)
    try:
        if cancel is not None:
            console.print(t("job_line", id=cancel, state=job_queue.cancel(store, cancel)))
            return
        if follow is not None:
            job = jl.get(store, follow)
            with progress_steps(t("progress_job", id=follow, kind=job["kind"])) as step:
                while job["state"] not in jl.ENDED:
                    step(f"{job['state']} {job['steps_done']}/{job['steps_total'] or '?'} {job['step'] or ''}")
                    time.sleep(poll_s)
                    job = jl.get(store, follow)
            print_table([_row(job)])
            if job["state"] != "done":
                raise typer.Exit(1)
            return
        if wait:
            watched = {j["id"] for j in jl.list_jobs(store, states=("queued", "running"), limit=100_000)}
            with progress_steps(t("progress_wait")) as step:
                while True:
                    open_ = jl.list_jobs(store, states=("queued", "running"), limit=100_000)
                    if not open_:
                        break
                    watched |= {j["id"] for j in open_}  # jobs queued meanwhile count too
                    step(t("open_jobs", n=len(open_)))
                    time.sleep(poll_s)
            ended = [jl.get(store, i) for i in sorted(watched)]
            bad = [j for j in ended if j["state"] == "failed"]
            print_table([_row(j) for j in ended], title=t("jobs waited for"))
            if bad:
                err_console.print(f"[red]{t('jobs_failed', n=len(bad))}[/] " + ", ".join(str(j["id"]) for j in bad),
                                  highlight=False)
                raise typer.Exit(1)
            return
        print_table([_row(j) for j in jl.list_jobs(store, states=(state,) if state else None, limit=limit)],
                    title=t("jobs"))
    finally:
        store.dispose()
