"""A province as jobs, one per planning area, on both stores: draw-grids and plan-routes queued per area
(each job its own area's lock), every area drawn into one valid newest plan, an area redrawn alone leaves
the others as they were, bad requests refused before anything is queued. Data: a generated province of
three districts (layers/synth_province.py)."""
from __future__ import annotations

import pytest
import shapely
from gridpatrol.gis.errors import InputError
from gridpatrol.layers import grids as gl
from gridpatrol.layers import job_queue
from gridpatrol.layers import jobs as jl
from gridpatrol.layers.synth_province import load_province
from sqlalchemy import text


def drain(store) -> None:  # noqa: ANN001
    """Run the store's worker (what `gridpatrol worker --until-empty` runs) until no job is queued."""
    job_queue.run_until_empty(store, heartbeat_s=0.5)


def _area_grids(store, plan_id: int, area: str) -> dict[str, tuple]:  # noqa: ANN001
    g = gl.read_grids(store, plan_id)
    g = g[g["parent_code"] == area]
    return {c: (h, shapely.normalize(geom).wkb) for c, h, geom in zip(g["code"], g["households"], g.geometry)}


@pytest.fixture
def province(store):  # noqa: ANN001, ANN201
    return store, load_province(store, 3, 150)


def test_draw_one_job_per_area_ends_in_one_valid_plan(province) -> None:  # noqa: ANN001
    store, codes = province
    ids = job_queue.submit_per_area(store, "draw-grids", {"seed": 1, "name": "全省重划"}, created_by="pia")
    queued = [jl.get(store, i) for i in ids]
    assert [(j["params"]["area"], j["lock_key"], j["state"]) for j in queued] == [
        (c, f"area:{c}", "queued") for c in codes]  # one lock per area: different areas may run at once
    drain(store)
    done = [jl.get(store, i) for i in ids]
    assert [(j["state"], j["result"]["area"]) for j in done] == [("done", c) for c in codes], done
    plans = [j["result"]["plan_id"] for j in done]
    assert len(set(plans)) == 3 and gl.latest_plan_id(store) == max(plans)
    newest = gl.read_grids(store)
    assert set(newest["parent_code"]) == set(codes)  # every area in the newest plan
    for j in done:  # each area as its own job drew it
        assert _area_grids(store, None, j["result"]["area"]) == _area_grids(store, j["result"]["plan_id"],
                                                                            j["result"]["area"])
    res, checked = gl.check_grids(store)
    assert res.summary["valid"] and res.summary["errors"] == 0 and checked == max(plans)
    assert res.summary["grids"] == len(newest)
    assert res.summary["gap_m2"] == 0 and res.summary["overlap_m2"] == 0
    blocks = gl.read_blocks(store)
    assert blocks["block_id"].is_unique and set(blocks["area_code"]) == set(codes)
    assert set(blocks["grid_code"]) == set(newest["code"])


def test_area_redrawn_alone_leaves_the_others(province) -> None:  # noqa: ANN001
    store, codes = province
    job_queue.submit_per_area(store, "draw-grids", {"seed": 1}, created_by="pia")
    drain(store)
    before = gl.latest_plan_id(store)
    jid = job_queue.submit(store, "draw-grids", {"seed": 7, "area": codes[1]}, created_by="pia")
    drain(store)
    job = jl.get(store, jid)
    assert job["state"] == "done" and job["result"]["plan_id"] == gl.latest_plan_id(store) != before
    row = gl.plan_row(store)
    assert row["parent_plan_id"] == before and codes[1] in row["note"]
    for c in (codes[0], codes[2]):
        assert _area_grids(store, None, c) == _area_grids(store, before, c)
    assert _area_grids(store, None, codes[1]) != _area_grids(store, before, codes[1])  # another seed
    assert gl.check_grids(store)[0].summary["valid"]
    assert len(gl.read_blocks(store)) == len(gl.read_blocks(store, before))


def test_routes_one_job_per_area(province) -> None:  # noqa: ANN001
    store, codes = province
    job_queue.submit_per_area(store, "draw-grids", {"seed": 1}, created_by="pia")
    drain(store)
    plan = gl.latest_plan_id(store)
    ids = job_queue.submit_per_area(store, "plan-routes", {"time_limit_s": 2}, created_by="pia")
    queued = [jl.get(store, i) for i in ids]
    assert [(j["params"]["area"], j["params"]["plan_id"], j["lock_key"]) for j in queued] == [
        (c, plan, f"plan:{plan}:area:{c}") for c in codes]
    drain(store)
    grids = gl.read_grids(store, plan)
    for j in (jl.get(store, i) for i in ids):
        mine = set(grids.loc[grids["parent_code"] == j["params"]["area"], "code"])
        assert j["state"] == "done", j
        assert j["result"]["planned"] + len(j["result"]["failed"]) == len(mine) == j["steps_total"] - 1
    with store.engine.connect() as c:
        routed = {r[0] for r in c.execute(text("SELECT DISTINCT grid_code FROM routes"))}
    failed = {k for i in ids for k in jl.get(store, i)["result"]["failed"]}
    assert routed == set(grids["code"]) - failed and len(routed) >= len(grids) - 1


def test_bad_requests_refused_before_queueing(province) -> None:  # noqa: ANN001
    store, codes = province
    cases = [
        lambda: job_queue.submit(store, "draw-grids", {"area": "999999"}, created_by="pia"),
        lambda: job_queue.submit_per_area(store, "draw-grids", {"area": codes[0]}, created_by="pia"),
        lambda: job_queue.submit_per_area(store, "draw-grids", {"seed": -1}, created_by="pia"),
        lambda: job_queue.submit_per_area(store, "rebalance", {"codes": ["a"]}, created_by="pia"),
    ]
    for case in cases:
        with pytest.raises(InputError) as err:
            case()
        assert str(err.value)
    assert "999999" in str(pytest.raises(InputError, cases[0]).value)
    assert jl.list_jobs(store) == []
    job_queue.submit_per_area(store, "draw-grids", {"seed": 1}, created_by="pia")
    drain(store)
    with pytest.raises(InputError, match="no grids in area"):
        job_queue.submit(store, "plan-routes", {"area": "999999"}, created_by="pia")
    with pytest.raises(InputError, match="grids or area"):
        job_queue.submit(store, "plan-routes", {"area": codes[0], "grids": ["x"]}, created_by="pia")
    assert len(jl.list_jobs(store)) == 3


def test_an_attempt_taken_over_writes_nothing(province) -> None:  # noqa: ANN001
    """A worker whose lease ran out while it still worked (starved of CPU, not dead) loses its job to a
    later attempt: only that attempt's plan is written, never two plans for one job."""
    import threading

    from tests.conftest import poll_until

    store, codes = province
    jid = job_queue.submit(store, "draw-grids", {"seed": 1, "area": codes[0]}, created_by="pia")
    first = threading.Thread(target=jl.run_job, args=(store, jid), kwargs={"heartbeat_s": 0.2})
    first.start()
    try:
        assert poll_until(lambda: jl.get(store, jid)["state"] == "running", 60, 0.005)
        # the recovery of a lost worker queues the job again; a second worker takes it and ends it
        assert jl.requeue_or_fail(store, jid, "worker lost (test)") == "queued"
        assert jl.run_job(store, jid) == "done"
    finally:
        first.join()
    job = jl.get(store, jid)
    assert job["state"] == "done" and job["attempts"] == 2, job
    assert list(gl.list_plans(store)["plan"]) == [job["result"]["plan_id"]]  # one plan for the job
