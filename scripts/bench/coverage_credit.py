"""Coverage credit against the truth: the assessment's covered share of simulated walks minus the share truly walked.

Walks along the planned routes of grids T01 and T03 on Chengdu's streets: whole walks, half walks, and
out-and-back walks (the first 40 % of the route, then back the same way); noise σ 10/20/30/40 m, a fix
every 5/15/30 s (±20 %), two 60 s gaps. Each walk is assessed twice in the same run: the named baseline
(``HmmMatcher`` without the planned route: ``assess`` with grids that carry no shift routes) and the
assessment as a report runs it (the grid's shift route given, ``assess`` passes it to the matcher).
Prints per (σ, every, walk) the mean and worst error (points) and how many walks are over 5 points.
Run: nice -n 10 python -m gridpatrol.scripts.bench.coverage_credit [--store GPKG] [--seeds 1 2] [--jobs 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import shapely

GRIDS = {"T01": (104.071, 30.667, 104.078, 30.672), "T03": (104.071, 30.672, 104.078, 30.677)}
SIGMAS = (10, 20, 30, 40)
EVERY = (5, 15, 30)
WALKS = ("whole", "half", "out-back")
_CTX: dict = {}


def _store(path: str | None):
    from gridpatrol.layers.importing import import_osm
    from gridpatrol.layers.routes import Target, plan_routes
    from gridpatrol.layers.store import open_store

    if path and Path(path).exists():
        return open_store(f"gpkg:///{path}")
    p = Path(path) if path else Path(tempfile.mkdtemp(prefix="bench-credit-")) / "s.gpkg"
    s = open_store(f"gpkg:///{p}")
    root = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    import_osm(s, Path(os.environ.get("GRIDPATROL_DATA", root)) / "chengdu" / "chengdu.osm")
    plan_routes(s, [Target(c, shapely.box(*b)) for c, b in GRIDS.items()], mode="walk")
    return s


def _setup(store_path: str | None) -> None:
    from gridpatrol.gis.streets import street_network
    from gridpatrol.layers.routes import read_routes

    store = _store(store_path)
    net = street_network(store.read_layer("roads", bbox=(104.06, 30.657, 104.095, 30.687)), mode="walk")
    tf = net.transformer()
    metric = lambda g: shapely.transform(g, lambda xy: np.column_stack(tf.transform(xy[:, 0], xy[:, 1])))  # noqa: E731
    _CTX.update(net=net, lines={c: metric(read_routes(store, c, mode="walk").geometry.iloc[0]) for c in GRIDS},
                polys={c: metric(shapely.box(*b)) for c, b in GRIDS.items()})


def walk_line(line, kind: str):  # noqa: ANN001, ANN201
    """The line walked: the whole route, its first half, or its first 40 % and back the same way."""
    from shapely.ops import substring

    if kind == "whole":
        return line
    if kind == "half":
        return substring(line, 0.0, 0.5 * line.length)
    out = np.asarray(substring(line, 0.0, 0.4 * line.length).coords)
    return shapely.LineString(np.vstack([out, out[-2::-1]]))


def truth_share(net, poly, truth) -> float:  # noqa: ANN001
    """Independent of the matcher: the grid's streets within 3 m of the line truly walked."""
    from gridpatrol.gis.routing.area import required_mask

    g = net.edge_geom[required_mask(net, poly)]
    walked = shapely.length(shapely.intersection(g, truth.buffer(3.0)))
    return float(np.minimum(walked, shapely.length(g)).sum() / shapely.length(g).sum())


def one(case: tuple) -> tuple:
    from gridpatrol.gis.assessment import GridInput, TrackInput, assess
    from gridpatrol.gis.tracksim import simulate_walk

    code, sigma, every, kind, seed = case
    net, line, poly = _CTX["net"], _CTX["lines"][code], _CTX["polys"][code]
    w = simulate_walk(walk_line(line, kind), sigma_m=sigma, every_s=every, gaps=2, gap_s=60,
                      seed=seed * 100_000 + sigma * 1000 + every * 10 + WALKS.index(kind) + (50 if code == "T03" else 0))
    truth = truth_share(net, poly, w.truth)
    tr = [TrackInput(1, w.x, w.y, w.t, [])]
    base = assess(net, [GridInput(code, poly)], tr)["grids"][0]["covered_share"]
    new = assess(net, [GridInput(code, poly, shifts={1: (1, line)})], tr)["grids"][0]["covered_share"]
    return case + (truth, base, new)


def error_summary(err: np.ndarray) -> tuple[float, float, int]:
    """(mean |error|, the error farthest from 0 with its sign, walks more than 5 points off) of errors in points."""
    return float(np.abs(err).mean()), float(err[np.argmax(np.abs(err))]), int((np.abs(err) > 5).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", help="a GeoPackage with Chengdu's streets and the routes of T01 and T03 (made there if missing)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--sigmas", type=int, nargs="+", default=list(SIGMAS))
    args = ap.parse_args()
    _setup(args.store)
    cases = [(c, s, e, k, seed) for seed in args.seeds for c in GRIDS for s in args.sigmas for e in EVERY for k in WALKS]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, initializer=_setup, initargs=(args.store,)) as ex:
            rows = list(ex.map(one, cases))
    else:
        rows = [one(c) for c in cases]
    print(f"{len(rows)} walks (seeds {args.seeds}, routes of {', '.join(GRIDS)}); error = reported − true share, points")
    print(f"{'sigma':>5} {'every':>5} {'walk':>8} | {'base mean|e|':>12} {'worst':>6} {'>5':>3} | "
          f"{'plan mean|e|':>12} {'worst':>6} {'>5':>3}")
    for s in args.sigmas:
        for e in EVERY:
            for k in WALKS:
                sel = [r for r in rows if r[1] == s and r[2] == e and r[3] == k]
                mb, wb, ob = error_summary(np.array([100 * (r[6] - r[5]) for r in sel]))
                mn, wn, on = error_summary(np.array([100 * (r[7] - r[5]) for r in sel]))
                print(f"{s:5d} {e:5d} {k:>8} | {mb:12.2f} {wb:+6.1f} {ob:3d} | {mn:12.2f} {wn:+6.1f} {on:3d}")
    mb, wb, ob = error_summary(np.array([100 * (r[6] - r[5]) for r in rows]))
    mn, wn, on = error_summary(np.array([100 * (r[7] - r[5]) for r in rows]))
    print(f"all: base mean|e| {mb:.2f} worst {wb:+.1f} over 5: {ob}; plan mean|e| {mn:.2f} worst {wn:+.1f} over 5: {on}")
    if os.environ.get("CREDIT_ROWS"):
        import json

        Path(os.environ["CREDIT_ROWS"]).write_text(json.dumps(rows))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
