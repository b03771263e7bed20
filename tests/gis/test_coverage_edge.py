"""A grid with no street of its own (a compound cut between building clusters, its inner paths not
mapped) still gets a patrol route: the streets along its edge, with a warning saying so."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.osm import read_osm
from gridpatrol.gis.routing.area import required_mask
from gridpatrol.gis.routing.coverage import plan_coverage
from gridpatrol.gis.streets import street_network
from shapely.geometry import LineString

from tests.conftest import data_path


@pytest.fixture(scope="module")
def chengdu():
    roads = read_osm(data_path("chengdu", "chengdu.osm")).roads
    c = roads.union_all().centroid
    crs = local_metric_crs(c.x, c.y)
    net = street_network(roads, mode="walk", crs=crs)
    return roads, net, crs


def _compound_beside_streets(roads: gpd.GeoDataFrame, net, crs, *, gap_m: float):  # noqa: ANN001
    """Polygons (metric) lying ``gap_m`` beside one long walkable street, 25 m deep, touching no
    other street: the first 40 such streets in a fixed order."""
    walk = net.edge_geom
    tree = shapely.STRtree(walk)
    lengths = shapely.length(walk)
    out = []
    for e in np.argsort(-lengths, kind="stable")[:400]:
        line = walk[e]
        if not isinstance(line, LineString) or lengths[e] < 120:
            continue
        core = shapely.line_interpolate_point(line, [30.0, lengths[e] - 30.0])
        mid = shapely.LineString([core[0], core[1]])
        if mid.length < 50:
            continue
        # A 25 m deep strip starting gap_m from the street's centre line, on its left.
        near_side = mid.offset_curve(gap_m)
        far_side = mid.offset_curve(gap_m + 25.0)
        if near_side.is_empty or far_side.is_empty:
            continue
        poly = shapely.Polygon(list(near_side.coords) + list(far_side.coords)[::-1]).buffer(0)
        if poly.is_empty or poly.area < 1000:
            continue
        hits = tree.query(poly.buffer(5.0), predicate="intersects")
        if gap_m == 0 and set(hits.tolist()) != {int(e)}:
            continue
        if gap_m > 0 and len(hits):
            continue
        out.append((int(e), poly))
        if len(out) >= 40:
            break
    return out


def _to_wgs84(poly_m, crs):  # noqa: ANN001
    return gpd.GeoSeries([poly_m], crs=crs).to_crs(4326).iloc[0]


def test_grid_without_inner_streets_walks_the_streets_along_its_edge(chengdu):  # noqa: ANN001
    roads, net, crs = chengdu
    cases = _compound_beside_streets(roads, net, crs, gap_m=0.0)
    assert len(cases) >= 5, "the Chengdu extract should have long streets with nothing on one side"
    planned = 0
    for e, poly_m in cases[:5]:
        # The case under test: under the normal rule (half a street's length within 2 m of the
        # polygon) the polygon has no street at all.
        if required_mask(net, poly_m).any():
            continue
        plan = plan_coverage(net, _to_wgs84(poly_m, crs), mode="walk", name=f"edge-{e}")
        planned += 1
        assert any("along its edge" in w for w in plan.warnings), plan.warnings
        # The bordering street is covered: every point of it lies within 1 m of the route
        # (route geometries are in the network's metric CRS).
        street = net.edge_geom[e]
        route_m = shapely.union_all([r.geometry for r in plan.routes])
        assert shapely.hausdorff_distance(street, shapely.intersection(street, route_m.buffer(1.0))) < 1.0
        sub = plan.network
        assert plan.required_m == pytest.approx(sub.edge_length_m[plan.required_edges].sum())
        assert min(shapely.hausdorff_distance(street, sub.edge_geom[i]) for i in plan.required_edges) < 1e-6
        # Gap 0 against the lower bound; a single street is never worse than there and back
        # (a loop through other streets can be shorter).
        assert plan.gap == pytest.approx(0.0, abs=1e-9)
        if len(plan.required_edges) == 1:
            assert plan.required_m - 1e-6 <= plan.length_m <= 2 * plan.required_m + 1e-6
    assert planned >= 3


def test_grid_far_from_any_street_is_an_error_that_names_it(chengdu):  # noqa: ANN001
    roads, net, crs = chengdu
    cases = _compound_beside_streets(roads, net, crs, gap_m=15.0)
    assert cases, "the Chengdu extract should have a courtyard 15 m away from every street"
    e, poly_m = cases[0]
    with pytest.raises(InputError) as err:
        plan_coverage(net, _to_wgs84(poly_m, crs), mode="walk", name="courtyard-7")
    assert "courtyard-7" in str(err.value) and "along its edge" in str(err.value)
