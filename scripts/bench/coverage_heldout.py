"""The accuracy test's case grid on other seeds: covered share of simulated walks of grid T01's route against the truth.

tests/layers/test_tracks.py assesses walks of T01's planned route (σ 10/20/30 m, a fix every 1/5/15/30 s, whole
and half walks, two 60 s gaps) with seed ``base + 100σ + every`` and base 9000. This runs the same grid for any
bases (9000 is the test's held-out set; 9100, 9200, … were never used to choose anything) and prints per walk the
truth, the reported share, precision and recall of the matched street length, and per base the mean |error|,
the worst error (points) and the walks over 5 points.
Run: nice -n 10 python -m gridpatrol.scripts.bench.coverage_heldout [--store GPKG] [--bases 9000 9100] [--jobs 2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from gridpatrol.scripts.bench import coverage_credit as cc

SIGMAS = (10, 20, 30)
EVERY = (1, 5, 15, 30)
SHARES = (1.0, 0.5)


def one(case: tuple) -> tuple:
    from gridpatrol.gis.assessment import GridInput, TrackInput, assess
    from gridpatrol.gis.mapmatch import HmmMatcher, planned_moves, planned_passes
    from gridpatrol.gis.tracksim import precision_recall, simulate_walk

    base, sigma, every, share = case
    net, line, poly = cc._CTX["net"], cc._CTX["lines"]["T01"], cc._CTX["polys"]["T01"]
    w = simulate_walk(line, sigma_m=sigma, every_s=every, share=share, gaps=2, gap_s=60, seed=base + 100 * sigma + every)
    truth = cc.truth_share(net, poly, w.truth)
    rep = assess(net, [GridInput("T01", poly, shifts={1: (1, line)})], [TrackInput(1, w.x, w.y, w.t, [])], sigma_m=15.0)
    m = HmmMatcher(net, sigma_m=15.0, planned=planned_passes(net, [line]),
                   plan_moves=planned_moves(net, [line])).match(w.x, w.y, w.t)
    p, r, _, _ = precision_recall(m.walked_lines(net), w.truth, net.edge_geom)
    return case + (truth, rep["grids"][0]["covered_share"], p, r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", help="a GeoPackage with Chengdu's streets and the routes of T01 and T03 (made there if missing)")
    ap.add_argument("--bases", type=int, nargs="+", default=[9000])
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    cc._setup(args.store)
    cases = [(b, s, e, sh) for b in args.bases for s in SIGMAS for e in EVERY for sh in SHARES]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, initializer=cc._setup, initargs=(args.store,)) as ex:
            rows = list(ex.map(one, cases))
    else:
        rows = [one(c) for c in cases]
    print(f"{'base':>5} {'sigma':>5} {'every':>5} {'share':>5} {'truth':>6} {'got':>6} {'err':>6} {'prec':>6} {'recall':>6}")
    for b, s, e, sh, truth, got, p, r in rows:
        print(f"{b:5d} {s:5d} {e:5d} {sh:5.1f} {truth:6.3f} {got:6.3f} {100 * (got - truth):+6.1f} {p:6.3f} {r:6.3f}")
    for b in args.bases + ["all"]:
        sel = [r for r in rows if b == "all" or r[0] == b]
        mean, worst, over = cc.error_summary(np.array([100 * (r[5] - r[4]) for r in sel]))
        print(f"base {b}: {len(sel)} walks, mean |e| {mean:.2f}, worst {worst:+.1f}, "
              f"over 5: {over}, precision mean {np.mean([r[6] for r in sel]):.3f} "
              f"min {min(r[6] for r in sel):.3f}, recall mean {np.mean([r[7] for r in sel]):.3f}")
    if os.environ.get("CREDIT_ROWS"):
        Path(os.environ["CREDIT_ROWS"]).write_text(json.dumps(rows))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
