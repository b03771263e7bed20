"""Benchmark: U-turns of the coverage routes of every drawn Chengdu grid, against a baseline ordering.

Grids: Chengdu's grids as `gridpatrol demo` draws them (``routes.chengdu_drawn_grids``; or the
grids and roads of a GeoPackage store given with ``--store``), each planned walking and driving
with one worker (``plan_coverage`` on the city's street network, built once per mode). Each
route's passes are then put in order again by the baseline: ``euler_circuit`` of
``gis/routing/circuit.py`` as it is at git revision ``--baseline`` (default ``main``), loaded from
git into this process. Both orders are of the same passes, checked route by route (same passes in
the same directions driving, same streets walking; lengths equal). Prints per mode: U-turns,
routes with any, U-turns per km, at dead ends / elsewhere, their lower bound node by node, routes at
it, the exact fewest (or the best lower bound proven), routes at it, turns, turn cost, and the time
of the ordering step (sum over the grids, best of ``--repeat``).

The exact column is the certificate of ``circuit_exact.fewest_uturns``: for every route (and shift)
whose U-turns are above the node bound, a CP-SAT search over every order of its passes (one closed
walk, the same streets in the same directions) of at most ``--exact-work`` deterministic seconds
gives the fewest U-turns, or a lower bound on them when it stops before proving it; routes at the
node bound are at their fewest already. Both orders of a route share it (the same passes). It is
the whole search (``prune=False``: no connectivity bound, no transitions left out), so it checks
the pruned search the planner runs rather than repeating it. The baseline's own exact search (its
circuit_exact.py, where it has one) orders the "before" routes.

Shifts (``--shift-minutes M``, default 60, and ``--drive-shift-minutes``, default 10; 0 skips them):
every route longer than M minutes (walking 4.5 km/h, driving by road class) is cut into shifts by ``cut_into_shifts`` twice, the shifts as cut
from the whole route ("before") and each shift's passes ordered again ("after"); checked shift by
shift: the same passes and length, closed at the station, and every required street covered.
``--lumpy`` plans the tiles of a generated city with dead ends and one-way streets
(``gridpatrol.gis.synth_streets``) instead of Chengdu's grids.
Run:

    python -m gridpatrol.scripts.bench.uturns [--store chengdu.gpkg | --lumpy] [--modes walk,drive] [--baseline main]
        [--exact-work 20] [--grids N]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from gridpatrol.gis.errors import InputError
from gridpatrol.gis.routing.circuit import euler_circuit, pass_ends, turn_bounds
from gridpatrol.gis.routing.circuit_exact import fewest_uturns
from gridpatrol.gis.routing.coverage import plan_coverage
from gridpatrol.gis.routing.route import make_route
from gridpatrol.gis.routing.router import Router
from gridpatrol.gis.routing.shifts import cut_into_shifts, edge_speed_mps, route_seconds
from gridpatrol.gis.streets import street_network
from gridpatrol.scripts.bench.common import timed

ROOT = Path(__file__).resolve().parents[2]


def load_at(rev: str, path: str, name: str):  # noqa: ANN202
    """The module ``path`` at git revision ``rev`` loaded as ``name`` (None when it is not there)."""
    got = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], capture_output=True, text=True)
    if got.returncode != 0:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(got.stdout)
    spec = importlib.util.spec_from_file_location(name, f.name)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)
    finally:
        os.unlink(f.name)
    return mod


def baseline_circuit(rev: str):  # noqa: ANN201
    """``euler_circuit`` of gis/routing/circuit.py at git revision ``rev``, loaded as a module, with
    circuit_exact.py of the same revision where it has one (its exact search, not this one's)."""
    key = "gridpatrol.gis.routing.circuit_exact"
    ours = sys.modules.get(key)
    exact = load_at(rev, "gis/routing/circuit_exact.py", "baseline_circuit_exact")
    if exact is not None:
        sys.modules[key] = exact  # what the baseline's `from … import fewest_uturns` finds
    try:
        mod = load_at(rev, "gis/routing/circuit.py", "baseline_circuit")
    finally:
        if ours is not None:
            sys.modules[key] = ours
    if mod is None:
        raise SystemExit(f"no gis/routing/circuit.py at {rev}")
    return mod.euler_circuit


def grids_and_roads(store_path: str | None):  # noqa: ANN201
    if store_path is None:
        from gridpatrol.scripts.bench.routes import chengdu_drawn_grids

        roads, grids, _ = chengdu_drawn_grids(1)
        return roads, grids
    from gridpatrol.layers.grids import read_grids
    from gridpatrol.layers.store import open_store

    store = open_store(f"gpkg:///{Path(store_path).resolve()}")
    try:
        grids = read_grids(store, None).sort_values("code")
        roads = store.read_layer("roads")
    finally:
        store.dispose()
    return roads, list(zip(grids["code"].astype(str), grids.geometry))


def passes(route, directed: bool) -> Counter:  # noqa: ANN001
    return Counter((t.edge, t.forward) if directed else t.edge for t in route.traversals)


def check_closed(net, route, start: int, where: str) -> None:  # noqa: ANN001
    """Raise unless ``route`` is one walk from ``start`` back to it."""
    at = start
    for t in route.traversals:
        a, b = (int(net.edge_u[t.edge]), int(net.edge_v[t.edge]))
        a, b = (a, b) if t.forward else (b, a)
        if a != at:
            raise AssertionError(f"{where}: the route jumps from node {at} to {a}")
        at = b
    if at != start:
        raise AssertionError(f"{where}: the route ends at node {at}, not at the station {start}")


def fewest(net, r, start: int, directed: bool, work: float) -> tuple[int, int]:  # noqa: ANN001
    """(node bound, fewest U-turns of any order of route ``r``'s passes or the best lower bound
    proven in ``work`` deterministic seconds; the node bound when the route is at it)."""
    node_bound = turn_bounds(net, r.traversals, start, directed).uturns
    if r.n_uturns <= node_bound:
        return node_bound, node_bound
    out_b, in_b = net.bearings()
    exact = fewest_uturns(r.traversals, *pass_ends(net, r.traversals, directed, out_b, in_b), start,
                          hint=r.traversals, work=work, prune=False)  # the whole search: independent of the pruning
    return node_bound, max(node_bound, min(exact.lower_bound, r.n_uturns))


def add(c: Counter, r, bounds: tuple[int, int]) -> None:  # noqa: ANN001
    node_bound, exact = bounds
    c["routes"] += 1
    c["bound"] += node_bound
    c["at_bound"] += r.n_uturns == node_bound
    c["exact"] += exact
    c["at_exact"] += r.n_uturns == exact
    c["with_uturns"] += r.n_uturns > 0
    c["uturns"] += r.n_uturns
    c["dead_end"] += r.n_uturns_dead_end
    c["turns"] += r.n_turns
    c["turn_cost"] += r.n_turns + 2 * r.n_uturns
    c["km"] += r.length_m / 1000


def measure_shifts(plan, mode: str, max_min: float, tot: dict, work: float) -> None:  # noqa: ANN001
    """Shifts of at most ``max_min`` minutes, cut from the plan's route, before and after ordering each."""
    net, whole, directed = plan.network, plan.routes[0], mode == "drive"
    edge_s = net.edge_length_m / edge_speed_mps(net, mode)
    if route_seconds(whole, edge_s) <= max_min * 60:
        return
    router = Router(net, directed)
    req = plan.required_edges
    cut = {}
    for side, reorder in (("shifts before", False), ("shifts after", True)):
        try:
            t, (shifts, _rep) = timed(lambda r=reorder: cut_into_shifts(net, router, whole, req, max_min * 60,
                                                                        edge_s, reorder=r))
        except InputError:  # a street farther than half the limit: no shifts (the same both ways)
            tot["shifts after"]["too_far"] += reorder
            return
        cut[side] = shifts
        for k, r in enumerate(shifts):
            check_closed(net, r, plan.start_node, f"shift {k + 1} ({mode}, {side})")
        covered = {t.edge for r in shifts for t in r.traversals}
        if not set(req.tolist()) <= covered:
            raise AssertionError(f"{mode}: the shifts ({side}) leave required streets out")
        tot[side]["order_s"] += t
        tot[side]["grids"] += 1
    for a, b in zip(cut["shifts before"], cut["shifts after"]):
        if passes(a, directed) != passes(b, directed) or abs(a.length_m - b.length_m) > 1e-6:
            raise AssertionError(f"{mode}: ordering a shift changed its passes")
        bounds = fewest(net, a if a.n_uturns > b.n_uturns else b, plan.start_node, directed, work)
        add(tot["shifts before"], a, bounds)
        add(tot["shifts after"], b, bounds)


def measure(mode: str, roads, grids, old_circuit, repeat: int, time_limit_s: float,  # noqa: ANN001
            shift_minutes: float = 0.0, work: float = 20.0) -> dict:
    """Figures of the routes ordered now ("after") and by the baseline ("before"), and of their
    shifts as cut and ordered again ("shifts before", "shifts after")."""
    city = street_network(roads, mode=mode)
    directed = mode == "drive"
    tot = {k: Counter() for k in ("before", "after", "shifts before", "shifts after")}
    for code, poly in grids:
        try:
            plan = plan_coverage(city, poly, mode=mode, name=code, time_limit_s=time_limit_s)
        except Exception:  # noqa: BLE001  (grids without streets: the same for both orders)
            tot["after"]["failed"] += 1
            continue
        net, whole = plan.network, plan.routes[0]
        out_b, in_b = net.bearings()
        items = whole.traversals
        req = set(plan.required_edges.tolist())
        ordered, took = {}, {}
        for side, fn in (("before", old_circuit), ("after", euler_circuit)):
            t, (circ, _b) = timed(lambda fn=fn: fn(net, items, plan.start_node, directed, out_b, in_b), repeat)
            took[side] = t
            r = make_route(net, mode, plan.start_node, circ, req, whole.lower_bound_m)
            if passes(r, directed) != passes(whole, directed) or abs(r.length_m - whole.length_m) > 1e-6:
                raise AssertionError(f"{code} ({mode}): the {side} order changes the passes")
            ordered[side] = r
            tot[side]["order_s"] += t
        if max(took.values()) > 1.0:  # where the ordering time goes
            print(f"  {code} {mode}: {len(items)} passes ordered in {took['before']:.2f} s before, "
                  f"{took['after']:.2f} s after", flush=True)
        bounds = fewest(net, max(ordered.values(), key=lambda r: r.n_uturns), plan.start_node, directed, work)
        for side, r in ordered.items():
            add(tot[side], r, bounds)
            if r.n_uturns > bounds[1]:
                print(f"  {code} {mode} {side}: {r.n_uturns} U-turns, node bound {bounds[0]}, proven {bounds[1]}",
                      flush=True)
        tot["after"]["plan_s"] += plan.stats["runtime_s"]
        if shift_minutes > 0:
            measure_shifts(plan, mode, shift_minutes, tot, work)
    return tot


def table(results: dict[str, dict]) -> str:
    lines = ["| mode | order | routes | U-turns | routes with any | per km | at dead ends | elsewhere | node bound | "
             "routes at it | fewest (exact) | routes at it | turns | turn cost | length km | ordering s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, tot in results.items():
        for side, c in tot.items():
            if not c["routes"]:
                continue
            lines.append(
                f"| {mode} | {side} | {c['routes']} | {c['uturns']} | {c['with_uturns']} | "
                f"{c['uturns'] / c['km']:.2f} | {c['dead_end']} | {c['uturns'] - c['dead_end']} | {c['bound']} | "
                f"{c['at_bound']} | {c['exact']} | {c['at_exact']} | {c['turns']} | {c['turn_cost']} | {c['km']:.3f} | {c['order_s']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", help="GeoPackage store with the grids (newest plan) and roads; default: draw them")
    ap.add_argument("--modes", default="walk,drive")
    ap.add_argument("--baseline", default="main", help="git revision of the baseline circuit.py")
    ap.add_argument("--repeat", type=int, default=1, help="time each ordering this many times, keep the best")
    ap.add_argument("--shift-minutes", type=float, default=60.0, help="cut walking routes into shifts of this many minutes")
    ap.add_argument("--drive-shift-minutes", type=float, default=10.0, help="cut driving routes into shifts of this many minutes")
    ap.add_argument("--lumpy", action="store_true", help="a generated lumpy city's tiles instead of Chengdu's grids")
    ap.add_argument("--drive-time-limit", type=float, default=10.0, help="seconds per grid for driving (the demo's)")
    ap.add_argument("--exact-work", type=float, default=20.0,
                    help="CP-SAT deterministic seconds per route for the exact fewest U-turns")
    ap.add_argument("--grids", type=int, default=0, help="only the first N grids (0: all)")
    args = ap.parse_args()
    old = baseline_circuit(args.baseline)
    if args.lumpy:
        from gridpatrol.gis.synth_streets import lumpy_streets

        roads, grids = lumpy_streets()
    else:
        roads, grids = grids_and_roads(args.store)
    if args.grids:
        grids = grids[:args.grids]
    print(f"{len(grids)} grids; baseline circuit.py at {args.baseline}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {sys.version.split()[0]}", flush=True)
    minutes = {"walk": args.shift_minutes, "drive": args.drive_shift_minutes}
    results = {m: measure(m, roads, grids, old, args.repeat, args.drive_time_limit, minutes[m], args.exact_work)
               for m in args.modes.split(",")}
    print(table(results))
    for mode, tot in results.items():
        print(f"{mode}: planning {tot['after']['plan_s']:.1f} s in all, {tot['after']['failed']} grid(s) without a route; "
              f"{tot['shifts after']['grids']} grid(s) cut into {tot['shifts after']['routes']} shifts of at most "
              f"{minutes[mode]:g} min ({tot['shifts after']['too_far']} with a street too far for that)")


if __name__ == "__main__":
    main()
