"""--max-street-m and --max-area-m2 are hard limits (#15): a drawn plan meets them, or a grid is a
single block over them, and every grid the caps push below the band is exempt with the reason and
bound check-grids gives; a plan over a cap is invalid. 锦江区, both stores."""
from __future__ import annotations

import numpy as np
import pytest
import shapely
from gridpatrol.layers import grids as gl

from tests.cached_stores import jinjiang_inputs, jinjiang_with_users
from tests.store_cache import open_filled

CAPS = {"max_street_m": 3000.0, "max_area_m2": 400_000.0, "seed": 1}


@pytest.fixture
def jj(store_url):  # noqa: ANN001, ANN201
    """Chengdu's streets and buildings, 锦江区 as the district, no plan (both stores)."""
    yield from open_filled(store_url, "jobs-jinjiang", jinjiang_with_users, jinjiang_inputs())


def _touching(grids) -> list[tuple[int, int]]:  # noqa: ANN001
    geoms = grids.geometry.to_numpy()
    out = []
    for i in range(len(geoms)):
        for j in range(i + 1, len(geoms)):
            if shapely.length(shapely.intersection(geoms[i].boundary, geoms[j].boundary)) > 1e-7:
                out.append((i, j))
    return out


def test_drawn_plan_meets_the_caps_or_lists_each_grid_they_force(jj):  # noqa: ANN001
    store = jj
    pid = gl.draw_grids(store, gl.PlanParams(**CAPS))
    grids = gl.read_grids(store, pid)
    blocks = gl.read_blocks(store, pid)
    n_blocks = blocks["grid_code"].value_counts()
    single = grids["code"].map(n_blocks).to_numpy() == 1
    street, area = grids["street_m"].to_numpy(), grids["area_m2"].to_numpy()
    # every grid within both caps, unless it is one block (which no plan can make smaller)
    assert ((street <= 3000 + 1e-6) | single).all() and ((area <= 400_000 * (1 + 1e-6)) | single).all()
    res, _ = gl.check_grids(store, pid)
    assert res.valid, res.problems[res.problems["severity"] == "error"]["detail"].tolist()
    kinds = res.summary["problems_by_kind"]
    assert kinds.get("over_street_cap", 0) == kinds.get("over_area_cap", 0) == 0
    # each grid below the band is exempt, and independently: merging it into any touching grid
    # would break a cap or go over 500 households, and at least one merge breaks a cap
    hh = grids["households"].to_numpy()
    below = np.flatnonzero(hh < 300)
    assert len(below) and grids["exempt"].to_numpy()[below].all()
    pairs = _touching(grids)
    for i in below:
        if single[i]:
            continue
        merges = [j for a, b in pairs for j in ((b,) if a == i else (a,) if b == i else ())]
        assert merges
        breaks_cap = [street[i] + street[j] > 3000 or area[i] + area[j] > 400_000 for j in merges]
        assert all(c or hh[i] + hh[j] > 500 for c, j in zip(breaks_cap, merges)) and any(breaks_cap)
    exempt_rows = res.problems[res.problems["kind"] == "households_exempt"]
    assert set(exempt_rows["grid_code"]) >= set(grids["code"].to_numpy()[below])
    assert exempt_rows["detail"].str.contains("breaks a hard cap|single block|indivisible").all()


def test_a_plan_over_a_cap_is_invalid(jj):  # noqa: ANN001
    store = jj
    pid = gl.draw_grids(store, gl.PlanParams(seed=1))  # no caps: some grid has over 3 km of streets
    grids, blocks = gl.read_grids(store, pid), gl.read_blocks(store, pid)
    over = set(grids.loc[grids["street_m"] > 3000, "code"]) - set(blocks["grid_code"].value_counts().loc[lambda s: s == 1].index)
    assert over
    res = gl.check_frames(store, grids, blocks, gl.planning_areas(store), gl.PlanParams(seed=1, max_street_m=3000))
    errs = res.problems[res.problems["kind"] == "over_street_cap"]
    assert not res.valid and set(errs["grid_code"]) == over
    assert errs["detail"].str.contains("over the hard cap 3,000").all()
