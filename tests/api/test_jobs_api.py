"""Jobs through the API on both stores: queued, progress, result; refusals before queueing; cancellation;
who sees which job; the GeoPackage server's own worker thread. Real data: Chengdu's 锦江区."""
from __future__ import annotations

import threading

import pytest
from gridpatrol.layers import job_queue
from gridpatrol.layers import jobs as jl
from gridpatrol.layers.store import open_store
from sqlalchemy import text

from tests.api.login import bearer
from tests.cached_stores import (
    JOB_PASSWORD,
    JOB_USERS,
)
from tests.conftest import poll_until

USERS, PASSWORD = JOB_USERS, JOB_PASSWORD

SERVER_WORKER = False  # tests/api/conftest.py: no worker thread in the server; tests drain the queue themselves


@pytest.fixture(scope="module")
def loaded_store_url(jinjiang_store_url):  # noqa: ANN001, ANN201
    """Jinjiang with the job users, instead of the API seed: tests/api/conftest.py's ``app`` serves it."""
    return jinjiang_store_url


@pytest.fixture(scope="module")
def url(loaded_store_url):  # noqa: ANN001, ANN201
    return loaded_store_url


@pytest.fixture(scope="module")
def auth(client) -> dict[str, dict[str, str]]:  # noqa: ANN001
    out = {}
    for name in USERS:
        out[name] = bearer(client, name, PASSWORD)
    return out


def drain(store) -> None:  # noqa: ANN001
    """Run the store's worker (what `gridpatrol worker --until-empty` runs) until no job is queued."""
    job_queue.run_until_empty(store, heartbeat_s=0.5)


def _counts(store) -> tuple[int, int]:  # noqa: ANN001
    """(jobs rows, queue entries: procrastinate's on PostGIS, else the jobs rows again)."""
    with store.engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM jobs")).scalar()
        q = n if store.is_gpkg else c.execute(text("SELECT count(*) FROM procrastinate_jobs")).scalar()
    return int(n), int(q)


def _plans(client, h) -> list[dict]:  # noqa: ANN001
    r = client.get("/grids/plans", headers=h)
    assert r.status_code == 200, r.text
    return r.json()


def test_draw_job_queued_progress_result(client, auth, app) -> None:  # noqa: ANN001
    store = app.state.store
    before = {p["plan"] for p in _plans(client, auth["pia"])}
    r = client.post("/jobs", headers=auth["pia"], json={"kind": "draw-grids", "params": {"seed": 3, "name": "夜间重划"}})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] == "queued" and job["progress"]["done"] == 0 and job["result"] is None
    assert job["created_at"].endswith("+08:00")  # the county's zone, not bare UTC
    seen: list[dict] = []
    worker = threading.Thread(target=drain, args=(store,))
    worker.start()
    while worker.is_alive():  # progress as a page would poll it
        seen.append(client.get(f"/jobs/{job['id']}", headers=auth["pia"]).json())
        worker.join(0.2)
    done = client.get(f"/jobs/{job['id']}", headers=auth["pia"]).json()
    assert done["state"] == "done", done
    assert done["attempts"] == 1 and done["error"] is None
    prog = [(s["progress"]["done"], s["state"]) for s in seen]
    assert [d for d, _ in prog] == sorted(d for d, _ in prog)  # progress never goes back
    assert done["progress"]["done"] == done["progress"]["total"] >= 5
    assert done["progress"]["step"] == "writing the plan"
    new = [p for p in _plans(client, auth["pia"]) if p["plan"] not in before]
    assert [p["plan"] for p in new] == [done["result"]["plan_id"]]  # exactly one plan, the one reported
    with store.engine.connect() as c:
        row = c.execute(text("SELECT name, created_by FROM grid_plans WHERE id = :i"), {"i": new[0]["plan"]}).one()
    assert tuple(row) == ("夜间重划", "pia")
    grids = client.get("/grids", params={"plan_id": new[0]["plan"]}, headers=auth["pia"]).json()
    assert len(grids["features"]) == new[0]["grids"] >= 5


@pytest.mark.parametrize("body, status", [
    ({"kind": "draw-grids", "params": {"min_households": 600, "max_households": 500}}, 422),  # band inverted
    ({"kind": "draw-grids", "params": {"target_households": -1}}, 422),
    ({"kind": "draw-grids", "params": {"seed": 1, "sede": 2}}, 422),  # a misspelt parameter
    ({"kind": "draw-grids", "params": {"code_format": "{nonsense}"}}, 422),
    ({"kind": "plan-routes", "params": {"mode": "fly"}}, 422),
    ({"kind": "plan-routes", "params": {"start": [200, 95]}}, 422),
    ({"kind": "rebalance", "params": {"codes": []}}, 422),
    ({"kind": "drop-tables", "params": {}}, 422),
])
def test_bad_parameter_refused_before_queueing(client, auth, app, body, status) -> None:  # noqa: ANN001
    before = _counts(app.state.store)
    r = client.post("/jobs", headers=auth["pia"], json=body)
    assert r.status_code == status, r.text
    assert r.json()["detail"]
    assert _counts(app.state.store) == before  # nothing queued, no row


def test_roles(client, auth, app) -> None:  # noqa: ANN001
    store = app.state.store
    before = _counts(store)
    assert client.post("/jobs", headers=auth["vic"], json={"kind": "draw-grids"}).status_code == 403
    assert client.post("/jobs", headers=auth["dan"], json={"kind": "plan-routes"}).status_code == 403
    assert client.post("/jobs", json={"kind": "draw-grids"}).status_code == 401
    assert _counts(store) == before
    r = client.post("/jobs", headers=auth["pia"], json={"kind": "draw-grids", "params": {"seed": 4}})
    jid = r.json()["id"]
    assert client.get(f"/jobs/{jid}", headers=auth["pete"]).status_code == 404  # another planner's job
    assert client.delete(f"/jobs/{jid}", headers=auth["pete"]).status_code == 404
    assert client.get(f"/jobs/{jid}", headers=auth["ada"]).status_code == 200  # admins see all
    assert jid not in {j["id"] for j in client.get("/jobs", headers=auth["pete"]).json()}
    assert jid in {j["id"] for j in client.get("/jobs", headers=auth["pia"]).json()}
    assert jid in {j["id"] for j in client.get("/jobs", headers=auth["ada"]).json()}
    assert client.delete(f"/jobs/{jid}", headers=auth["ada"]).json()["state"] == "cancelled"
    assert jl.get(store, jid)["state"] == "cancelled"


def test_cancel_queued_job_never_runs(client, auth, app) -> None:  # noqa: ANN001
    store = app.state.store
    plans = len(_plans(client, auth["pia"]))
    jid = client.post("/jobs", headers=auth["pia"], json={"kind": "draw-grids", "params": {"seed": 5}}).json()["id"]
    r = client.delete(f"/jobs/{jid}", headers=auth["pia"])
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    drain(store)
    job = client.get(f"/jobs/{jid}", headers=auth["pia"]).json()
    assert job["state"] == "cancelled" and job["attempts"] == 0
    assert len(_plans(client, auth["pia"])) == plans


def test_cancel_running_job_writes_nothing(client, auth, app) -> None:  # noqa: ANN001
    store = app.state.store
    plans = len(_plans(client, auth["pia"]))
    jid = client.post("/jobs", headers=auth["pia"], json={"kind": "draw-grids", "params": {"seed": 6}}).json()["id"]
    worker = threading.Thread(target=drain, args=(store,))
    worker.start()
    assert poll_until(lambda: jl.get(store, jid)["state"] == "running", 120, 0.05)
    assert client.delete(f"/jobs/{jid}", headers=auth["pia"]).json()["cancel_requested"]
    worker.join()
    job = client.get(f"/jobs/{jid}", headers=auth["pia"]).json()
    assert job["state"] == "cancelled", job
    assert len(_plans(client, auth["pia"])) == plans  # the drawing's work was not written


def test_plan_routes_all_job(client, auth, app) -> None:  # noqa: ANN001
    """plan-routes without grids: every grid of the (pinned) plan, one transaction."""
    store = app.state.store
    plan = _plans(client, auth["pia"])[-1]["plan"]
    r = client.post("/jobs", headers=auth["pia"], json={"kind": "plan-routes", "params": {"time_limit_s": 2}})
    assert r.status_code == 202, r.text
    assert r.json()["params"]["plan_id"] == plan  # pinned when queued
    drain(store)
    job = client.get(f"/jobs/{r.json()['id']}", headers=auth["pia"]).json()
    assert job["state"] == "done", job
    grids = client.get("/grids", params={"plan_id": plan}, headers=auth["pia"]).json()["features"]
    assert job["progress"]["total"] == len(grids) + 1
    stored = client.get("/routes", headers=auth["pia"]).json()
    assert job["result"]["planned"] + len(job["result"]["failed"]) == len(grids)
    assert {s["grid_code"] for s in stored} >= {g["properties"]["code"] for g in grids} - set(job["result"]["failed"])


def test_server_worker_thread_runs_jobs(app, auth, url) -> None:  # noqa: ANN001
    """On GeoPackage the server runs queued jobs itself (one thread); on PostGIS it leaves them to workers."""
    from fastapi.testclient import TestClient

    store = app.state.store
    with TestClient(app) as live:  # with its lifespan: the worker thread runs
        jid = live.post("/jobs", headers=auth["pia"], json={"kind": "rebalance",
                        "params": {"codes": ["x-no-such-grid", "y-no-such-grid"]}}).json()["id"]
        if store.is_gpkg:
            assert poll_until(lambda: jl.get(store, jid)["state"] in jl.ENDED, 120)
            job = live.get(f"/jobs/{jid}", headers=auth["pia"]).json()
            assert job["state"] == "failed" and "x-no-such-grid" in job["error"]  # a refusal, with its reason
        else:
            assert jl.get(store, jid)["state"] == "queued"
    if not store.is_gpkg:
        drain(store)
        assert jl.get(store, jid)["state"] == "failed"


def test_gpkg_lost_job_is_retried_then_failed(url) -> None:  # noqa: ANN001
    """A job whose worker vanished (no heartbeat for the lease) is queued again, and failed with the
    reason once its attempts are used up; never left running."""
    if not url.startswith("gpkg"):
        pytest.skip("PostGIS: procrastinate's stalled-job recovery, tests/e2e/test_job_workers.py")
    store = open_store(url)
    try:
        jid = job_queue.submit(store, "rebalance", {"codes": ["x"]}, created_by="pia")
        old = "2000-01-01T00:00:00.000Z"
        for attempts, expect in ((1, "queued"), (jl.MAX_ATTEMPTS, "failed")):
            with store.begin() as c:
                c.execute(text("UPDATE jobs SET state='running', attempts=:a, heartbeat_at=:t WHERE id=:i"),
                          {"a": attempts, "t": old, "i": jid})
            job_queue.LocalWorker(store, lease_s=30).recover()
            job = jl.get(store, jid)
            assert job["state"] == expect and "worker lost" in job["error"], job
        assert "gave up after" in jl.get(store, jid)["error"]
    finally:
        store.dispose()


CRASH_AFTER_COMMIT = """
import os, sys
from sqlalchemy import event
from gridpatrol.layers import jobs
from gridpatrol.layers.store import open_store

store = open_store(sys.argv[1])
plans = store.engine.connect().exec_driver_sql("SELECT count(*) FROM grid_plans").scalar()

def die_once_written(dbapi_conn, _record):
    # A connection goes back to the pool after its transaction ended: once the plan is committed,
    # the process dies at once, before the worker's own bookkeeping after the work.
    if dbapi_conn.execute("SELECT count(*) FROM grid_plans").fetchone()[0] > plans:
        os._exit(9)

event.listen(store.engine.pool, "checkin", die_once_written)
jobs.run_job(store, int(sys.argv[2]))
"""


def test_worker_dying_right_after_the_commit_leaves_one_plan_and_a_done_job(url, tmp_path) -> None:  # noqa: ANN001
    """The plan and the job's end commit together: a worker that dies just after the commit leaves
    a done job with its plan id, and the recovery that follows draws no second plan."""
    import os
    import subprocess
    import sys

    if not url.startswith("gpkg"):
        pytest.skip("the same code path on PostGIS; kill -9 there: tests/e2e/test_job_workers.py")
    store = open_store(url)
    try:
        before = len(jl.list_jobs(store))
        with store.engine.connect() as c:
            plans = c.execute(text("SELECT count(*) FROM grid_plans")).scalar()
        jid = job_queue.submit(store, "draw-grids", {"seed": 8}, created_by="pia")
        script = tmp_path / "crash.py"
        script.write_text(CRASH_AFTER_COMMIT, encoding="utf-8")
        p = subprocess.run([sys.executable, str(script), url, str(jid)], check=False, env=os.environ.copy(),
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 9, p.stderr[-2000:]
        with store.engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM grid_plans")).scalar() == plans + 1
        with store.begin() as c:  # its lease ran out long ago
            c.execute(text("UPDATE jobs SET heartbeat_at = '2000-01-01T00:00:00.000Z' WHERE id = :i"), {"i": jid})
        w = job_queue.LocalWorker(store, lease_s=30)
        while w.run_once() is not None:
            pass
        job = jl.get(store, jid)
        assert job["state"] == "done" and job["attempts"] == 1, job
        with store.engine.connect() as c:
            newest = c.execute(text("SELECT max(id), count(*) FROM grid_plans")).one()
        assert tuple(newest) == (job["result"]["plan_id"], plans + 1)  # one plan for the job
        assert len(jl.list_jobs(store)) == before + 1
    finally:
        store.dispose()


def test_per_area_queues_one_job_per_planning_area(client, auth, app) -> None:  # noqa: ANN001
    from gridpatrol.layers.grids import area_codes

    store = app.state.store
    before = _counts(store)
    assert client.post("/jobs/per-area", headers=auth["vic"], json={"kind": "draw-grids"}).status_code == 403
    bad = [{"kind": "rebalance", "params": {"codes": ["x"]}}, {"kind": "draw-grids", "params": {"area": "510104"}},
           {"kind": "draw-grids", "params": {"seed": -1}}, {"kind": "plan-routes", "params": {"mode": "fly"}}]
    for body in bad:
        r = client.post("/jobs/per-area", headers=auth["pia"], json=body)
        assert r.status_code == 422 and r.json()["detail"], (body, r.text)
    assert _counts(store) == before  # nothing queued
    r = client.post("/jobs/per-area", headers=auth["pia"], json={"kind": "draw-grids", "params": {"seed": 9}})
    assert r.status_code == 202, r.text
    jobs = r.json()
    assert [(j["params"]["area"], j["state"], j["created_by"]) for j in jobs] == [
        (c, "queued", "pia") for c in area_codes(store)]
    for j in jobs:  # cancelled: the drawing itself is tested in tests/layers/test_area_jobs.py
        assert client.delete(f"/jobs/{j['id']}", headers=auth["pia"]).json()["state"] == "cancelled"
