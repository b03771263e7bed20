"""--max-route-min is a hard limit (#15): every grid's patrol, as plan-routes plans it (walking
coverage route of its streets from its station, 4.5 km/h), takes at most M minutes, or the grid
is one block whose patrol's lower bound is over M (exempt with it). A plan over the cap is
invalid. 锦江区 (real data) and a generated lumpy city, both stores."""
from __future__ import annotations

import re

import numpy as np
import pytest
import shapely
from gridpatrol.layers import grids as gl
from gridpatrol.layers import routes as rl

from tests.cached_stores import jinjiang_inputs, jinjiang_with_users
from tests.store_cache import open_filled

M_PER_MIN = 4.5 * 1000 / 60  # plan-routes walks 4.5 km/h


@pytest.fixture
def jj(store_url):  # noqa: ANN001, ANN201
    """Chengdu's streets and buildings, 锦江区 as the district, no plan (both stores)."""
    yield from open_filled(store_url, "jobs-jinjiang", jinjiang_with_users, jinjiang_inputs())


def _patrol_minutes(store) -> dict[str, tuple[float, float]]:  # noqa: ANN001
    """Per grid of the newest plan: (minutes, lower-bound minutes) of the route plan-routes stores."""
    out = rl.plan_routes(store, rl.grid_targets(store), skip_failures=True)
    assert all(o.ok for o in out), [o.error for o in out if not o.ok]
    routes = store.read_layer("routes")
    assert set(routes["grid_code"]) == {o.code for o in out}
    return {r.grid_code: (r.length_m / M_PER_MIN, r.lower_bound_m / M_PER_MIN) for r in routes.itertuples()}


def _meets_route_cap(store, pid: int, cap: float) -> dict:  # noqa: ANN001
    """Assert the plan meets --max-route-min ``cap`` in plan-routes' own output; returns facts."""
    grids, blocks = gl.read_grids(store, pid), gl.read_blocks(store, pid)
    n_blocks = blocks["grid_code"].value_counts()
    res, _ = gl.check_grids(store, pid)
    assert res.valid, res.problems[res.problems["severity"] == "error"]["detail"].tolist()
    assert res.summary["problems_by_kind"].get("over_route_cap", 0) == 0
    exempt_rows = res.problems[res.problems["kind"] == "route_exempt"]
    minutes = _patrol_minutes(store)
    over = {c for c, (m, _) in minutes.items() if m > cap + 1e-6}
    # every grid over the cap is a single block whose route's certified lower bound is over it too
    assert over == set(exempt_rows["grid_code"])
    for code in over:
        assert n_blocks[code] == 1 and minutes[code][1] > cap
        bound = float(re.search(r"lower bound ([\d,.]+) min", exempt_rows.set_index("grid_code").loc[code, "detail"])
                      .group(1).replace(",", ""))
        assert bound > cap
    # grids below the band are exempt, each with its reason; 0-household grids say so
    hh = grids.set_index("code")["households"]
    below = set(hh.index[hh < 300])
    hh_exempt = res.problems[res.problems["kind"] == "households_exempt"].set_index("grid_code")
    assert below <= set(hh_exempt.index)
    for code in hh.index[hh == 0]:
        assert "no households" in hh_exempt.loc[code, "detail"] or n_blocks[code] == 1
    return {"grids": len(grids), "max_min": max(m for m, _ in minutes.values()), "over": over, "below": below}


def test_drawn_plan_meets_the_route_cap_in_plan_routes(jj):  # noqa: ANN001
    store = jj
    pid = gl.draw_grids(store, gl.PlanParams(max_route_min=60, seed=1))
    facts = _meets_route_cap(store, pid, 60)
    assert facts["max_min"] > 40  # the cap binds: grids are cut to it, not far below
    assert gl.plan_row(store, pid)["params_json"].count('"max_route_min": 60.0') == 1


def test_a_plan_over_the_route_cap_is_invalid(jj):  # noqa: ANN001
    store = jj
    pid = gl.draw_grids(store, gl.PlanParams(seed=1))  # no cap: some grids' patrols take over an hour
    grids, blocks = gl.read_grids(store, pid), gl.read_blocks(store, pid)
    single = set(blocks["grid_code"].value_counts().loc[lambda s: s == 1].index)
    minutes = _patrol_minutes(store)
    over = {c for c, (m, _) in minutes.items() if m > 60} - single
    assert over
    res = gl.check_frames(store, grids, blocks, gl.planning_areas(store), gl.PlanParams(seed=1, max_route_min=60))
    errs = res.problems[res.problems["kind"] == "over_route_cap"]
    assert not res.valid and set(errs["grid_code"]) == over
    assert errs["detail"].str.contains("over the hard cap 60 min").all()


@pytest.fixture
def lumpy(store, monkeypatch):  # noqa: ANN001, ANN201
    """A generated city of ~500 blocks with lumpy households (towers, 9 buildings a cell, mixed
    footprints) and streets joined at their crossings, as the only district."""
    import gridpatrol.layers.synth_province as sp
    from gridpatrol.gis.synth_city import synth_city

    def noded(*a, **k):  # noqa: ANN002, ANN003, ANN202
        c = synth_city(*a, **k)
        g = c.roads.geometry.to_numpy()
        ends = np.vstack([shapely.get_coordinates(shapely.get_point(g, 0)),
                          shapely.get_coordinates(shapely.get_point(g, -1))])
        _, node = np.unique(np.round(ends * 1e6).astype(np.int64), axis=0, return_inverse=True)
        c.roads["u"], c.roads["v"] = node[: len(g)].astype(np.int64) + 1, node[len(g):].astype(np.int64) + 1
        return c

    monkeypatch.setattr(sp, "synth_city", noded)
    sp.load_province(store, 1, 500, seed=3, footprints="mixed", per_cell=9, tower_share=0.08)
    return store


def test_lumpy_generated_city_meets_the_route_cap(lumpy):  # noqa: ANN001
    store = lumpy
    base = gl.draw_grids(store, gl.PlanParams(seed=1))
    assert max(m for m, _ in _patrol_minutes(store).values()) > 45  # uncapped, patrols run over the cap
    pid = gl.draw_grids(store, gl.PlanParams(max_route_min=45, seed=1))
    facts = _meets_route_cap(store, pid, 45)
    assert facts["grids"] > len(gl.read_grids(store, base))
