"""Benchmark: U-turns of the coverage routes of every drawn Chengdu grid, against a baseline ordering.

Grids: Chengdu's grids as `gridpatrol demo` draws them (``routes.chengdu_drawn_grids``; or the
grids and roads of a GeoPackage store given with ``--store``), each planned walking and driving
with one worker (``plan_coverage`` on the city's street network, built once per mode). Each
route's passes are then put in order again by the baseline: ``euler_circuit`` of
``gis/routing/circuit.py`` as it is at git revision ``--baseline`` (default ``main``), loaded from
git into this process. Both orders are of the same passes, checked route by route (same passes in
the same directions driving, same streets walking; lengths equal). Prints per mode: U-turns,
routes with any, U-turns per km, at dead ends / elsewhere, their lower bound, routes at the bound,
turns, turn cost, and the time of the ordering step (sum over the grids, best of ``--repeat``).
Run:

    python -m gridpatrol.scripts.bench.uturns [--store chengdu.gpkg] [--modes walk,drive] [--baseline main]
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

from gridpatrol.gis.routing.circuit import euler_circuit
from gridpatrol.gis.routing.coverage import plan_coverage
from gridpatrol.gis.routing.route import make_route
from gridpatrol.gis.streets import street_network
from gridpatrol.scripts.bench.common import timed

ROOT = Path(__file__).resolve().parents[2]


def baseline_circuit(rev: str):  # noqa: ANN201
    """``euler_circuit`` of gis/routing/circuit.py at git revision ``rev``, loaded as a module."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:gis/routing/circuit.py"], check=True,
                         capture_output=True, text=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("baseline_circuit", f.name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    os.unlink(f.name)
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


def measure(mode: str, roads, grids, old_circuit, repeat: int, time_limit_s: float) -> dict:  # noqa: ANN001
    """Figures of the routes ordered now ("after") and by the baseline ("before")."""
    city = street_network(roads, mode=mode)
    directed = mode == "drive"
    tot = {k: Counter() for k in ("before", "after")}
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
        for side, fn in (("before", old_circuit), ("after", euler_circuit)):
            t, (circ, _b) = timed(lambda fn=fn: fn(net, items, plan.start_node, directed, out_b, in_b), repeat)
            r = make_route(net, mode, plan.start_node, circ, req, whole.lower_bound_m)
            if passes(r, directed) != passes(whole, directed) or abs(r.length_m - whole.length_m) > 1e-6:
                raise AssertionError(f"{code} ({mode}): the {side} order changes the passes")
            c = tot[side]
            c["routes"] += 1
            c["with_uturns"] += r.n_uturns > 0
            c["uturns"] += r.n_uturns
            c["dead_end"] += r.n_uturns_dead_end
            c["bound"] += r.uturn_bound
            c["at_bound"] += r.n_uturns == r.uturn_bound
            c["turns"] += r.n_turns
            c["turn_cost"] += r.n_turns + 2 * r.n_uturns
            c["km"] += r.length_m / 1000
            c["order_s"] += t
        tot["after"]["plan_s"] += plan.stats["runtime_s"]
    return tot


def table(results: dict[str, dict]) -> str:
    lines = ["| mode | order | routes | U-turns | routes with any | per km | at dead ends | elsewhere | bound | "
             "routes at bound | turns | turn cost | length km | ordering s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, tot in results.items():
        for side, c in tot.items():
            lines.append(
                f"| {mode} | {side} | {c['routes']} | {c['uturns']} | {c['with_uturns']} | "
                f"{c['uturns'] / c['km']:.2f} | {c['dead_end']} | {c['uturns'] - c['dead_end']} | {c['bound']} | "
                f"{c['at_bound']} | {c['turns']} | {c['turn_cost']} | {c['km']:.3f} | {c['order_s']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", help="GeoPackage store with the grids (newest plan) and roads; default: draw them")
    ap.add_argument("--modes", default="walk,drive")
    ap.add_argument("--baseline", default="main", help="git revision of the baseline circuit.py")
    ap.add_argument("--repeat", type=int, default=1, help="time each ordering this many times, keep the best")
    ap.add_argument("--drive-time-limit", type=float, default=10.0, help="seconds per grid for driving (the demo's)")
    args = ap.parse_args()
    old = baseline_circuit(args.baseline)
    roads, grids = grids_and_roads(args.store)
    print(f"{len(grids)} grids; baseline circuit.py at {args.baseline}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {sys.version.split()[0]}", flush=True)
    results = {m: measure(m, roads, grids, old, args.repeat, args.drive_time_limit) for m in args.modes.split(",")}
    print(table(results))
    for mode, tot in results.items():
        print(f"{mode}: planning {tot['after']['plan_s']:.1f} s in all, {tot['after']['failed']} grid(s) without a route")


if __name__ == "__main__":
    main()
