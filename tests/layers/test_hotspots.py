"""A grid's incident hot spots from the store (both stores), and a visit route through them."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from gridpatrol.gis.errors import NotFoundError
from gridpatrol.layers import grids as plans
from gridpatrol.layers.hotspots import grid_hot_spots
from gridpatrol.layers.incidents import synth_demo_data
from gridpatrol.layers.routes import plan_visit_route, read_routes

from tests.cached_stores import jinjiang_district_seed1, jinjiang_inputs
from tests.gis.test_hotspots import _brute_force_components
from tests.store_cache import cached_module_store_url

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def jinjiang(request, tmp_path_factory):  # noqa: ANN001, ANN201
    """锦江区 with a drawn plan (a copy of the cached store, tests/cached_stores.py) and a year of
    synthetic incidents, once per store kind: the tests only read it (the visit route one adds is
    under a code of its own)."""
    from gridpatrol.layers.store import open_store

    with cached_module_store_url(request, tmp_path_factory, "jinjiang-district-seed1", jinjiang_district_seed1,
                                 jinjiang_inputs()) as url:
        store = open_store(url)
        synth_demo_data(store, seed=5, n_incidents=3000, now=NOW)
        yield store
        store.dispose()


def test_grid_hot_spots_and_their_visit_route(jinjiang):
    store = jinjiang
    incidents = store.read_layer("incidents")
    # Incidents outside every grid have no grid (NULL), not the text 'NaN'.
    assert incidents["grid_code"].isna().any() and not incidents["grid_code"].isin(["NaN", "nan", "None"]).any()
    code = incidents["grid_code"].value_counts().index[0]  # the busiest grid
    spots = grid_hot_spots(store, code, days=120, at=NOW, radius_m=80, min_incidents=2, half_life_days=None)
    assert len(spots) >= 2

    # Independently: the grid's incidents of the window (by polygon, not by the stored grid_code),
    # clustered by brute force on geodesic distances.
    poly = plans.read_grids(store).set_index("code").loc[code].geometry
    when = pd.to_datetime(incidents["occurred_at"], utc=True)
    mine = incidents[incidents.intersects(poly) & (when >= NOW - timedelta(days=120)) & (when <= NOW)
                     & incidents["duplicate_of"].isna()]
    groups = [g for g in _brute_force_components(mine.geometry.x.to_numpy(), mine.geometry.y.to_numpy(), 80)
              if len(g) >= 2]
    assert sorted(spots["incidents"]) == sorted(len(g) for g in groups)
    assert spots["synthetic"].all() and spots.intersects(poly.buffer(0.001)).all()

    plan, _ = plan_visit_route(store, spots[["name", "importance", "synthetic", "geometry"]],
                               code=f"{code}-hotspots", time_limit_s=2)
    assert sorted(plan.order) == list(range(len(spots))) and plan.gap == pytest.approx(0, abs=1e-6)
    row = read_routes(store, f"{code}-hotspots", kind="visit").iloc[0]
    stats = json.loads(row["stats_json"])
    assert stats["synthetic"] is True
    steps = json.loads(row["directions_json"])
    assert [s["text"] for s in steps] == ["到达 " + spots["name"].iloc[i] for i in plan.order]


def test_unknown_grid_is_a_clear_error(jinjiang):
    with pytest.raises(NotFoundError, match="not in plan"):
        grid_hot_spots(jinjiang, "510104999999999")
