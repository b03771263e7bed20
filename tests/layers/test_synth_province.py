"""The generated province (layers/synth_province.py), the data of the province benchmark: its districts are
their cities moved in metres (the same shapes wherever they lie, never stretched by a move in degrees), they
keep apart, the same seed gives the same province, and drawn one job per district on either store every
district's plan passes check-grids."""
from __future__ import annotations

import itertools

import numpy as np
import shapely
from gridpatrol.gis.synth_city import METRIC_CRS, ORIGIN, city_size_m, synth_city
from gridpatrol.layers import grids as gl
from gridpatrol.layers import job_queue
from gridpatrol.layers import jobs as jl
from gridpatrol.layers.synth_province import GAP_M, district_origins, load_province, province_layers


def _metric_xy(gdf) -> np.ndarray:  # noqa: ANN001
    return shapely.get_coordinates(gdf.to_crs(METRIC_CRS).geometry.to_numpy())


def test_districts_are_their_cities_moved_in_metres() -> None:
    layers = province_layers(5, 60, seed=3)  # a 3 × 2 square: districts moved east, north and both
    origins = district_origins(5, 60, seed=3)
    assert len({x for x, _ in origins}) == 3 and len({y for _, y in origins}) == 2
    for i, (x0, y0) in enumerate(origins):
        alone = synth_city(60, 3 + i)  # the same city at the default origin
        dx, dy = x0 - ORIGIN[0], y0 - ORIGIN[1]
        for layer, first_id in (("roads", 0), ("buildings", 10_000_000)):
            got = layers[layer]
            got = got[(got["osm_id"] // 10**9) == i + 1]
            assert len(got) == len(getattr(alone, layer)) > 0
            # every vertex exactly the city's own moved by (dx, dy) metres (a millimetre: float rounding)
            moved = _metric_xy(got) - [dx, dy]
            assert np.abs(moved - _metric_xy(getattr(alone, layer))).max() < 1e-3, (layer, i)
        area = layers["areas"].to_crs(METRIC_CRS).geometry.iloc[i]
        w, h = city_size_m(60, 3 + i)
        assert np.allclose(area.bounds, (x0, y0, x0 + w, y0 + h), atol=1e-3, rtol=0)
        assert abs(area.area - w * h) < 1.0  # a rectangle in metres, not a stretched one


def test_districts_keep_apart() -> None:
    areas = province_layers(6, 50, seed=1)["areas"].to_crs(METRIC_CRS)
    assert list(areas["code"]) == [f"51990{i}" for i in range(1, 7)]
    for a, b in itertools.combinations(areas.geometry, 2):
        assert a.distance(b) >= GAP_M - 1e-3  # neither overlapping nor touching
    roads = province_layers(6, 50, seed=1)["roads"]
    assert roads["osm_id"].is_unique  # no two districts share a street's id or node
    nodes = [set(np.r_[g["u"], g["v"]]) for _, g in roads.groupby(roads["osm_id"] // 10**9)]
    assert len(nodes) == 6 and all(not a & b for a, b in itertools.combinations(nodes, 2))


def test_same_seed_same_province() -> None:
    a, b, other = (province_layers(4, 40, seed=s) for s in (2, 2, 5))
    for layer in ("areas", "roads", "barriers", "buildings"):
        assert a[layer].geometry.geom_equals_exact(b[layer].geometry, 0).all()
        assert a[layer].drop(columns="geometry").equals(b[layer].drop(columns="geometry"))
    assert len(other["roads"]) != len(a["roads"]) or not other["roads"].geometry.geom_equals_exact(
        a["roads"].geometry, 0).all()


def test_drawn_per_district_every_plan_passes_check_grids(store) -> None:  # noqa: ANN001
    n = 4
    codes = load_province(store, n, 120, seed=4)  # a 2 × 2 square
    ids = job_queue.submit_per_area(store, "draw-grids", {"seed": 1}, created_by="bench")
    job_queue.run_until_empty(store, heartbeat_s=0.5)
    jobs = [jl.get(store, i) for i in ids]
    assert [j["state"] for j in jobs] == ["done"] * n, [j.get("error") for j in jobs]
    res, pid = gl.check_grids(store)
    assert pid == gl.latest_plan_id(store)
    assert res.summary["errors"] == 0 and res.summary["valid"], res.problems.to_dict("records")
    assert res.summary["overlap_m2"] == 0 and res.summary["gap_m2"] == 0
    assert set(gl.read_grids(store, pid)["parent_code"]) == set(codes)
    for j in jobs:  # each district's own plan, as its job wrote it, is valid too
        assert gl.check_grids(store, j["result"]["plan_id"])[0].summary["errors"] == 0
