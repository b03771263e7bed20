"""A province in one command, on PostGIS with two `gridpatrol worker` processes: `draw-grids --all-areas
--jobs` queues one job per district, the workers draw them (each area's plan written on top of the newest),
`gridpatrol jobs --wait` exits 0, every job ran once and the newest plan holds every district, valid; then
`plan-routes --all --jobs` routes every grid, one job per district. Data: a generated province of four
districts (layers/synth_province.py)."""
from __future__ import annotations

import os
import subprocess

import pytest
from gridpatrol.layers import grids as gl
from gridpatrol.layers import jobs as jl
from gridpatrol.layers.store import open_store
from gridpatrol.layers.synth_province import load_province
from sqlalchemy import text

from tests.api.live_server import stop_process
from tests.e2e.test_job_workers import GRIDPATROL

ENV = {**os.environ, "COLUMNS": "200", "GRIDPATROL_LANG": "en"}  # the job ids are read from "queued …: 1, 2"


def gridpatrol(url: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([GRIDPATROL, "--db", url, *args], check=False, capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def worker(store) -> subprocess.Popen:  # noqa: ANN001
    """A `gridpatrol worker` process. Lost after 60 s of silence: on this loaded machine a busy worker
    may miss a beat of a few seconds, and no worker is killed here (kill -9: test_job_workers.py)."""
    return subprocess.Popen([GRIDPATROL, "--db", store.url, "worker", "--heartbeat", "1", "--stalled-after", "60"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)


def queued_ids(out: str) -> list[int]:
    line = next(x for x in out.splitlines() if x.startswith("queued "))
    return [int(x) for x in line.split(":", 1)[1].split(",")]


@pytest.fixture
def store(pg_url):  # noqa: ANN001, ANN201
    s = open_store(pg_url)
    yield s
    s.dispose()


def test_province_drawn_and_routed_by_two_workers(store) -> None:  # noqa: ANN001
    codes = load_province(store, 4, 200)
    refused = gridpatrol(store.url, "draw-grids", "--all-areas", "--seed", "1")
    assert refused.returncode != 0 and "--jobs" in refused.stderr + refused.stdout
    assert jl.list_jobs(store) == []  # refused before anything was queued

    queued = gridpatrol(store.url, "draw-grids", "--all-areas", "--jobs", "--seed", "1")
    assert queued.returncode == 0, queued.stdout + queued.stderr
    ids = queued_ids(queued.stdout)
    assert [jl.get(store, i)["params"]["area"] for i in ids] == codes
    workers = [worker(store), worker(store)]
    try:
        waited = gridpatrol(store.url, "jobs", "--wait", "--poll", "0.5")
        assert waited.returncode == 0, waited.stdout + waited.stderr
        done = [jl.get(store, i) for i in ids]
        assert [(j["state"], j["attempts"]) for j in done] == [("done", 1)] * 4, done
        with store.engine.connect() as c:
            started = dict(c.execute(text("SELECT job_id, count(*) FROM procrastinate_events "
                                          "WHERE type = 'started' GROUP BY job_id")).all())
        assert [started.get(j["queue_id"]) for j in done] == [1] * 4  # each handed out once
        newest = gl.read_grids(store)
        assert sorted(set(newest["parent_code"])) == codes  # whatever order the workers finished in
        for j in done:
            mine = newest[newest["parent_code"] == j["result"]["area"]]
            theirs = gl.read_grids(store, j["result"]["plan_id"])
            theirs = theirs[theirs["parent_code"] == j["result"]["area"]]
            assert list(mine["code"]) == list(theirs["code"])
            assert list(mine["households"]) == list(theirs["households"])
        res, _pid = gl.check_grids(store)
        assert res.summary["valid"] and res.summary["errors"] == 0, res.summary
        assert res.summary["gap_m2"] == 0 and res.summary["overlap_m2"] == 0

        routes = gridpatrol(store.url, "plan-routes", "--all", "--jobs", "--time-limit", "2")
        assert routes.returncode == 0, routes.stdout + routes.stderr
        rids = queued_ids(routes.stdout)
        assert len(rids) == 4
        waited = gridpatrol(store.url, "jobs", "--wait", "--poll", "0.5")
        assert waited.returncode == 0, waited.stdout + waited.stderr
    finally:
        for w in workers:
            stop_process(w)
    failed = {k for i in rids for k in jl.get(store, i)["result"]["failed"]}
    with store.engine.connect() as c:
        routed = {r[0] for r in c.execute(text("SELECT DISTINCT grid_code FROM routes"))}
    assert routed == set(newest["code"]) - failed and len(failed) <= 1
