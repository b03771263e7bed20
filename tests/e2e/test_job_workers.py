"""`gridpatrol worker` processes on one PostGIS queue: a worker killed with kill -9 mid-job leaves no
partial plan or routes and its job ends done after a retry (never stuck running); two workers run
every job exactly once, jobs on one plan one after the other; `gridpatrol jobs --wait` exits 1 when
a job failed. Real data: Chengdu's 锦江区."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from gridpatrol.layers import job_queue
from gridpatrol.layers import jobs as jl
from gridpatrol.layers.store import open_store
from sqlalchemy import text

from tests.api.live_server import stop_process
from tests.cached_stores import jinjiang_inputs, jinjiang_with_users
from tests.conftest import poll_until
from tests.store_cache import cached_module_store_url

GRIDPATROL = str(Path(sys.executable).with_name("gridpatrol"))


@pytest.fixture(scope="module", params=["postgis"])
def store(request, tmp_path_factory):  # noqa: ANN001, ANN201
    with cached_module_store_url(request, tmp_path_factory, "jobs-jinjiang", jinjiang_with_users,
                                 jinjiang_inputs()) as url:
        s = open_store(url)
        yield s
        s.dispose()


@pytest.fixture(autouse=True)
def no_job_left_over(store):  # noqa: ANN001, ANN201
    """Every test ends with no queued or running job. A job a failed test leaves behind (a dead
    worker's, still "running") would be the first one the next test's worker takes, and `jobs --wait`
    would wait for it: found by a random-order run (seed 11), where one failure failed the tests after it."""
    yield
    for j in jl.list_jobs(store, states=("queued", "running")):
        job_queue.cancel(store, j["id"])
        jl.requeue_or_fail(store, j["id"], "left over by a test")  # a dead worker's running job: cancelled


def worker(store, *extra: str, stalled_after: float = 8) -> subprocess.Popen:  # noqa: ANN001
    """A `gridpatrol worker` process with a fast heartbeat, taken for dead after ``stalled_after`` s of
    silence: short enough that a killed worker's job is retried soon, long enough that a live worker on a
    loaded machine (its heartbeat thread starved by a CPU-bound job) is not taken for dead and its job run
    twice."""
    return subprocess.Popen([GRIDPATROL, "--db", store.url, "worker", "--heartbeat", "1", "--stalled-after",
                             str(stalled_after), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})


def rows(store, sql: str) -> list:  # noqa: ANN001
    with store.engine.connect() as c:
        return c.execute(text(sql)).all()


def plans_whole(store) -> dict[int, tuple[int, int]]:  # noqa: ANN001
    """Every plan with its (grids, blocks); asserts no grid or block belongs to a plan that does not exist."""
    orphans = rows(store, "SELECT count(*) FROM grids WHERE plan_id NOT IN (SELECT id FROM grid_plans)")[0][0]
    orphans += rows(store, "SELECT count(*) FROM blocks WHERE plan_id NOT IN (SELECT id FROM grid_plans)")[0][0]
    assert orphans == 0
    return {pid: (g, b) for pid, g, b in rows(store, (
        "SELECT p.id, (SELECT count(*) FROM grids g WHERE g.plan_id = p.id), "
        "(SELECT count(*) FROM blocks b WHERE b.plan_id = p.id) FROM grid_plans p"))}


def kill_mid_job(store, job_id: int, mid) -> None:  # noqa: ANN001
    """Start a worker, kill -9 it once ``mid(job)`` holds while the job runs."""
    w = worker(store)
    try:
        assert poll_until(lambda: (j := jl.get(store, job_id))["state"] in jl.ENDED or
                          (j["state"] == "running" and mid(j)), 300, 0.02), "the job never ran"
        assert jl.get(store, job_id)["state"] == "running", "the job ended before the kill"
    finally:
        w.send_signal(signal.SIGKILL)
        w.wait()


def recover(store, job_id: int) -> dict:  # noqa: ANN001
    """Start a fresh worker; wait until the job has ended; the job's row."""
    w = worker(store)
    try:
        assert poll_until(lambda: jl.get(store, job_id)["state"] in jl.ENDED, 300, 0.2), \
            f"job still {jl.get(store, job_id)['state']} after a live worker's recovery"
    finally:
        stop_process(w)
    return jl.get(store, job_id)


def test_kill_9_during_draw_grids(store) -> None:  # noqa: ANN001
    before = plans_whole(store)
    jid = job_queue.submit(store, "draw-grids", {"seed": 2}, created_by="pia")
    kill_mid_job(store, jid, lambda j: "partitioning" in (j["step"] or ""))
    assert plans_whole(store) == before  # nothing of the drawing was written
    assert jl.get(store, jid)["state"] == "running"  # as the dead worker left it, until someone notices
    job = recover(store, jid)
    assert job["state"] == "done" and job["attempts"] == 2, job
    after = plans_whole(store)
    new = set(after) - set(before)
    assert new == {job["result"]["plan_id"]}  # one plan for the job, not two
    grids, blocks = after[job["result"]["plan_id"]]
    assert grids >= 5 and blocks >= grids


def test_kill_9_during_plan_routes_all(store) -> None:  # noqa: ANN001
    if not rows(store, "SELECT id FROM grid_plans"):
        job_queue.submit(store, "draw-grids", {"seed": 2}, created_by="pia")
        job_queue.run_pg_worker(store, wait=False, heartbeat_s=0.5)
    before = rows(store, "SELECT id, grid_code FROM routes ORDER BY id")
    jid = job_queue.submit(store, "plan-routes", {"time_limit_s": 2}, created_by="pia")
    kill_mid_job(store, jid, lambda j: j["steps_done"] >= 2)
    assert rows(store, "SELECT id, grid_code FROM routes ORDER BY id") == before  # no partial set of routes
    job = recover(store, jid)
    assert job["state"] == "done" and job["attempts"] == 2, job
    plan = job["params"]["plan_id"]
    codes = {r[0] for r in rows(store, f"SELECT code FROM grids WHERE plan_id = {plan}")}
    routed = {r[0] for r in rows(store, "SELECT DISTINCT grid_code FROM routes")}
    assert routed == codes - set(job["result"]["failed"]) and job["result"]["planned"] == len(routed)


def test_two_workers_every_job_exactly_once(store) -> None:  # noqa: ANN001
    before = plans_whole(store)
    ids = [job_queue.submit(store, "draw-grids", {"seed": s}, created_by="pia") for s in (11, 12, 13, 14)]
    workers = [worker(store, stalled_after=120), worker(store, stalled_after=120)]  # none is killed here
    try:
        waited = subprocess.run([GRIDPATROL, "--db", store.url, "jobs", "--wait", "--poll", "0.5"],
                                check=False, capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "200"})
    finally:
        for w in workers:
            stop_process(w)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    done = [jl.get(store, i) for i in ids]
    assert [(j["state"], j["attempts"]) for j in done] == [("done", 1)] * 4
    started = dict(rows(store, "SELECT job_id, count(*) FROM procrastinate_events WHERE type = 'started' GROUP BY job_id"))
    assert [started.get(j["queue_id"]) for j in done] == [1, 1, 1, 1]  # the queue handed each out once
    new = set(plans_whole(store)) - set(before)
    assert new == {j["result"]["plan_id"] for j in done} and len(new) == 4
    # One plan, one lock: the four drawings ran one after the other, never two at once.
    spans = sorted((j["started_at"], j["finished_at"]) for j in done)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans


def test_jobs_wait_exits_1_when_a_job_failed(store) -> None:  # noqa: ANN001
    jid = job_queue.submit(store, "rebalance", {"codes": ["no-such-a", "no-such-b"]}, created_by="pia")
    w = worker(store)
    try:
        waited = subprocess.run([GRIDPATROL, "--db", store.url, "--lang", "en", "jobs", "--wait", "--poll", "0.5"],
                                check=False, capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})
    finally:
        stop_process(w)
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert f"job(s) failed: {jid}" in waited.stderr
    assert jl.get(store, jid)["state"] == "failed" and "no-such" in jl.get(store, jid)["error"]
