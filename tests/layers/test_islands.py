"""Unreachable street islands (GeoPackage and PostGIS): the plan says where each is and why, the
sheet lists them, and the suggested fix, once applied to the data, lets the route reach them."""
from __future__ import annotations

import json
import subprocess

import networkx as nx
import numpy as np
import pytest
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.streets import NOT_WALKABLE, allowed
from gridpatrol.layers.routes import Target, plan_routes, print_route, read_routes
from gridpatrol.layers.store import open_store
from shapely.geometry import box
from sqlalchemy import text

from tests.cached_stores import chengdu_osm_inputs, chengdu_osm_only
from tests.store_cache import cached_module_store_url

NO_WAY = box(104.071, 30.667, 104.087, 30.678)  # holds a street piece no walkable way joins
GATED = box(104.110, 30.656, 104.115, 30.660)  # holds a compound behind a way tagged access=no
CRS = local_metric_crs(104.08, 30.67)


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def chengdu(request, tmp_path_factory):  # noqa: ANN001, ANN201
    """Chengdu's streets and buildings imported (a store of the module's own, copied from the cached one)."""
    with cached_module_store_url(request, tmp_path_factory, "chengdu-osm", chengdu_osm_only, chengdu_osm_inputs()) as url:
        s = open_store(url)
        yield s
        s.dispose()


def _walk_graph(roads) -> nx.Graph:
    ok = allowed(roads, "walk") & ~roads["highway"].isin(NOT_WALKABLE).to_numpy()
    g = nx.Graph()
    g.add_edges_from(zip(roads["u"][ok], roads["v"][ok]))
    return g


def _node_at(roads, lon: float, lat: float) -> int:
    """The road node (OSM id) at lon, lat (within a centimetre or so)."""
    ends = roads.geometry.apply(lambda g: (g.coords[0], g.coords[-1]))
    for (a, b), u, v in zip(ends, roads["u"], roads["v"]):
        for (x, y), n in ((a, u), (b, v)):
            if abs(x - lon) < 2e-6 and abs(y - lat) < 2e-6:
                return int(n)
    raise AssertionError(f"no road node at {lon},{lat}")


def test_an_island_no_way_joins_is_placed_measured_and_listed_on_the_sheet(chengdu, tmp_path):
    out = plan_routes(chengdu, [Target("NOWAY", NO_WAY)], mode="walk")[0]
    isl = out.summary["island_fixes"]
    assert len(isl) == 1 and "没有可步行的道路与之相连" in isl[0]["why"] and "补绘连接道路" in isl[0]["fix"]
    # Checked here on the walkable roads: the island is cut off from the route's start, and the
    # nearest node that the start reaches is the stated distance away.
    roads = chengdu.read_layer("roads", bbox=(104.05, 30.65, 104.11, 30.70))
    g = _walk_graph(roads)
    route = read_routes(chengdu, "NOWAY").iloc[0]
    start = _node_at(roads, *route.geometry.coords[0])
    island = _node_at(roads, *isl[0]["at"])
    assert not nx.has_path(g, start, island)
    reach = nx.node_connected_component(g, start)
    xy = {}
    m = roads.to_crs(CRS)
    for gm, u, v in zip(m.geometry, m["u"], m["v"]):
        xy[int(u)], xy[int(v)] = gm.coords[0], gm.coords[-1]
    piece = nx.node_connected_component(g, island)
    gap = min(np.hypot(xy[a][0] - xy[b][0], xy[a][1] - xy[b][1]) for a in piece for b in reach if a in xy and b in xy)
    assert isl[0]["gap_m"] == pytest.approx(gap, abs=1.0), (isl[0]["gap_m"], gap)
    pdf = tmp_path / "noway.pdf"
    print_route(chengdu, "NOWAY", pdf)
    sheet = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert f"{isl[0]['at'][0]:.5f},{isl[0]['at'][1]:.5f}" in sheet and "没有可步行的道路与之相连" in sheet


def test_the_fix_suggested_for_a_gated_compound_lets_the_route_in(chengdu):
    out = plan_routes(chengdu, [Target("GATED", GATED)], mode="walk")[0]
    isl = out.summary["island_fixes"]
    assert len(isl) == 1 and "access=no" in isl[0]["why"] and "foot=yes" in isl[0]["fix"]
    way = int(isl[0]["why"].split("OSM 道路 ")[1].split("（")[0])
    before = read_routes(chengdu, "GATED").iloc[0]
    # Apply the fix to the data, as a planner would after checking the gate, and plan again.
    with chengdu.begin() as c:
        c.execute(text("UPDATE roads SET foot = 'yes' WHERE osm_id = :w"), {"w": way})
    try:
        again = plan_routes(chengdu, [Target("GATED", GATED)], mode="walk")[0]
        assert again.summary["island_fixes"] == []
        after = read_routes(chengdu, "GATED").iloc[0]
        assert after["required_m"] > before["required_m"] + 0.9 * isl[0]["length_m"]
        assert json.loads(after["stats_json"])["segments_unreachable"] == 0
    finally:
        with chengdu.begin() as c:
            c.execute(text("UPDATE roads SET foot = NULL WHERE osm_id = :w"), {"w": way})
