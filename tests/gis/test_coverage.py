"""Coverage routes on real Chengdu and Nanjing streets, checked against independent computations."""
from __future__ import annotations

import json

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from gridpatrol.gis.crs import local_metric_crs, to_wgs84_geometry
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.osm import read_osm
from gridpatrol.gis.routing.coverage import plan_coverage
from gridpatrol.gis.routing.network import count_turns
from gridpatrol.gis.vector import cut_into_cells
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp
from shapely.geometry import LineString, box, shape

from tests.conftest import data_path

CITIES = {
    "chengdu": ("chengdu/chengdu.osm", [f"chengdu/5101{k}.geojson" for k in ("04", "05", "06", "07", "08")], 3),
    "nanjing": ("nanjing/xuanwu.osm", ["nanjing/320102.geojson"], 3),
}


def _district_pieces(city: str):
    osm, districts, n = CITIES[city]
    data = read_osm(data_path(*osm.split("/")))
    pieces = []
    for f in districts:
        raw = json.loads(data_path(*f.split("/")).read_text())
        g = to_wgs84_geometry(shape(raw.get("geometry", raw)), source="gcj02")  # the files are GCJ-02
        # Only where the extract has streets (Nanjing's extract covers a corner of the district).
        g = g.intersection(box(*data.roads.total_bounds))
        if g.is_empty:
            continue
        for i, j, p in cut_into_cells(g, n):
            pieces.append((f"{f.split('/')[-1]}[{i},{j}]", p))
    return data.roads, pieces


@pytest.fixture(scope="module", params=sorted(CITIES))
def city(request):
    roads, pieces = _district_pieces(request.param)
    return request.param, roads, pieces


def _metric(gdf_or_geom, crs):
    if isinstance(gdf_or_geom, (gpd.GeoDataFrame, gpd.GeoSeries)):
        return gdf_or_geom.to_crs(crs)
    return gpd.GeoSeries([gdf_or_geom], crs=4326).to_crs(crs).iloc[0]


def independent_walk_bound(roads: gpd.GeoDataFrame, rows: np.ndarray, required_rows: np.ndarray) -> float:
    """Required length + minimum perfect matching of odd nodes, computed without gis.routing.

    Shortest paths with networkx's Dijkstra on the same streets, the matching as an integer
    program over the complete graph of odd nodes (scipy.milp), not by column generation.
    """
    sel = roads.loc[rows]
    G = nx.Graph()
    for r in sel.itertuples():
        if r.u != r.v and (not G.has_edge(r.u, r.v) or G[r.u][r.v]["w"] > r.length_m):
            G.add_edge(r.u, r.v, w=r.length_m)
    req = roads.loc[required_rows]
    deg = pd_value_counts(np.concatenate([req["u"].to_numpy(), req["v"].to_numpy()]))
    odd = [n for n, d in deg.items() if d % 2]
    n = len(odd)
    if n == 0:
        return float(req["length_m"].sum())
    D = np.zeros((n, n))
    for a, s in enumerate(odd):
        dist = nx.single_source_dijkstra_path_length(G, s, weight="w")
        D[a] = [dist.get(o, np.inf) for o in odd]
    iu = np.triu_indices(n, 1)
    c = D[iu]
    finite = np.isfinite(c)
    m = int(finite.sum())
    rows_i = np.concatenate([iu[0][finite], iu[1][finite]])
    A = sparse.coo_matrix((np.ones(2 * m), (rows_i, np.tile(np.arange(m), 2))), shape=(n, m))
    res = milp(c[finite], constraints=LinearConstraint(A, 1, 1), integrality=np.ones(m), bounds=Bounds(0, 1))
    assert res.status == 0, res.message
    return float(req["length_m"].sum() + res.fun)


def pd_value_counts(values: np.ndarray) -> dict[int, int]:
    keys, counts = np.unique(values, return_counts=True)
    return dict(zip(keys.tolist(), counts.tolist()))


def _closed_by_tags(roads: gpd.GeoDataFrame, mode: str) -> np.ndarray:
    """Rows whose access tags close them to the mode (foot / motor_vehicle = no/private, or
    access = no/private not reopened by the mode's own tag), read straight from the tags."""
    def tag(c):
        return roads[c].astype(object) if c in roads.columns else pd.Series(None, index=roads.index, dtype=object)
    own = tag("foot" if mode == "walk" else "motor_vehicle")
    closed = own.isin(["no", "private"]) | (tag("access").isin(["no", "private"])
                                            & ~own.isin(["yes", "designated", "permissive"]))
    return closed.to_numpy(dtype=bool)


def _inside_rows(roads: gpd.GeoDataFrame, polygon, crs, exclude: set[str], mode: str = "walk") -> np.ndarray:
    """Road rows lying wholly inside the polygon and open to the mode: these must be on any coverage route."""
    rm = _metric(roads, crs)
    pm = _metric(polygon, crs)
    ok = rm.covered_by(shapely.buffer(pm, 0.01)) & ~roads["highway"].isin(exclude) & ~_closed_by_tags(roads, mode)
    return roads.index[ok.to_numpy()].to_numpy()


def _assert_covers(route_line_m: LineString, seg_geoms_m: np.ndarray, where: str) -> None:
    band = shapely.buffer(route_line_m, 1.0)
    shapely.prepare(band)
    outside = ~shapely.covered_by(seg_geoms_m, band)
    assert not outside.any(), f"{where}: {outside.sum()} street segments inside are not within 1 m of the route"


def _assert_continuous_closed(route_line_m: LineString, where: str) -> None:
    xy = np.asarray(route_line_m.coords)
    assert np.hypot(*(xy[0] - xy[-1])) < 1e-6, f"{where}: route does not return to its start"


def test_walking_routes_cover_every_street_with_gap_zero(city):
    name, roads, pieces = city
    exact = connected = solved = 0
    for label, poly in pieces:
        try:
            plan = plan_coverage(roads, poly, mode="walk", name=label, time_limit_s=4)
        except InputError as exc:
            # Pieces of a district outside the streets of the extract: a clear error, nothing else.
            assert "no walkable streets" in str(exc)
            continue
        solved += 1
        net = plan.network
        route = plan.routes[0]
        crs = net.crs
        must = _inside_rows(roads, poly, crs, {"motorway", "motorway_link", "construction", "proposed"})
        unreachable = set(net.edge_row[plan.unreachable_edges].tolist())
        must = np.array([r for r in must if r not in unreachable])
        if len(must):
            _assert_covers(route.geometry, _metric(roads.loc[must], crs).geometry.to_numpy(), label)
        _assert_continuous_closed(route.geometry, label)
        bound = independent_walk_bound(roads, net.edge_row, net.edge_row[plan.required_edges])
        assert route.length_m >= bound - 1e-6 * bound, f"{label}: route shorter than the lower bound?"
        assert plan.lower_bound_m <= route.length_m + 1e-6
        exact += plan.exact
        if "rpp" not in plan.stats["solver"]:
            # The grid's streets form one piece: the postman optimum is the matching bound.
            assert route.length_m == pytest.approx(bound, rel=1e-9), f"{label}: gap to the independent bound"
            assert plan.exact and plan.gap == pytest.approx(0.0, abs=1e-9)
            connected += 1
        else:
            # Street islands: the rural postman MIP either proves its route optimal or reports its gap.
            assert plan.islands
            assert plan.exact == (plan.stats["solver"]["rpp"] == "optimal")
            if not plan.exact:
                assert plan.gap > 0
    assert solved >= 5 and connected >= 3
    assert exact >= 0.6 * solved, f"only {exact} of {solved} pieces solved exactly"


def test_driving_routes_never_go_the_wrong_way_on_one_way_streets(city):
    name, roads, pieces = city
    # The biggest few pieces (most one-way streets) keep the run short.
    pieces = sorted(pieces, key=lambda p: -int(roads.intersects(p[1]).sum()))[:2]
    one_way_seen = 0
    for label, poly in pieces:
        try:
            plan = plan_coverage(roads, poly, mode="drive", time_limit_s=5, name=label)
        except InputError:
            continue
        net = plan.network
        route = plan.routes[0]
        for t in route.traversals:
            if roads.at[net.edge_row[t.edge], "oneway"]:
                one_way_seen += 1
                assert t.forward, f"{label}: one-way street {net.edge_row[t.edge]} driven backwards"
        must = _inside_rows(roads, poly, net.crs, {"footway", "path", "pedestrian", "steps", "cycleway",
                                                   "bridleway", "corridor", "construction", "proposed"}, "drive")
        unreachable = set(net.edge_row[plan.unreachable_edges].tolist())
        must = np.array([r for r in must if r not in unreachable])
        if len(must):
            _assert_covers(route.geometry, _metric(roads.loc[must], net.crs).geometry.to_numpy(), label)
        _assert_continuous_closed(route.geometry, label)
        assert plan.lower_bound_m <= route.length_m + 1e-6
        und = independent_walk_bound(roads, net.edge_row, net.edge_row[plan.required_edges])
        assert route.length_m >= und - 1e-6 * und  # one-way streets can only make it longer
    assert one_way_seen > 0


def test_driving_direction_is_read_from_the_geometry():
    """A one-way street grid: the route's vertices follow each one-way segment's direction."""
    roads, poly = synthetic_grid(4, one_way_rows=True)
    plan = plan_coverage(roads, poly, mode="drive", start=(104.0005, 30.0005))
    net = plan.network
    line = plan.routes[0].geometry
    xy = np.asarray(line.coords)
    # Every step of the route along an east–west street goes the way that street allows.
    for a, b in zip(xy[:-1], xy[1:]):
        if abs(b[1] - a[1]) < 1e-6 and abs(b[0] - a[0]) > 1:
            row_y = a[1]
            # Row k (from the south) is one-way eastbound when k is even, westbound when odd.
            k = int(round((row_y - net.node_xy[:, 1].min()) / 100.0))
            assert (b[0] > a[0]) == (k % 2 == 0), f"row {k} driven against its one-way direction"
    assert plan.gap <= 0.02


def synthetic_grid(n: int, *, one_way_rows: bool = False, spacing_deg: float = 0.00104):
    """An n × n street lattice near (104.0, 30.0) as a roads layer, and a polygon around it."""
    recs = []
    nid = lambda i, j: 1000 + i * 100 + j  # noqa: E731
    for i in range(n):
        for j in range(n):
            x, y = 104.0 + i * spacing_deg, 30.0 + j * spacing_deg * 0.9
            if i + 1 < n:  # east–west segment on row j
                eastbound = j % 2 == 0
                a, b = (nid(i, j), nid(i + 1, j))
                ga = [(x, y), (x + spacing_deg, y)]
                if one_way_rows and not eastbound:
                    a, b, ga = b, a, ga[::-1]
                recs.append(dict(u=a, v=b, geometry=LineString(ga), oneway=one_way_rows, name=f"东西{j}路",
                                 highway="residential"))
            if j + 1 < n:
                recs.append(dict(u=nid(i, j), v=nid(i, j + 1), geometry=LineString([(x, y), (x, y + spacing_deg * 0.9)]),
                                 oneway=False, name=f"南北{i}街", highway="residential"))
    gdf = gpd.GeoDataFrame(recs, crs=4326)
    gdf["length_m"] = gdf.to_crs(local_metric_crs(104.0, 30.0)).length
    poly = box(104.0 - 0.0002, 30.0 - 0.0002, 104.0 + (n - 1) * spacing_deg + 0.0002, 30.0 + (n - 1) * spacing_deg * 0.9 + 0.0002)
    return gdf, poly


def _busiest(roads, pieces):
    """The piece with the most street segments."""
    return max(pieces, key=lambda p: int(roads.intersects(p[1]).sum()))


def test_several_workers_get_balanced_closed_routes_that_cover_the_grid(city):
    name, roads, pieces = city
    label, poly = _busiest(roads, pieces)
    plan = plan_coverage(roads, poly, mode="walk", workers=3, name=label)
    assert len(plan.routes) == 3
    lengths = [r.length_m for r in plan.routes]
    assert max(lengths) <= 1.10 * np.mean(lengths)
    start_xy = plan.network.node_xy[plan.start_node]
    covered = set()
    for r in plan.routes:
        xy = np.asarray(r.geometry.coords)
        assert np.allclose(xy[0], start_xy) and np.allclose(xy[-1], start_xy), "each route starts and ends at the station"
        covered |= {t.edge for t in r.traversals}
    assert set(plan.required_edges.tolist()) <= covered


def test_straight_preference_makes_fewer_turns_than_networkx_euler_circuit(city):
    name, roads, pieces = city
    label, poly = _busiest(roads, pieces)
    plan = plan_coverage(roads, poly, mode="walk", name=label)
    net, route = plan.network, plan.routes[0]
    # The same multiset of passes, put in order by networkx's Hierholzer (no turn preference).
    M = nx.MultiGraph()
    for k, t in enumerate(route.traversals):
        M.add_edge(int(net.edge_u[t.edge]), int(net.edge_v[t.edge]), key=k, edge=t.edge)
    from gridpatrol.gis.routing.network import Traversal

    theirs = []
    for u, v, k in nx.eulerian_circuit(M, source=plan.start_node, keys=True):
        e = M.edges[u, v, k]["edge"]
        theirs.append(Traversal(e, bool(net.edge_u[e] == u and net.edge_v[e] == v), False))
    t_ours, u_ours = count_turns(net, route.traversals)
    t_nx, u_nx = count_turns(net, theirs)
    assert u_ours <= u_nx
    assert t_ours + u_ours < t_nx + u_nx


def test_start_50_km_away_is_a_clear_error(city):
    name, roads, pieces = city
    label, poly = max(pieces, key=lambda p: p[1].area)
    c = poly.centroid
    with pytest.raises(InputError, match=r"km from the nearest street"):
        plan_coverage(roads, poly, mode="walk", start=(c.x + 0.52, c.y), name=label)


def test_area_without_streets_is_a_clear_error(city):
    name, roads, pieces = city
    far = box(100.0, 20.0, 100.01, 20.01)
    with pytest.raises(InputError, match="no walkable streets"):
        plan_coverage(roads, far, mode="walk", name="empty")
    with pytest.raises(InputError, match="no drivable streets"):
        only_footways = roads[roads["highway"] == "footway"]
        plan_coverage(only_footways, box(*only_footways.total_bounds), mode="drive", name="footways")


def test_street_islands_are_reported_and_covered_or_listed():
    roads, poly = synthetic_grid(3)
    # An island inside the grid reachable only by an outside street, and one not connected at all.
    extra = gpd.GeoDataFrame([
        dict(u=9001, v=9002, geometry=LineString([(104.0010, 30.0004), (104.0012, 30.0006)]), oneway=False,
             name="孤岛路", highway="residential"),
        dict(u=9003, v=9004, geometry=LineString([(104.0015, 30.0012), (104.0016, 30.0014)]), oneway=False,
             name="飞地街", highway="residential"),
        dict(u=1000, v=9003, geometry=LineString([(104.0, 30.0), (103.998, 29.998), (104.0015, 30.0012)]), oneway=False,
             name="外环路", highway="residential"),
    ], crs=4326)
    extra["length_m"] = extra.to_crs(local_metric_crs(104.0, 30.0)).length
    # The outside road runs outside the polygon for most of its length.
    allr = gpd.GeoDataFrame(np.concatenate([roads.to_numpy(), extra[roads.columns].to_numpy()]), columns=roads.columns,
                            geometry="geometry", crs=4326)
    allr["length_m"] = allr["length_m"].astype(float)
    plan = plan_coverage(allr, poly, mode="walk", start=(104.0, 30.0))
    status = sorted(i["status"] for i in plan.islands)
    assert status == ["covered via outside streets", "unreachable"]
    assert any("cannot be reached" in w for w in plan.warnings)
    rows_on_route = {int(plan.network.edge_row[t.edge]) for t in plan.routes[0].traversals}
    island_rows = allr.index[allr["name"] == "飞地街"].tolist()
    lonely_rows = allr.index[allr["name"] == "孤岛路"].tolist()
    assert set(island_rows) <= rows_on_route
    assert not set(lonely_rows) & rows_on_route
    assert plan.lower_bound_m <= plan.length_m


def test_hot_spot_share_counts_incidents_on_streets_left_out():
    roads, poly = synthetic_grid(3)
    lonely = gpd.GeoDataFrame([dict(u=9001, v=9002, geometry=LineString([(104.0010, 30.0004), (104.0012, 30.0006)]),
                                    oneway=False, name="孤岛路", highway="residential", length_m=30.0)], crs=4326)
    allr = gpd.GeoDataFrame(np.concatenate([roads.to_numpy(), lonely[roads.columns].to_numpy()]), columns=roads.columns,
                            geometry="geometry", crs=4326)
    allr["length_m"] = allr["length_m"].astype(float)
    on_grid = gpd.GeoSeries(shapely.points([(104.00052, 30.0), (104.0, 30.00047)]), crs=4326)
    plan = plan_coverage(allr, poly, incidents=on_grid)
    assert plan.stats["hot_covered_share"] < 1.0  # the island's length is not covered
    on_island = gpd.GeoSeries(shapely.points([(104.0011, 30.0005)] * 5), crs=4326)
    plan2 = plan_coverage(allr, poly, incidents=on_island)
    # Five incidents on the uncovered island weigh its length six-fold: the covered share drops.
    assert plan2.stats["hot_covered_share"] < plan.stats["hot_covered_share"]


def test_routes_keep_off_ways_closed_to_the_mode_by_access_tags():
    """Real Chengdu ways tagged foot=no, access=no/private or motorways carry no walking route;
    motor_vehicle=no and footways carry no driving route (neither as grid streets nor deadhead)."""
    roads, pieces = _district_pieces("chengdu")
    no_foot = _closed_by_tags(roads, "walk") | roads["highway"].isin(["motorway", "motorway_link"])
    no_car = _closed_by_tags(roads, "drive") | roads["highway"].isin(["footway", "pedestrian", "steps", "path"])
    assert no_foot.sum() >= 20 and no_car.sum() >= 20  # the extract has such ways
    closed_walk = set(roads.index[np.asarray(no_foot)].tolist())
    closed_drive = set(roads.index[np.asarray(no_car)].tolist())
    by_tag = _closed_by_tags(roads, "walk")
    near_closed = [(label, poly) for label, poly in pieces
                   if roads[by_tag].intersects(shapely.buffer(poly, 0.003)).any()]
    assert near_closed, "no grid near a closed way: the test would prove nothing"
    for mode, closed, tries, limit_s in (("walk", closed_walk, 4, 4), ("drive", closed_drive, 3, 5)):
        seen = 0
        for label, poly in near_closed[:tries]:
            try:
                plan = plan_coverage(roads, poly, mode=mode, name=label, time_limit_s=limit_s)
            except InputError:
                continue
            seen += 1
            assert not set(plan.network.edge_row.tolist()) & closed, f"{label}: the {mode} network holds closed ways"
            used = {int(plan.network.edge_row[t.edge]) for t in plan.routes[0].traversals}
            assert not used & closed, f"{label}: the {mode} route uses a closed way"
        assert seen >= 1, f"no {mode} grid near a closed way could be planned"
    label = near_closed[0][0]
    # Without the access tags the same streets would have been in the walking network.
    bare = roads.drop(columns=["access", "foot", "motor_vehicle"])
    plan_bare = plan_coverage(bare, near_closed[0][1], mode="walk", name=label, time_limit_s=4)
    assert set(plan_bare.network.edge_row.tolist()) & closed_walk


def test_access_tags_open_and_close_ways_per_mode():
    from gridpatrol.gis.streets import allowed

    df = gpd.GeoDataFrame({
        "access": [None, "private", "private", "no", None, "permissive"],
        "foot": [None, None, "yes", None, "no", None],
        "motor_vehicle": [None, None, None, "designated", None, "no"],
    })
    assert allowed(df, "walk").tolist() == [True, False, True, False, False, True]
    assert allowed(df, "drive").tolist() == [True, False, False, True, True, False]


def _matching_by_milp(D: np.ndarray):  # noqa: ANN202
    """The minimum-weight perfect matching of the complete graph with costs D, as scipy's integer
    program (one variable per pair, each point in exactly one pair): its result, optimum in .fun."""
    n = len(D)
    iu = np.triu_indices(n, 1)
    m = len(iu[0])
    A_eq = sparse.coo_matrix((np.ones(2 * m), (np.concatenate(iu), np.tile(np.arange(m), 2))), shape=(n, m))
    return milp(D[iu], constraints=LinearConstraint(A_eq, 1, 1), integrality=np.ones(m), bounds=Bounds(0, 1),
                options={"mip_rel_gap": 0})


def test_blossom_matching_is_the_integer_optimum_and_certifies_it():
    """Edmonds' blossom step against an integer program over all pairs (scipy.milp), on shortest-path
    metrics with many ties, Euclidean points and random symmetric costs."""
    from gridpatrol.gis.routing.blossom import blossom_matching, check_certificate
    from gridpatrol.gis.routing.matching import min_weight_perfect_matching
    from scipy.sparse.csgraph import shortest_path

    rng = np.random.default_rng(7)
    for trial in range(60):
        n = 2 * int(rng.integers(2, 21))
        kind = trial % 3
        if kind == 0:
            A = rng.integers(1, 6, (n, n)) * (rng.random((n, n)) < 0.3)
            A = np.maximum(A, A.T)
            ring = np.zeros((n, n), dtype=np.int64)
            ring[np.arange(n), (np.arange(n) + 1) % n] = 7  # keeps the graph connected
            ring = np.maximum(ring, ring.T)
            G = np.where((A > 0) & (ring > 0), np.minimum(A, ring), np.maximum(A, ring)).astype(float)
            D = shortest_path(G, directed=False)
        elif kind == 1:
            P = rng.random((n, 2)) * 1000
            D = np.hypot(P[:, None, 0] - P[None, :, 0], P[:, None, 1] - P[None, :, 1])
        else:
            R = rng.integers(1, 30, (n, n)).astype(float)
            D = R + R.T
        np.fill_diagonal(D, 0)
        ref = _matching_by_milp(D)
        res = min_weight_perfect_matching(D)
        # Up to 8 points every perfect matching is tried; beyond, the blossom step is certified.
        assert res.method == ("enumeration" if n <= 8 else "blossom") and res.exact
        assert sorted(k for p in res.pairs for k in p) == list(range(n))
        assert res.weight == pytest.approx(ref.fun, rel=1e-9, abs=1e-6), f"trial {trial}"
        assert res.lower_bound <= ref.fun + 1e-6
        # A certificate that does not hold is refused: break the matching and check again.
        C = np.rint(D * 10).astype(np.int64) * 4
        b = blossom_matching(C)
        assert check_certificate(C, b)
        best = b.primal
        worse = b.mate.copy()
        a, c = 0, int(b.mate[0])
        d = next(v for v in range(n) if v not in (a, c))
        e = int(b.mate[d])
        worse[[a, c, d, e]] = [d, e, a, c]
        b.mate = worse
        b.primal = int(C[np.arange(n), worse].sum() // 2)
        if b.primal != best:
            assert not check_certificate(C, b)


def test_matching_costs_too_large_for_micrometre_integers_still_give_the_optimum():
    """Costs that would overflow 64-bit integers in units of 0.1 µm (here up to 7 × 10⁹) are
    matched in a coarser unit: still the integer program's optimum, with a valid bound."""
    from gridpatrol.gis.routing.matching import min_weight_perfect_matching

    rng = np.random.default_rng(11)
    n = 30
    P = rng.random((n, 2)) * 5e9
    D = np.hypot(P[:, None, 0] - P[None, :, 0], P[:, None, 1] - P[None, :, 1])
    ref = _matching_by_milp(D)
    res = min_weight_perfect_matching(D)
    assert sorted(k for p in res.pairs for k in p) == list(range(n))
    assert res.weight == pytest.approx(ref.fun, rel=1e-9)
    assert res.lower_bound <= ref.fun * (1 + 1e-9) and res.exact


def test_a_network_built_once_gives_the_same_routes_as_the_roads_layer():
    from gridpatrol.gis.streets import street_network

    roads, pieces = _district_pieces("chengdu")
    city = street_network(roads, mode="walk")
    done = 0
    for label, poly in pieces[:8]:
        try:
            a = plan_coverage(roads, poly, mode="walk", name=label, time_limit_s=4)
        except InputError:
            continue
        b = plan_coverage(city, poly, mode="walk", name=label, time_limit_s=4)
        assert sorted(a.network.edge_row[a.required_edges].tolist()) == sorted(b.network.edge_row[b.required_edges].tolist())
        if a.exact and b.exact:
            assert b.length_m == pytest.approx(a.length_m, rel=1e-6), label
        done += 1
    assert done >= 3
    with pytest.raises(InputError, match="built for walk"):
        plan_coverage(city, pieces[0][1], mode="drive")
