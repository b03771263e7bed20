"""Building → grid assignment equals brute-force point-in-polygon; incremental and cut detection."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from gridpatrol.gis.assign import (
    assign_buildings,
    assign_xy,
    blocks_joined_by_buildings,
    crossing_buildings,
    reassign_buildings,
    representative_xy,
)
from gridpatrol.gis.errors import InputError

from tests.conftest import data_path


@pytest.fixture(scope="module")
def nanjing():
    """(district polygon, buildings, metric CRS) of Nanjing 玄武区 from the real OSM extract."""
    from gridpatrol.gis.osm import read_osm
    from gridpatrol.gis.vector import read_vector

    data = read_osm(data_path("nanjing", "xuanwu.osm"))
    area = shapely.union_all(read_vector(data_path("nanjing", "320102.geojson"), crs="gcj02").geometry.values)
    return area, data.buildings.reset_index(drop=True), data.metric_crs


def _voronoi_grids(area, n: int, seed: int) -> gpd.GeoDataFrame:
    """n Voronoi cells of random seeds clipped to ``area`` (EPSG:4326): a gap-free plan."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = area.bounds
    pts = shapely.points(rng.uniform(minx, maxx, n * 3), rng.uniform(miny, maxy, n * 3))
    pts = pts[shapely.contains(area, pts)][:n]
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=area))
    cells = shapely.intersection(cells, area)
    codes = [f"320102000000{i + 1:03d}" for i in range(len(cells))]
    return gpd.GeoDataFrame({"code": codes, "parent_code": "320102"}, geometry=cells, crs="EPSG:4326")


def _brute_force(x, y, polys) -> np.ndarray:
    """Lowest index of a polygon covering each point, by testing every point against every polygon."""
    out = np.full(len(x), -1)
    for i, (px, py) in enumerate(zip(x, y)):
        p = shapely.Point(px, py)
        for j, poly in enumerate(polys):
            if poly.covers(p):
                out[i] = j
                break
    return out


def test_assignment_equals_brute_force_on_real_buildings(nanjing):
    area, buildings, _ = nanjing
    grids = _voronoi_grids(area, 40, seed=1)
    x, y = representative_xy(buildings.geometry)
    got = assign_xy(x, y, grids.geometry)
    want = _brute_force(x, y, list(grids.geometry))
    assert (got == want).all()
    # The extract reaches beyond the district: some buildings must be in no grid, most in one.
    assert 0 < (got < 0).sum() < len(got)
    codes = assign_buildings(buildings, grids)
    assert codes.isna().sum() == (got < 0).sum()
    assert (codes[got >= 0] == grids["code"].to_numpy()[got[got >= 0]]).all()


def test_points_on_boundaries_and_vertices_go_to_the_lowest_index():
    a, b = shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)
    x = np.array([1.0, 1.0, 0.5, 1.5, 3.0, 0.0])
    y = np.array([0.5, 1.0, 0.5, 0.5, 0.5, 0.0])
    got = assign_xy(x, y, [a, b])
    assert got.tolist() == [0, 0, 0, 1, -1, 0]
    assert got.tolist() == _brute_force(x, y, [a, b]).tolist()
    with pytest.raises(InputError):
        assign_xy(x, y[:-1], [a, b])


def test_random_points_with_holes_and_multipolygons_match_brute_force():
    rng = np.random.default_rng(5)
    ring = shapely.box(0, 0, 10, 10).difference(shapely.box(3, 3, 7, 7))
    multi = shapely.MultiPolygon([shapely.box(3, 3, 4, 4), shapely.box(6, 6, 7, 7)])
    polys = [ring, multi, shapely.box(20, 20, 30, 30), None, shapely.Polygon()]
    x, y = rng.uniform(-2, 32, 3000), rng.uniform(-2, 32, 3000)
    assert (assign_xy(x, y, polys) == _brute_force(x, y, [p if p is not None else shapely.Polygon() for p in polys])).all()


def test_incremental_reassignment_after_a_split_equals_full_assignment(nanjing):
    area, buildings, _ = nanjing
    grids = _voronoi_grids(area, 30, seed=2)
    before = assign_buildings(buildings, grids)
    # Split the grid holding most buildings into west and east halves along its centroid.
    target = before.value_counts().index[0]
    geom = grids.loc[grids["code"] == target, "geometry"].iloc[0]
    cx = geom.centroid.x
    minx, miny, maxx, maxy = geom.bounds
    west = geom.intersection(shapely.box(minx - 1, miny - 1, cx, maxy + 1))
    east = geom.difference(west)
    edited = grids[grids["code"] != target].copy()
    new = gpd.GeoDataFrame({"code": ["W", "E"], "parent_code": "320102"}, geometry=[west, east], crs="EPSG:4326")
    edited = gpd.GeoDataFrame(list(edited.to_dict("records")) + list(new.to_dict("records")), crs="EPSG:4326")
    inc = reassign_buildings(buildings, before, edited, {target, "W", "E"})
    full = assign_buildings(buildings, edited)
    assert inc.fillna("-").tolist() == full.fillna("-").tolist()
    assert set(inc[before == target]) <= {"W", "E"}
    assert (inc[before != target].fillna("-") == before[before != target].fillna("-")).all()


def test_crossing_buildings_equals_brute_force_overlay(nanjing):
    area, buildings, metric = nanjing
    grids = _voronoi_grids(area, 40, seed=3)
    found = crossing_buildings(buildings, grids, min_area_m2=1.0, metric_crs=metric)
    b = buildings.to_crs(metric).geometry
    g = grids.to_crs(metric).geometry
    brute = set()
    for i, bg in enumerate(b):
        parts = sum(1 for gg in g if bg.intersection(gg).area > 1.0)
        if parts >= 2:
            brute.add(i)
    assert set(found["building"]) == brute
    assert len(brute) > 0  # random cells do cut real buildings
    row = found.iloc[0]
    assert row["parts"] == len(row["grid_codes"]) >= 2
    assert 1.0 < row["outside_m2"] < row["footprint_m2"]


def test_blocks_joined_by_buildings_equals_brute_force_grouping(nanjing):
    import networkx as nx

    area, buildings, metric = nanjing
    blocks = _voronoi_grids(area, 40, seed=3)  # cuts real buildings (see the crossing test)
    labels = blocks_joined_by_buildings(blocks, buildings, metric_crs=metric)
    b = buildings[buildings["estimate_method"] != "landuse"].to_crs(metric).geometry
    g = blocks.to_crs(metric).geometry.to_numpy()
    graph = nx.Graph()
    graph.add_nodes_from(range(len(g)))
    for fp in b:
        sides = [j for j, gg in enumerate(g) if fp.intersection(gg).area > 1.0]
        graph.add_edges_from(zip(sides[:-1], sides[1:]))
    comps = list(nx.connected_components(graph))
    assert len(set(labels.tolist())) == len(comps) < len(g)
    for comp in comps:
        assert len({labels[i] for i in comp}) == 1
