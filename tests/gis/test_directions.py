"""Turn-by-turn directions: synthetic streets with known turns, and a real Chengdu route."""
from __future__ import annotations

import re

import geopandas as gpd
import pytest
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.osm import read_osm
from gridpatrol.gis.routing.coverage import plan_coverage
from gridpatrol.gis.routing.directions import classify_turn, directions, format_distance
from gridpatrol.gis.routing.network import Traversal
from gridpatrol.gis.streets import street_network
from shapely.geometry import LineString, box

from tests.conftest import data_path

# ~100 m steps near Chengdu (1° lon ≈ 95.8 km at 30.67° N, 1° lat ≈ 110.9 km).
DX, DY = 100 / 95_800, 100 / 110_900
X0, Y0 = 104.06, 30.66


def _roads(recs):
    gdf = gpd.GeoDataFrame(recs, crs=4326)
    gdf["length_m"] = gdf.to_crs(local_metric_crs(X0, Y0)).length
    gdf["highway"] = "residential"
    gdf["oneway"] = False
    return gdf


def _pt(i, j):
    return (X0 + i * DX, Y0 + j * DY)


def test_same_street_merges_and_turns_get_named():
    # 人民南路 runs north in three 100 m segments, then a right turn into 蜀都大道 (east, 200 m),
    # then left into an unnamed lane (north, 100 m).
    roads = _roads([
        dict(u=1, v=2, name="人民南路", geometry=LineString([_pt(0, 0), _pt(0, 1)])),
        dict(u=2, v=3, name="人民南路", geometry=LineString([_pt(0, 1), _pt(0, 2)])),
        dict(u=3, v=4, name="人民南路", geometry=LineString([_pt(0, 2), _pt(0, 3)])),
        dict(u=4, v=5, name="蜀都大道", geometry=LineString([_pt(0, 3), _pt(2, 3)])),
        dict(u=5, v=6, name=None, geometry=LineString([_pt(2, 3), _pt(2, 4)])),
    ])
    net = street_network(roads, mode="walk")
    order = [int((net.edge_row == r).nonzero()[0][0]) for r in range(5)]
    trav = [Traversal(e, bool(net.node_osm[net.edge_u[e]] < net.node_osm[net.edge_v[e]]), True) for e in order]
    steps = directions(net, trav, closed=False)
    texts = [s.text for s in steps]
    assert texts[0] == "从起点出发，沿人民南路向北步行 300 米"
    assert texts[1] == "右转进入蜀都大道，向东步行 200 米"
    assert texts[2] == "左转进入无名道路，向北步行 100 米"
    assert texts[3] == "到达终点"
    # Whole-output invariant: the steps add up to the route.
    assert sum(s.distance_m for s in steps) == pytest.approx(sum(net.edge_length_m[t.edge] for t in trav))
    en = [s.text for s in directions(net, trav, lang="en", mode="drive", closed=False)]
    assert en[0] == "Start on 人民南路 and drive 300 m north"
    assert en[1] == "Turn right onto 蜀都大道, drive 200 m east"
    assert en[2] == "Turn left onto unnamed road, drive 100 m north"


def test_u_turn_and_kinks():
    assert classify_turn(0) == "straight"
    assert classify_turn(45) == "slight_right"
    assert classify_turn(-90) == "left"
    assert classify_turn(140) == "sharp_right"
    assert classify_turn(179) == "uturn"
    assert format_distance(347) == "350 米"
    assert format_distance(1234, "en") == "1.2 km"
    roads = _roads([dict(u=1, v=2, name="断头路", geometry=LineString([_pt(0, 0), _pt(1, 0)]))])
    net = street_network(roads, mode="walk")
    steps = directions(net, [Traversal(0, True, True), Traversal(0, False, False)])
    assert [s.action for s in steps] == ["depart", "uturn", "arrive"]
    assert steps[1].text == "掉头，沿断头路向西步行 100 米"
    assert steps[-1].text == "回到起点"


def test_empty_route_and_bad_language_are_clear_errors():
    roads = _roads([dict(u=1, v=2, name="a", geometry=LineString([_pt(0, 0), _pt(1, 0)]))])
    net = street_network(roads, mode="walk")
    with pytest.raises(InputError, match="empty"):
        directions(net, [])
    with pytest.raises(InputError, match="language"):
        directions(net, [Traversal(0, True, True)], lang="fr")


def test_real_route_directions_name_real_streets_and_add_up():
    data = read_osm(data_path("chengdu", "chengdu.osm"))
    plan = plan_coverage(data.roads, box(104.065, 30.665, 104.072, 30.672), mode="walk", start=(104.068, 30.668))
    route = plan.routes[0]
    steps = directions(plan.network, route.traversals)
    assert sum(s.distance_m for s in steps) == pytest.approx(route.length_m)
    # Same-street segments are merged: far fewer lines than street segments walked.
    assert len(steps) < 0.8 * len(route.traversals)
    names = set(data.roads["name"].dropna())
    named = [s for s in steps if s.street]
    assert named and all(s.street in names for s in named)
    pattern = re.compile(r"^(从起点出发，沿|掉头，沿|(直行|稍向[左右]转|[左右]转|向[左右]急转)(进入|，继续沿)).+(向(北|东北|东|东南|南|西南|西|西北))?步行 \d+(\.\d)? (米|公里)(，至(?P<cross>[^，]+)路口)?$")
    for s in steps[:-1]:
        # A line holds one move, or short moves leading into the next ("，然后").
        assert all(pattern.match(p) for p in s.text.split("，然后")), s.text
        crossings = [m.group("cross") for p in s.text.split("，然后") if (m := pattern.match(p)) and m.group("cross")]
        assert all(c in names for c in crossings), s.text  # a landmark is a real street of the map
    # Consecutive lines never repeat the same street going straight on (those are merged).
    for a, b in zip(steps[1:-1], steps[2:-1]):
        assert not (b.action == "straight" and b.street == a.street)


def test_map_names_that_are_no_street_names_are_printed_as_unnamed():
    from gridpatrol.gis.routing.directions import plausible_name

    for bad in ("v", " V ", "测试类", "test road", "待定", '"人民路', "《蜀都大道", "—", "12"):
        assert plausible_name(bad) is None, bad
    for good in ("人民南路", "一环路东一段", "Renmin Road", "《人民日报》社路"):
        assert plausible_name(good) == good


def test_a_repeated_last_point_is_no_heading_and_short_kinks_are_measured_across():
    # East along 东街, whose last point is repeated (a zero-length last piece), then on east along
    # 东街: straight on, no turn. Then a 4 m jog north on 小巷 and on east along 西街: straight on.
    j = _pt(2, 0)
    jog = (j[0] + DX, j[1] + 4 / 110_900)
    roads = _roads([
        dict(u=1, v=2, name="东街", geometry=LineString([_pt(0, 0), _pt(1, 0), _pt(1, 0)])),
        dict(u=2, v=3, name="东街", geometry=LineString([_pt(1, 0), j])),
        dict(u=3, v=4, name="东街", geometry=LineString([j, (j[0] + DX, j[1])])),
        dict(u=4, v=5, name="小巷", geometry=LineString([(j[0] + DX, j[1]), jog])),
        dict(u=5, v=6, name="西街", geometry=LineString([jog, (jog[0] + 2 * DX, jog[1])])),
    ])
    net = street_network(roads, mode="walk")
    order = [int((net.edge_row == r).nonzero()[0][0]) for r in range(5)]
    trav = [Traversal(e, bool(net.node_osm[net.edge_u[e]] < net.node_osm[net.edge_v[e]]), True) for e in order]
    steps = directions(net, trav, closed=False)
    assert [s.action for s in steps] == ["depart", "straight", "arrive"], [s.text for s in steps]
    assert steps[0].text == "从起点出发，沿东街向东步行 300 米"
    assert steps[1].text == "直行进入西街，步行 200 米"  # east again: the heading is not said twice


def test_an_unnamed_lane_ends_at_the_named_street_that_crosses_it():
    """Two unnamed lanes in a row: the first ends "至蜀都大道路口" (where the named street crosses),
    so the walker knows where to turn; a turn onto a named street needs no landmark."""
    roads = _roads([
        dict(u=1, v=2, name=None, geometry=LineString([_pt(0, 0), _pt(0, 1)])),
        dict(u=2, v=3, name=None, geometry=LineString([_pt(0, 1), _pt(1, 1)])),
        dict(u=2, v=4, name="蜀都大道", geometry=LineString([_pt(0, 1), _pt(-1, 1)])),
        dict(u=3, v=5, name="人民南路", geometry=LineString([_pt(1, 1), _pt(1, 2)])),
    ])
    net = street_network(roads, mode="walk")
    order = [int((net.edge_row == r).nonzero()[0][0]) for r in (0, 1, 3)]
    trav = [Traversal(e, bool(net.node_osm[net.edge_u[e]] < net.node_osm[net.edge_v[e]]), True) for e in order]
    zh = [s.text for s in directions(net, trav, closed=False)]
    assert zh[0] == "从起点出发，沿无名道路向北步行 100 米，至蜀都大道路口"
    assert zh[1] == "右转进入无名道路，向东步行 100 米" and zh[2] == "左转进入人民南路，向北步行 100 米"
    en = [s.text for s in directions(net, trav, lang="en", closed=False)]
    assert en[0] == "Start on unnamed road and walk 100 m north to the junction with 蜀都大道"


@pytest.mark.parametrize("where", ["first", "last"])
def test_a_repeated_vertex_does_not_read_as_north(where):
    """A street piece whose first (or last) point is repeated heads where the street goes, not north:
    a straight walk east along it is straight on, not a right turn."""
    east = [_pt(0, 0), _pt(1, 0)]
    repeated = [_pt(1, 0), _pt(1, 0), _pt(2, 0)] if where == "first" else [_pt(1, 0), _pt(2, 0), _pt(2, 0)]
    roads = _roads([
        {"u": 1, "v": 2, "name": "东街", "geometry": LineString(east)},
        {"u": 2, "v": 3, "name": "东街", "geometry": LineString(repeated)},
        {"u": 2, "v": 4, "name": "北巷", "geometry": LineString([_pt(1, 0), _pt(1, 1)])},
    ])
    net = street_network(roads, mode="walk")
    out_b, in_b = net.bearings()
    for i in range(net.n_edges):
        if net.edge_name[i] == "东街":
            # edges may be stored either way round; east is 90°, west 270°
            assert min(abs(out_b[i] - 90), abs(out_b[i] - 270)) < 1, out_b[i]
            assert min(abs(in_b[i] - 90), abs(in_b[i] - 270)) < 1, in_b[i]
