"""Redrawing one area of a rural plan draws it rurally (#15): whole villages under the plan's area and
travel limits, locked grids kept, grids named after their villages, the other area untouched. Both
stores, on the generated county (tests/synth_rural.py; no rural area is in /work/shared/data), seed 1.
The redraw goes through the draw-grids job with ``area`` (what `gridpatrol jobs submit draw-grids` and
POST /jobs queue) and through ``draw_area`` itself."""
from __future__ import annotations

import json

import geopandas as gpd
import pytest
from gridpatrol.layers import jobs
from gridpatrol.layers.grids import (
    check_grids,
    draw_area,
    draw_grids,
    latest_plan_id,
    plan_row,
    read_grids,
    set_locked,
)
from gridpatrol.layers.plan_params import PlanParams

from tests.synth_rural import load_rural_county

WEST, EAST = "519990001", "519990002"
LIMITS = {"max_area_m2": 4_000_000.0, "max_travel_min": 10.0}


@pytest.fixture(scope="module")
def county(module_store):  # noqa: ANN001, ANN201
    load_rural_county(module_store, seed=1, village_areas=True)
    return module_store


def _area_rows(store, pid: int, area: str) -> list[tuple]:  # noqa: ANN001
    """Every stored column of the grids of ``area`` in plan ``pid`` (geometry as WKB), by code."""
    g = read_grids(store, pid)
    g = g[g["parent_code"].astype(str) == area].sort_values("code")
    cols = [c for c in g.columns if c not in ("id", "plan_id", "geometry")]
    return [tuple(None if v is None or (isinstance(v, float) and v != v) else v for v in r) + (w,)
            for r, w in zip(g[cols].itertuples(index=False), g.geometry.to_wkb())]


def _assert_rural_redraw(store, base: int, pid: int) -> None:  # noqa: ANN001
    params = json.loads(plan_row(store, pid)["params_json"])
    assert params["mode"] == "rural", params
    assert params["max_area_m2"] == LIMITS["max_area_m2"] and params["max_travel_min"] == LIMITS["max_travel_min"]
    res, _ = check_grids(store, pid)
    kinds = res.problems["kind"].value_counts().to_dict() if len(res.problems) else {}
    # no village split; every grid within the limits or exempt with its reason
    assert res.summary["rural"]["settlements_split"] == 0, kinds
    assert not {"settlement_split", "over_area_limit", "over_travel_limit"} & set(kinds), kinds
    assert res.valid, res.problems[res.problems["severity"] == "error"][["kind", "detail"]].to_string()
    # the other township: byte for byte as in the plan redrawn on
    assert _area_rows(store, pid, EAST) == _area_rows(store, base, EAST)
    # the redrawn township: grids of whole villages named after them, as the rural draw names them
    west = read_grids(store, pid)
    west = west[west["parent_code"].astype(str) == WEST]
    assert len(west) > 1
    assert any("石桥镇" in str(n) for n in west["name"]), list(west["name"])
    assert not any(str(n).startswith(WEST) for n in west["name"]), list(west["name"])
    assert json.loads(plan_row(store, pid)["metrics_json"])["rural"][WEST]["settlements"] > 1


def test_job_redraws_an_area_of_a_rural_plan_rurally(county) -> None:  # noqa: ANN001
    """The draw-grids job for the west township, queued without a mode on a rural plan (4 km², 10 min),
    redraws it rurally with those limits (the urban window cuts the market town 石桥镇 into grids)."""
    store = county
    base = draw_grids(store, PlanParams(mode="rural", allow_sparse=True, **LIMITS))
    kind = jobs.KINDS["draw-grids"]
    p, lock = kind.pin(store, jobs.parse_params("draw-grids", {"area": WEST, "seed": 3}))
    assert lock == f"area:{WEST}" and p.mode == "rural" and p.max_travel_min == 10 and p.seed == 3
    stored = kind.model.model_validate(json.loads(p.model_dump_json()))  # as the worker reads the job
    out = kind.run(store, stored, lambda _m: None, "cli:test")
    assert out["area"] == WEST
    _assert_rural_redraw(store, base, out["plan_id"])


def test_redraw_keeps_locked_grids_and_the_chosen_mode(county) -> None:  # noqa: ANN001
    """``draw_area`` on a rural plan keeps a locked grid of the area (code, shape, households, name, lock); asked
    for urban explicitly, it draws the household window as before."""
    store = county
    draw_grids(store, PlanParams(mode="rural", allow_sparse=True, **LIMITS))
    g = read_grids(store)
    keep = next(c for c, n in zip(g["code"], g["name"]) if n == "河口村" and str(c).startswith(WEST))
    set_locked(store, [keep], True)
    base = latest_plan_id(store)
    before = read_grids(store, base).set_index("code")
    pid = draw_area(store, WEST, PlanParams(seed=5))
    _assert_rural_redraw(store, base, pid)
    after = read_grids(store, pid).set_index("code")
    assert bool(after.loc[keep, "locked"]) and after.loc[keep, "name"] == "河口村"
    shapes = gpd.GeoSeries([after.loc[keep, "geometry"], before.loc[keep, "geometry"]], crs=4326).to_crs(32648)
    assert shapes.iloc[0].symmetric_difference(shapes.iloc[1]).area < 1.0  # rebuilt from the same blocks
    assert after.loc[keep, "households"] == before.loc[keep, "households"]
    set_locked(store, [keep], False)
    urban = draw_area(store, WEST, PlanParams(mode="urban", allow_sparse=True))
    assert json.loads(plan_row(store, urban)["params_json"])["mode"] == "urban"


def test_cli_per_area_jobs_follow_the_rural_plan(county) -> None:  # noqa: ANN001
    """`gridpatrol draw-grids --jobs --all-areas --seed 2` on a rural plan queues area jobs with the
    plan's rural limits (the worker redraws each area rurally); with --mode urban, urban jobs."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    store = county
    draw_grids(store, PlanParams(mode="rural", allow_sparse=True, **LIMITS))
    exe = str(Path(sys.executable).with_name("gridpatrol"))

    def queued(*args: str) -> list[dict]:
        out = subprocess.run([exe, "--db", store.url, "--lang", "en", "draw-grids", "--jobs", "--all-areas", *args],
                             capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})
        assert out.returncode == 0, out.stderr
        ids = [int(i) for i in out.stdout.split(":", 1)[1].split(",")]
        return [jobs.get(store, i)["params"] for i in ids]

    rural = queued("--seed", "2")
    assert sorted(p["area"] for p in rural) == [WEST, EAST]
    assert all(p["mode"] == "rural" and p["max_area_m2"] == 4_000_000 and p["max_travel_min"] == 10
               and p["seed"] == 2 for p in rural), [(p["mode"], p["max_area_m2"], p["max_travel_min"]) for p in rural]
    assert all(p["mode"] == "urban" and p["max_travel_min"] is None for p in queued("--mode", "urban")), "urban"
