"""U-turns of coverage routes, checked against computations made here, not by gis.routing.

- Small pieces of Chengdu's real streets, walking and driving: every order of the route's own
  passes (every Euler circuit: at each node every pairing of arrivals with departures that makes
  one closed walk) is tried, and the route makes the fewest U-turns any of them makes, never
  fewer than its stated lower bound.
- Every grid of 锦江区 as our partitioner draws it: along each route, the places where the heading
  turns round (150° or more, from the street geometry) are counted, and those where only one
  street ends (a dead end, from the coordinates of every street of the city); the route's figures
  say the same, and the U-turns are never fewer than the bound.
"""
from __future__ import annotations

import itertools
import shutil
from collections import defaultdict

import numpy as np
import pytest
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.osm import read_osm
from gridpatrol.gis.routing.coverage import plan_coverage
from gridpatrol.gis.streets import street_network
from gridpatrol.layers.grids import read_grids
from gridpatrol.layers.store import open_store
from shapely.geometry import box

from tests.cached_stores import jinjiang_district_seed1, jinjiang_inputs
from tests.conftest import data_path
from tests.store_cache import cached_gpkg
from tests.union_find import components

ENUMERATE_UP_TO = 100_000  # transition systems per route tried exhaustively
UTURN = 30.0  # leaving along two ways within 30° of each other is turning round (a change of ≥ 150°)


def _heading(p: np.ndarray, q: np.ndarray) -> float:
    d = q - p
    return float(np.degrees(np.arctan2(d[0], d[1])))


def leave_headings(xy: np.ndarray) -> tuple[float, float]:
    """Heading leaving the line's first point along it, and leaving its last point back along it
    (the nearest vertex apart from the end, so a repeated point does not count)."""
    a = next((p for p in xy[1:] if np.hypot(*(p - xy[0])) > 1e-9), xy[-1])
    b = next((p for p in xy[-2::-1] if np.hypot(*(p - xy[-1])) > 1e-9), xy[0])
    return _heading(xy[0], a), _heading(xy[-1], b)


def is_uturn(h_arrived_along: float, h_leave: float) -> bool:
    """Arriving along a way (``h_arrived_along``: heading leaving the node that way) and leaving by one
    heading within 30° of it is a U-turn."""
    return abs((h_leave - h_arrived_along + 180.0) % 360.0 - 180.0) <= UTURN


def node_pairings(net, traversals, directed: bool) -> tuple[list[int], list[list]]:
    """The nodes where the passes ``traversals`` end, and at each every pairing of the ends there as
    [(arrival end, departure end)] (walking: any two ends pair); an end is (item, heading leaving the
    node along it, whether the pass as given arrives by it)."""
    ends: dict[int, list[tuple[int, float, bool]]] = defaultdict(list)  # node → (item, heading, walk arrives by it)
    for i, t in enumerate(traversals):
        xy = np.asarray(net.edge_geom[t.edge].coords)
        h_u, h_v = leave_headings(xy)
        u, v = int(net.edge_u[t.edge]), int(net.edge_v[t.edge])
        ends[u].append((i, h_u, not t.forward))
        ends[v].append((i, h_v, t.forward))
    choices = []  # per node: every pairing as [(arrival end, departure end)]
    for x, es in ends.items():
        if directed:
            ins = [e for e in es if e[2]]
            outs = [e for e in es if not e[2]]
            choices.append([list(zip(ins, p)) for p in itertools.permutations(outs)])
        else:
            choices.append(list(_pairings(es)))
    return list(ends), choices


def closed_walks(nodes: list[int], choices: list[list], n: int, start: int):  # noqa: ANN201
    """(U-turns, transition system) of every closed walk from ``start`` over the n passes: every choice
    of a pairing at each node that joins the passes into one circuit."""
    starts = [k for k, x in enumerate(nodes) if x == start]
    for system in itertools.product(*choices):
        if len(components(n, [(i, j) for pairs in system for (i, _h, _a), (j, _g, _b) in pairs])) != 1:
            continue
        u = [sum(is_uturn(a[1], b[1]) for a, b in pairs) for pairs in system]
        yield sum(u) - any(u[k] for k in starts), system  # the walk begins and ends at the start


def fewest_uturns_brute_force(net, traversals, start: int, directed: bool) -> int | None:
    """Fewest U-turns of any closed walk from ``start`` over the passes ``traversals`` (walking:
    either way along each), trying every transition system; None when there are too many."""
    nodes, choices = node_pairings(net, traversals, directed)
    if np.prod([float(len(c)) for c in choices]) > ENUMERATE_UP_TO:
        return None
    return min((u for u, _system in closed_walks(nodes, choices, len(traversals), start)), default=None)


@pytest.fixture(scope="module")
def chengdu_roads():
    return read_osm(data_path("chengdu", "chengdu.osm")).roads


def small_pieces(roads, size_deg: float, n: int):
    """n × n squares of ``size_deg`` spread over the extract (deterministic)."""
    x0, y0, x1, y1 = roads.total_bounds
    xs = np.linspace(x0 + 0.2 * (x1 - x0), x1 - 0.2 * (x1 - x0), n)
    ys = np.linspace(y0 + 0.2 * (y1 - y0), y1 - 0.2 * (y1 - y0), n)
    return [(f"{x:.4f},{y:.4f}", box(x, y, x + size_deg, y + size_deg)) for x in xs for y in ys]


@pytest.fixture(scope="module")
def small_routes(chengdu_roads):  # noqa: ANN001, ANN201
    """``small_routes(mode)``: (where, plan, fewest U-turns by brute force) for each small Chengdu piece
    whose route the brute force can settle; planned and brute-forced once per mode for every test here."""
    cache: dict[str, list] = {}

    def get(mode: str) -> list:
        if mode not in cache:
            city = street_network(chengdu_roads, mode=mode)
            cache[mode] = []
            for label, poly in small_pieces(chengdu_roads, 0.0025, 9):
                try:
                    plan = plan_coverage(city, poly, mode=mode, name=label, time_limit_s=5)
                except InputError:
                    continue  # no streets there
                fewest = fewest_uturns_brute_force(plan.network, plan.routes[0].traversals, plan.start_node,
                                                   mode == "drive")
                if fewest is not None:
                    cache[mode].append((f"{mode} {label}", plan, fewest))
        return cache[mode]

    return get


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_route_makes_the_fewest_uturns_of_any_order_of_its_passes(small_routes, mode):
    checked = with_uturns = 0
    for where, plan, fewest in small_routes(mode):
        route = plan.routes[0]
        assert route.uturn_bound <= fewest, f"{where}: bound {route.uturn_bound} above the fewest {fewest}"
        assert route.n_uturns == fewest, f"{where}: {route.n_uturns} U-turns where {fewest} do"
        assert plan.stats["uturn_bound"] == route.uturn_bound and plan.stats["uturns"] == route.n_uturns
        checked += 1
        with_uturns += fewest > 0
    # Enough routes were tried, and many of them must turn round somewhere.
    assert checked >= 20 and with_uturns >= 10, (checked, with_uturns)


@pytest.fixture(scope="module")
def jinjiang(tmp_path_factory):
    path = tmp_path_factory.mktemp("jinjiang") / "grids.gpkg"
    shutil.copyfile(cached_gpkg("jinjiang-district-seed1", jinjiang_district_seed1, jinjiang_inputs()), path)
    store = open_store(f"gpkg:///{path}")
    try:
        grids = read_grids(store, None)
        roads = store.read_layer("roads")
    finally:
        store.dispose()
    return roads, list(zip(grids["code"].astype(str), grids.geometry))


def turnarounds(net, traversals) -> list[np.ndarray]:
    """Where the route turns round (metric coordinates), from the street geometry alone."""
    out = []
    for t0, t1 in zip(traversals[:-1], traversals[1:]):
        a = np.asarray(net.edge_geom[t0.edge].coords)
        b = np.asarray(net.edge_geom[t1.edge].coords)
        a, b = (a if t0.forward else a[::-1]), (b if t1.forward else b[::-1])
        back_along_a = leave_headings(a)[1]  # heading leaving the junction back along the way arrived by
        if is_uturn(back_along_a, leave_headings(b)[0]):
            out.append(a[-1])
    return out


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_uturns_of_every_jinjiang_route_against_the_geometry(jinjiang, mode):
    roads, grids = jinjiang
    city = street_network(roads, mode=mode)
    # How many streets of the city end at each point (both ends of every street, to the centimetre).
    ends = np.vstack([np.asarray(g.coords)[[0, -1]] for g in city.edge_geom])
    keys, counts = np.unique(np.round(ends, 2), axis=0, return_counts=True)
    streets_ending = {tuple(k): int(c) for k, c in zip(keys.tolist(), counts.tolist())}
    total = dead_total = routes = 0
    for code, poly in grids:
        where = f"{mode} grid {code}"
        try:
            plan = plan_coverage(city, poly, mode=mode, name=code, time_limit_s=5)
        except InputError:
            continue
        for route in plan.routes:
            spots = turnarounds(plan.network, route.traversals)
            dead = sum(streets_ending[tuple(np.round(p, 2).tolist())] == 1 for p in spots)
            assert route.n_uturns == len(spots), f"{where}: {route.n_uturns} U-turns stated, {len(spots)} made"
            assert route.n_uturns_dead_end == dead, f"{where}: {route.n_uturns_dead_end} at dead ends stated, {dead}"
            assert route.n_uturns >= route.uturn_bound, where
            # Every pass into a dead end is a U-turn out of it (but where the route begins and ends).
            assert route.uturn_bound >= dead - 1, where
            assert plan.stats["uturns_other"] == route.n_uturns - dead, where
            assert plan.stats["uturns_per_km"] == pytest.approx(len(spots) / (route.length_m / 1000)), where
            total += len(spots)
            dead_total += dead
            routes += 1
    assert routes >= 10 and dead_total > 0 and total > dead_total, (routes, total, dead_total)


def test_nodes_with_many_ends_pair_for_the_fewest_uturns():
    """A node with more ends than are enumerated (10 or 12 passes along 2–4 streets) is paired by
    the matching: its U-turns are the fewest of every pairing, tried here, and so are the bounds."""
    from gridpatrol.gis.routing.circuit import _pair_ends

    rng = np.random.default_rng(0)
    for _ in range(40):
        n = int(rng.choice([10, 12]))
        streets = rng.uniform(0, 360, rng.integers(2, 5))
        lb = (rng.choice(streets, n) + rng.normal(0, 3, n)) % 360  # heading leaving the node along each pass
        at_start = bool(rng.integers(0, 2))
        pairs, turn_bound, u_bound = _pair_ends(lb, np.arange(n), None, at_start)
        fewest, least_cost = None, None
        for p in _pairings(list(range(n))):
            dev = [abs((lb[b] - lb[a]) % 360 - 180) for a, b in p]
            u = sum(d >= 150 for d in dev)
            cost = [0 if d < 30 else 1 if d < 150 else 2 for d in dev]
            u, c = u - (at_start and u > 0), sum(cost) - (max(cost) if at_start else 0)
            fewest = u if fewest is None else min(fewest, u)
            least_cost = c if least_cost is None else min(least_cost, c)
        made = sum(abs((lb[b] - lb[a]) % 360 - 180) >= 150 for a, b in pairs)
        assert made - (at_start and made > 0) == fewest == u_bound
        assert turn_bound <= least_cost


def _pairings(rest: list):  # noqa: ANN202
    """Every way of pairing off the items of rest (an even number), as lists of pairs."""
    if not rest:
        yield []
        return
    for k in range(1, len(rest)):
        for tail in _pairings(rest[1:k] + rest[k + 1:]):
            yield [(rest[0], rest[k]), *tail]


def _closed_at(net, traversals, start: int) -> bool:
    """Whether the passes make one walk from ``start`` back to it."""
    at = start
    for t in traversals:
        a, b = int(net.edge_u[t.edge]), int(net.edge_v[t.edge])
        a, b = (a, b) if t.forward else (b, a)
        if a != at:
            return False
        at = b
    return at == start


def _pass_counts(route, directed: bool) -> dict:
    out: dict = defaultdict(int)
    for t in route.traversals:
        out[(t.edge, t.forward) if directed else t.edge] += 1
    return dict(out)


@pytest.mark.parametrize("mode", ["walk", "drive"])
@pytest.mark.parametrize("data", ["chengdu", "lumpy"])
def test_every_shift_is_ordered_for_its_fewest_uturns_at_the_same_length(chengdu_roads, data, mode):
    """Each shift (plan_coverage's max_minutes) is its own closed walk from the station: its passes
    are those the cut gave it (same length), every required street is still covered, and they are
    ordered for the fewest U-turns any order of them makes (brute force where small enough); the
    shifts as cut never turn round less (on the lumpy streets, more)."""
    from gridpatrol.gis.routing.router import Router
    from gridpatrol.gis.routing.shifts import cut_into_shifts, edge_speed_mps
    from gridpatrol.gis.synth_streets import lumpy_streets

    if data == "chengdu":
        roads, areas = chengdu_roads, small_pieces(chengdu_roads, 0.0025, 9)
        minutes = 10.0 if mode == "walk" else 2.0
    else:
        roads, areas = lumpy_streets()
        minutes = 30.0 if mode == "walk" else 4.0
    directed = mode == "drive"
    city = street_network(roads, mode=mode)
    n_shifts = brute = fewer = 0
    u_before = u_after = 0
    for label, poly in areas:
        where = f"{data} {mode} {label}"
        try:
            whole_plan = plan_coverage(city, poly, mode=mode, name=label, time_limit_s=5)
            plan = plan_coverage(city, poly, mode=mode, name=label, time_limit_s=5, max_minutes=minutes)
        except InputError:
            continue  # no streets there, or a street farther than the limit allows
        net, req = plan.network, set(plan.required_edges.tolist())
        for k, r in enumerate(plan.routes):
            assert _closed_at(net, r.traversals, plan.start_node), f"{where} shift {k + 1} is not closed at the station"
            assert r.uturn_bound <= r.n_uturns, where
            fewest = fewest_uturns_brute_force(net, r.traversals, plan.start_node, directed)
            if fewest is not None:
                assert r.n_uturns == fewest, f"{where} shift {k + 1}: {r.n_uturns} U-turns where {fewest} do"
                brute += 1
        assert req <= {t.edge for r in plan.routes for t in r.traversals}, f"{where}: a required street is left out"
        # The same cut of the same whole route, shifts as cut and ordered again.
        whole = whole_plan.routes[0]
        wnet = whole_plan.network
        edge_s = wnet.edge_length_m / edge_speed_mps(wnet, mode)
        router = Router(wnet, directed)
        cuts = [cut_into_shifts(wnet, router, whole, whole_plan.required_edges, minutes * 60, edge_s, reorder=o)[0]
                for o in (False, True)]
        for k, (a, b) in enumerate(zip(*cuts)):
            assert _pass_counts(a, directed) == _pass_counts(b, directed), f"{where} shift {k + 1}: other passes"
            assert b.length_m == pytest.approx(a.length_m, abs=1e-6), where
            assert _closed_at(wnet, b.traversals, whole_plan.start_node), where
            assert b.n_uturns <= a.n_uturns, f"{where} shift {k + 1}: {b.n_uturns} U-turns, {a.n_uturns} as cut"
            u_before, u_after = u_before + a.n_uturns, u_after + b.n_uturns
            fewer += b.n_uturns < a.n_uturns
            n_shifts += 1
    assert n_shifts >= 10 and brute >= 5, (n_shifts, brute)
    assert u_after <= u_before
    if data == "lumpy" and mode == "walk":  # there the cut leaves U-turns that ordering each shift takes out
        assert fewer >= 1 and u_after < u_before, (u_before, u_after)


def _exact_of_shuffled(net, traversals, start: int, directed: bool, seed: int = 0):  # noqa: ANN202
    """circuit_exact.fewest_uturns over the passes given in a shuffled order, without a hint."""
    import random

    from gridpatrol.gis.routing.circuit import pass_ends
    from gridpatrol.gis.routing.circuit_exact import fewest_uturns

    items = list(traversals)
    random.Random(seed).shuffle(items)
    out_b, in_b = net.bearings()
    return fewest_uturns(items, *pass_ends(net, items, directed, out_b, in_b), start)


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_exact_search_proves_the_fewest_uturns_of_every_order(small_routes, mode):
    """The exact search (CP-SAT over the route's Euler circuits), given a route's passes shuffled
    and no order to start from, proves the fewest U-turns that trying every order here finds, and
    the order it returns is one closed walk over the same passes making exactly that many."""
    from gridpatrol.gis.routing.route import make_route

    directed = mode == "drive"
    checked = with_uturns = 0
    for where, plan, fewest in small_routes(mode):
        net, route = plan.network, plan.routes[0]
        exact = _exact_of_shuffled(net, route.traversals, plan.start_node, directed)
        assert exact.optimal and exact.uturns == exact.lower_bound == fewest, f"{where}: {exact}, brute force {fewest}"
        made = make_route(net, mode, plan.start_node, exact.circuit, set(), 0.0)
        assert _closed_at(net, made.traversals, plan.start_node), where
        assert _pass_counts(made, directed) == _pass_counts(route, directed), where
        assert made.n_uturns == fewest, f"{where}: the exact order makes {made.n_uturns}, not {fewest}"
        checked += 1
        with_uturns += fewest > 0
    assert checked >= 20 and with_uturns >= 10, (checked, with_uturns)


def test_exact_order_on_a_one_way_lattice_is_never_worse_at_the_same_length():
    """On generated lattices where most streets are one-way, driving: the exact order of every route
    is one closed walk over the same passes (same length) and never turns round more than the order
    found node by node; where that order is above the node bound, the exact search proves (and the
    brute force here confirms where it can) that no order does better, and the planned route states
    that proven bound."""
    from gridpatrol.gis.routing.circuit import euler_circuit, turn_bounds
    from gridpatrol.gis.routing.route import make_route
    from gridpatrol.gis.synth_streets import lumpy_streets

    routes = above = brute = 0
    for share, seed in ((0.6, 3), (0.6, 4), (0.8, 2), (0.8, 10)):
        roads, tiles = lumpy_streets(seed=seed, side=12, tiles=3, oneway_share=share)
        city = street_network(roads, mode="drive")
        for code, poly in tiles:
            where = f"one-way share {share} seed {seed} {code}"
            try:
                plan = plan_coverage(city, poly, mode="drive", name=code, time_limit_s=2)
            except InputError:
                continue
            net, route, start = plan.network, plan.routes[0], plan.start_node
            out_b, in_b = net.bearings()
            node_wise, _ = euler_circuit(net, route.traversals, start, True, out_b, in_b, exact_work=0)
            current = make_route(net, "drive", start, node_wise, set(), 0.0)
            exact = _exact_of_shuffled(net, route.traversals, start, True, seed)
            made = make_route(net, "drive", start, exact.circuit, set(), 0.0)
            assert _closed_at(net, made.traversals, start), where
            assert _pass_counts(made, True) == _pass_counts(current, True), where
            assert made.length_m == pytest.approx(current.length_m, abs=1e-6), where
            assert exact.optimal and made.n_uturns == exact.uturns <= current.n_uturns, (where, exact, current.n_uturns)
            node_bound = turn_bounds(net, route.traversals, start, True).uturns
            assert node_bound <= exact.lower_bound, where
            assert route.n_uturns == exact.uturns, where  # the planned route makes the fewest
            if current.n_uturns > node_bound:
                above += 1
                assert route.uturn_bound == exact.uturns > node_bound, f"{where}: the proven bound is not stated"
                fewest = fewest_uturns_brute_force(net, route.traversals, start, True)
                if fewest is not None:
                    assert fewest == exact.uturns, where
                    brute += 1
            routes += 1
    assert routes >= 20 and above >= 3 and brute >= 2, (routes, above, brute)


def test_exact_search_takes_out_the_uturns_a_cut_leaves():
    """Walking shifts of the lumpy streets as cut from the whole route (not ordered again) turn round
    more than they must: the exact search, starting from that order, returns a closed walk over the
    same passes with the fewest U-turns (brute force where it can), fewer than as cut somewhere."""
    from gridpatrol.gis.routing.circuit import pass_ends
    from gridpatrol.gis.routing.circuit_exact import fewest_uturns
    from gridpatrol.gis.routing.route import make_route
    from gridpatrol.gis.routing.router import Router
    from gridpatrol.gis.routing.shifts import cut_into_shifts, edge_speed_mps
    from gridpatrol.gis.synth_streets import lumpy_streets

    roads, tiles = lumpy_streets()
    city = street_network(roads, mode="walk")
    shifts = fewer = brute = 0
    for code, poly in tiles:
        plan = plan_coverage(city, poly, mode="walk", name=code)
        net, start = plan.network, plan.start_node
        edge_s = net.edge_length_m / edge_speed_mps(net, "walk")
        try:
            cut, _ = cut_into_shifts(net, Router(net, False), plan.routes[0], plan.required_edges, 30 * 60, edge_s,
                                     reorder=False)
        except InputError:
            continue  # a street farther than half an hour allows
        out_b, in_b = net.bearings()
        for k, r in enumerate(cut):
            where = f"{code} shift {k + 1}"
            exact = fewest_uturns(r.traversals, *pass_ends(net, r.traversals, False, out_b, in_b), start, hint=r.traversals)
            made = make_route(net, "walk", start, exact.circuit, set(), 0.0)
            assert _closed_at(net, made.traversals, start), where
            assert _pass_counts(made, False) == _pass_counts(r, False), where
            assert exact.optimal and made.n_uturns == exact.uturns <= r.n_uturns, (where, exact.uturns, r.n_uturns)
            fewest = fewest_uturns_brute_force(net, r.traversals, start, False)
            if fewest is not None:
                assert fewest == exact.uturns, where
                brute += 1
            fewer += exact.uturns < r.n_uturns
            shifts += 1
    assert shifts >= 20 and fewer >= 1 and brute >= 5, (shifts, fewer, brute)


def _lattice_routes():  # noqa: ANN202
    """(where, network, route, start) of every route of the generated one-way lattices, driving."""
    from gridpatrol.gis.synth_streets import lumpy_streets

    for share, seed in ((0.6, 3), (0.6, 4), (0.8, 2), (0.8, 10)):
        roads, tiles = lumpy_streets(seed=seed, side=12, tiles=3, oneway_share=share)
        city = street_network(roads, mode="drive")
        for code, poly in tiles:
            try:
                plan = plan_coverage(city, poly, mode="drive", name=code, time_limit_s=2)
            except InputError:
                continue
            yield f"one-way share {share} seed {seed} {code}", plan.network, plan.routes[0], plan.start_node


def test_connectivity_bound_lies_between_the_node_bound_and_the_fewest(small_routes):
    """circuit_exact.connectivity_bound (no search) is never above the fewest U-turns any order of a
    route's passes makes (brute force here, else the whole exact search), never below the node
    bound, and on the routes where joining the passes into one circuit forces U-turns beyond the
    node bound, it proves some of them alone."""
    from gridpatrol.gis.routing.circuit import pass_ends, turn_bounds
    from gridpatrol.gis.routing.circuit_exact import connectivity_bound, pairing_costs

    cases = [(where, plan.network, plan.routes[0], plan.start_node, mode == "drive", fewest)
             for mode in ("walk", "drive") for where, plan, fewest in small_routes(mode)]
    for where, net, route, start in _lattice_routes():
        fewest = fewest_uturns_brute_force(net, route.traversals, start, True)
        if fewest is None:
            fewest = _exact_of_shuffled(net, route.traversals, start, True).uturns
        cases.append((where, net, route, start, True, fewest))
    gaps = closed = 0
    for where, net, route, start, directed, fewest in cases:
        out_b, in_b = net.bearings()
        node, lb, is_in = pass_ends(net, route.traversals, directed, out_b, in_b)
        costs = pairing_costs(node, lb, is_in, start)
        assert costs.node_sum == turn_bounds(net, route.traversals, start, directed).uturns, where
        bound = connectivity_bound(node, costs)
        assert costs.node_sum <= bound <= fewest, f"{where}: node bound {costs.node_sum}, bound {bound}, fewest {fewest}"
        gaps += fewest > costs.node_sum
        closed += fewest == bound > costs.node_sum
    assert len(cases) >= 100 and gaps >= 5 and closed >= 5, (len(cases), gaps, closed)


def test_pruned_search_from_the_node_wise_order_proves_what_the_whole_search_does():
    """On the one-way lattices, the exact search as the planner runs it (the node-by-node order as
    hint, the connectivity bound, transitions that cannot help left out) returns one closed walk over
    the same passes making the fewest U-turns that the whole search (``prune=False``) and the brute
    force find, proven."""
    from gridpatrol.gis.routing.circuit import euler_circuit, pass_ends, turn_bounds
    from gridpatrol.gis.routing.circuit_exact import fewest_uturns
    from gridpatrol.gis.routing.route import make_route

    above = 0
    for where, net, route, start in _lattice_routes():
        out_b, in_b = net.bearings()
        node_wise, _ = euler_circuit(net, route.traversals, start, True, out_b, in_b, exact_work=0)
        current = make_route(net, "drive", start, node_wise, set(), 0.0)
        if current.n_uturns <= turn_bounds(net, route.traversals, start, True).uturns:
            continue
        ends = pass_ends(net, node_wise, True, out_b, in_b)
        pruned = fewest_uturns(node_wise, *ends, start, hint=node_wise)
        whole = fewest_uturns(node_wise, *ends, start, hint=node_wise, prune=False)
        made = make_route(net, "drive", start, pruned.circuit, set(), 0.0)
        assert _closed_at(net, made.traversals, start), where
        assert _pass_counts(made, True) == _pass_counts(current, True), where
        assert pruned.optimal and whole.optimal, where
        assert made.n_uturns == pruned.uturns == pruned.lower_bound == whole.uturns, (where, pruned, whole.uturns)
        fewest = fewest_uturns_brute_force(net, route.traversals, start, True)
        assert fewest is None or fewest == pruned.uturns, where
        above += 1
    assert above >= 3, above


def _dearer(nodes: list[int], choices: list[list], start: int) -> dict:
    """How many U-turns more than its node's fewest each transition forces, tried here: at every node
    the fewest of any pairing (at the start one U-turn is not made), and for each transition (arrival
    end, departure end; an end is (item, whether the pass as given arrives by it)) the fewest of the
    pairings holding it, less that."""
    out = {}
    for x, pairings in zip(nodes, choices):
        cost = [sum(is_uturn(a[1], b[1]) for a, b in p) for p in pairings]
        cost = [max(c - 1, 0) if x == start else c for c in cost]
        fewest: dict = {}
        for p, c in zip(pairings, cost):
            for a, b in p:
                key = ((a[0], a[2]), (b[0], b[2]))
                fewest[key] = min(fewest.get(key, c), c)
        out.update({key: c - min(cost) for key, c in fewest.items()})
    return out


def _order_of(system, nodes: list[int], traversals, start: int, directed: bool) -> list:
    """The passes in the order of the transition system ``system`` (one circuit), from ``start``,
    beginning where it turns round there if it does (the route begins and ends instead)."""
    from gridpatrol.gis.routing.network import Traversal

    partner, closing = {}, None
    for x, pairs in zip(nodes, system):
        for a, b in pairs:
            ka, kb = (a[0], a[2]), (b[0], b[2])
            partner[ka] = kb
            if not directed:
                partner[kb] = ka
            if x == start and (closing is None or is_uturn(a[1], b[1])):
                closing = (ka, kb)
    last, (i, flag) = closing
    out = []
    while True:
        t = traversals[i]
        out.append(Traversal(t.edge, flag != t.forward, t.required))  # leaving by the u end is going forwards
        if (i, not flag) == last:
            return out
        i, flag = partner[(i, not flag)]


def _flowers(mode: str, n: int = 400):  # noqa: ANN202
    """(where, network, passes, start) of generated "flowers": 3 to 5 triangular loops (petals,
    X → P → Q → X, one-way driving; walking either way round) leaving and entering one crossing X
    along 2 or 3 street directions (so many ways on from a petal turn round), each petal's streets
    passed once; most have a smaller flower of two petals at one corner (choices of their own, so
    orders of one U-turn more than the fewest exist). The route starts at X or at a petal's corner.
    Joining the petals into one walk takes transitions at X, and often only ones that turn round
    where another pairing there would not."""
    import geopandas as gpd
    import shapely
    from gridpatrol.gis.routing.network import Traversal

    rng = np.random.default_rng(16)
    for k in range(n):
        petals = int(rng.integers(3, 6))
        ways = rng.uniform(0, 360, int(rng.integers(2, 4)))  # the street directions at X
        pts = {0: (402_000.0, 3_392_000.0)}
        segs = []
        for i in range(petals):
            for corner in (1, 2):
                h = np.radians(rng.choice(ways) + rng.normal(0, 8))
                r = rng.uniform(60, 200)
                pts[2 * i + corner] = (pts[0][0] + r * np.sin(h), pts[0][1] + r * np.cos(h))
            segs += [(0, 2 * i + 1), (2 * i + 1, 2 * i + 2), (2 * i + 2, 0)]
        if rng.random() < 0.7:  # a smaller flower of two petals at one corner, of its own choices
            c = int(rng.integers(1, 2 * petals + 1))
            p = pts[c]
            back = np.degrees(np.arctan2(pts[0][0] - p[0], pts[0][1] - p[1]))  # along the street to X
            for j in range(2):
                for corner in (1, 2):
                    h = np.radians(rng.choice([back, rng.uniform(0, 360)]) + rng.normal(0, 8))
                    r = rng.uniform(30, 120)
                    pts[len(pts)] = (p[0] + r * np.sin(h), p[1] + r * np.cos(h))
                segs += [(c, len(pts) - 2), (len(pts) - 2, len(pts) - 1), (len(pts) - 1, c)]
        u = np.array([a for a, _b in segs], dtype=np.int64) + 1
        v = np.array([b for _a, b in segs], dtype=np.int64) + 1
        geoms = shapely.linestrings([[pts[a], pts[b]] for a, b in segs])
        m = len(segs)
        names = np.array([f"花{j}路" for j in range(m)], dtype=object)
        roads = gpd.GeoDataFrame({
            "osm_id": np.arange(1, m + 1, dtype=np.int64), "seq": np.zeros(m, dtype=np.int64), "u": u, "v": v,
            "name": names, "name_zh": names, "name_en": names, "highway": np.full(m, "residential", dtype=object),
            "oneway": np.ones(m, dtype=bool), "length_m": shapely.length(geoms),
        }, geometry=gpd.GeoSeries(geoms, crs="EPSG:32648")).to_crs(4326)
        net = street_network(roads, mode=mode)
        start = int(net.edge_u[0]) if rng.random() < 0.6 else int(net.edge_v[0])
        yield f"{mode} flower {k} ({petals} petals)", net, [Traversal(e, True, True) for e in range(len(net.edge_u))], start


@pytest.mark.parametrize("mode", ["drive", "walk"])
def test_pruned_search_finds_orders_that_need_a_dearer_transition(mode):
    """Where every order with the fewest U-turns makes some transition that is not the cheapest at its
    node (it forces more U-turns there than the node's fewest pairing), the pruned exact search (the
    default), starting from a worse order, still finds that fewest (brute force here) and proves it.

    Generated flowers of one-way loops (``_flowers``), driving and walking; for each, every closed
    walk over its passes is tried here, and the search is started from an order of every U-turn
    count, the fewest included (it must prove it) and the one just above (it leaves the search the
    least room: "tight", where the best orders need a transition as dear as the whole gap above the
    node bound)."""
    from gridpatrol.gis.routing.circuit import pass_ends
    from gridpatrol.gis.routing.circuit_exact import fewest_uturns

    directed = mode == "drive"
    routes = needing = tight = deep = 0
    for where, net, items, start in _flowers(mode):
        nodes, choices = node_pairings(net, items, directed)
        if np.prod([float(len(c)) for c in choices]) > 20_000:
            continue
        dearer = _dearer(nodes, choices, start)
        node_sum = sum(min(max(c - 1, 0) if x == start else c
                           for c in (sum(is_uturn(a[1], b[1]) for a, b in p) for p in pairings))
                       for x, pairings in zip(nodes, choices))
        walks = list(closed_walks(nodes, choices, len(items), start))
        fewest = min(u for u, _s in walks)
        # The least "dearest transition" of any order making the fewest: ≥ 1 when they all need one.
        need = min(max(dearer[(a[0], a[2]), (b[0], b[2])] for pairs in s for a, b in pairs)
                   for u, s in walks if u == fewest)
        hints = {}
        for u, s in walks:
            hints.setdefault(u, s)
        routes += 1
        if need == 0 or len(hints) == 1:
            continue
        needing += 1
        out_b, in_b = net.bearings()
        ends = pass_ends(net, items, directed, out_b, in_b)
        for u, s in sorted(hints.items()):  # from a best order too: the search proves it
            hint = _order_of(s, nodes, items, start, directed)
            assert _closed_at(net, hint, start) and len(turnarounds(net, hint)) == u, where
            exact = fewest_uturns(items, *ends, start, hint=hint)
            assert exact.optimal and exact.uturns == exact.lower_bound == fewest, (
                f"{where}: from an order of {u} U-turns, {exact.uturns} (bound {exact.lower_bound}, "
                f"proven {exact.optimal}) where {fewest} do (node bound {node_sum}; every such order makes a "
                f"transition {need} dearer than its node's fewest)")
            made = exact.circuit
            assert _closed_at(net, made, start), where
            assert len(turnarounds(net, made)) == fewest, where
            tight += u == fewest + 1 and need == fewest - node_sum
            deep += u == fewest + 1 and need == fewest - node_sum >= 2
    # Enough routes whose best orders need a dearer transition, some with the search started just above
    # (and some of those where that transition alone forces two U-turns more than its node's fewest).
    least = (10, 5, 2) if directed else (2, 1, 0)
    assert routes >= 300 and all(a >= b for a, b in zip((needing, tight, deep), least)), (routes, needing, tight, deep)
