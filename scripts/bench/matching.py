"""Map matching benchmark: our HMM matcher vs leuvenmapmatching vs a naive nearest-street snap.

Simulated walks along a planned route on Chengdu's streets (noise σ 10/20/30 m, a fix every 1/10/30 s,
two 60 s gaps); prints fixes per second, precision/recall of the street length reported walked and the
grid's covered share reported against the truth (points). leuvenmapmatching is an optional bench-only
dependency (``pip install gridpatrol[bench]``); without it its column says so.
Run: nice -n 10 python -m gridpatrol.scripts.bench.matching [--store GPKG] [--quick]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely


def _store(path: str | None):
    from gridpatrol.layers.importing import import_osm
    from gridpatrol.layers.routes import Target, plan_routes
    from gridpatrol.layers.store import open_store

    if path:
        return open_store(f"gpkg:///{path}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-matching-")) / "s.gpkg"
    s = open_store(f"gpkg:///{tmp}")
    import os

    root = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    data = Path(os.environ.get("GRIDPATROL_DATA", root)) / "chengdu" / "chengdu.osm"
    import_osm(s, data)
    plan_routes(s, [Target("T01", shapely.box(104.071, 30.667, 104.078, 30.672))], mode="walk")
    return s


def _leuven(net, w, sigma: float):
    """leuvenmapmatching's DistanceMatcher on the same streets (every edge vertex a node)."""
    from gridpatrol.gis.mapmatch import MatchResult
    from leuvenmapmatching.map.inmem import InMemMap
    from leuvenmapmatching.matcher.distance import DistanceMatcher

    m = InMemMap("bench", use_latlon=False, use_rtree=True, index_edges=True)
    xy, start = net.coords()
    seg_edge = {}
    for e in range(net.n_edges):
        s0, s1 = start[e], start[e + 1]
        for k in range(s0, s1):
            m.add_node(int(k), (float(xy[k, 1]), float(xy[k, 0])))
        for k in range(s0, s1 - 1):
            m.add_edge(int(k), int(k + 1))
            m.add_edge(int(k + 1), int(k))
            seg_edge[(k, k + 1)] = seg_edge[(k + 1, k)] = (e, k - s0)
    # Edge ends are the same street node: join vertex copies at one node with zero-length links.
    ends: dict[int, list[int]] = {}
    for e in range(net.n_edges):
        ends.setdefault(int(net.edge_u[e]), []).append(int(start[e]))
        ends.setdefault(int(net.edge_v[e]), []).append(int(start[e + 1] - 1))
    for ks in ends.values():
        for a in ks[1:]:
            m.add_edge(ks[0], a)
            m.add_edge(a, ks[0])
    t0 = time.perf_counter()
    matcher = DistanceMatcher(m, max_dist=4 * sigma, obs_noise=sigma, obs_noise_ne=2 * sigma, min_prob_norm=1e-3,
                              non_emitting_states=True, max_lattice_width=8, dist_noise=sigma)
    matcher.match([(float(b), float(a)) for a, b in zip(w.x, w.y)])
    nodes = matcher.path_pred_onlynodes
    el = time.perf_counter() - t0
    res = MatchResult(net.n_edges)
    seg_len = np.hypot(*np.diff(xy, axis=0).T)
    for a, b in zip(nodes[:-1], nodes[1:]):
        hit = seg_edge.get((a, b))
        if hit is None:
            continue
        e, i = hit
        s0 = start[e]
        off = float(seg_len[s0:s0 + i].sum())
        res.add(e, off, off + float(seg_len[s0 + i]))
    return res, el


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", help="a GeoPackage with Chengdu's streets and route T01 (default: made now)")
    ap.add_argument("--quick", action="store_true", help="σ 20 m only")
    args = ap.parse_args()
    from gridpatrol.gis.mapmatch import HmmMatcher, nearest_snap
    from gridpatrol.gis.routing.area import required_mask
    from gridpatrol.gis.streets import street_network
    from gridpatrol.gis.tracksim import precision_recall, simulate_walk
    from gridpatrol.layers.routes import read_routes

    store = _store(args.store)
    net = street_network(store.read_layer("roads", bbox=(104.06, 30.657, 104.095, 30.687)), mode="walk")
    tf = net.transformer()
    metric = lambda g: shapely.transform(g, lambda xy: np.column_stack(tf.transform(xy[:, 0], xy[:, 1])))  # noqa: E731
    line = metric(read_routes(store, "T01").geometry.iloc[0])
    req = required_mask(net, metric(shapely.box(104.071, 30.667, 104.078, 30.672)))  # grid T01
    req_len = net.edge_length_m[req].sum()

    def share(res) -> float:  # noqa: ANN001
        return float(res.covered_m(net)[req].sum() / req_len)

    def truth_share(truth) -> float:  # noqa: ANN001
        g = net.edge_geom[req]
        walked = shapely.length(shapely.intersection(g, truth.buffer(3.0)))
        return float(np.minimum(walked, shapely.length(g)).sum() / shapely.length(g).sum())

    try:
        import leuvenmapmatching  # noqa: F401
        have_leuven = True
    except ImportError:
        have_leuven = False
        print("leuvenmapmatching is not installed (pip install 'gridpatrol[bench]'): its column is left out")
    print(f"route T01: {line.length:.0f} m; network {net.n_edges} edges; err = reported − true covered share (points)")
    print(f"{'sigma':>5} {'every':>5} {'fixes':>6} | {'ours fix/s':>10} {'P':>5} {'R':>5} {'err':>5} | "
          f"{'leuven fix/s':>12} {'P':>5} {'R':>5} {'err':>5} | {'snap fix/s':>10} {'P':>5} {'R':>5} {'err':>5}")
    for sigma in ((20,) if args.quick else (10, 20, 30)):
        for every in (1, 10, 30):
            for shr in ((1.0,) if args.quick else (1.0, 0.5)):
                w = simulate_walk(line, sigma_m=sigma, every_s=every, share=shr, gaps=2, gap_s=60, seed=sigma + every)
                n = len(w.t)
                truth = truth_share(w.truth)
                t0 = time.perf_counter()
                ours = HmmMatcher(net).match(w.x, w.y, w.t)
                t_ours = time.perf_counter() - t0
                t0 = time.perf_counter()
                snap = nearest_snap(net, w.x, w.y)
                t_snap = time.perf_counter() - t0
                lv_cols = f"{'not installed':>30}"
                if have_leuven:
                    try:
                        lv, t_lv = _leuven(net, w, float(sigma))
                        p_lv = precision_recall(lv.walked_lines(net), w.truth, net.edge_geom)
                        lv_cols = f"{n / t_lv:12.0f} {p_lv[0]:5.2f} {p_lv[1]:5.2f} {100 * (share(lv) - truth):+5.1f}"
                    except Exception as exc:  # noqa: BLE001  (a failed baseline is a result, printed)
                        lv_cols = f"{'failed: ' + type(exc).__name__:>30}"
                p_o = precision_recall(ours.walked_lines(net), w.truth, net.edge_geom)
                p_s = precision_recall(snap.walked_lines(net), w.truth, net.edge_geom)
                print(f"{sigma:5d} {every:5d} {n:6d} | {n / t_ours:10.0f} {p_o[0]:5.2f} {p_o[1]:5.2f} "
                      f"{100 * (share(ours) - truth):+5.1f} | {lv_cols} | "
                      f"{n / t_snap:10.0f} {p_s[0]:5.2f} {p_s[1]:5.2f} {100 * (share(snap) - truth):+5.1f}")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
