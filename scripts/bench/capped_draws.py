"""Benchmark (#15, "speed is a feature"): draw-grids with hard caps on 锦江区 (the store of
tests/layers/test_empty_grids_plan.py) and on its generated hollow cities, timed per step.

    PYTHONPATH=.gp SPATIALITE_LIBRARY_PATH=mod_spatialite GRIDPATROL_DATA=/work/shared/data \\
        python -m scripts.bench.capped_draws [--case jj-caps jj-route hollow-4 hollow-9] [--profile DIR] [--dump DIR]

Each case draws on a fresh GeoPackage copy of the cached test store and prints the wall time, the
time of each partition step (wrapped here, the code is not changed) and the number of exact patrols
planned. ``--dump DIR`` writes each plan's block → grid assignment (block ids per grid) as JSON, to
compare two versions of the code: ``--compare A B`` says whether two dumps hold the same plans.
"""
from __future__ import annotations

import argparse
import cProfile
import functools
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the tests' store helpers

CASES = {
    "jj-caps": ("jj", {"max_street_m": 3000.0, "max_area_m2": 400_000.0}),
    "jj-route": ("jj", {"max_street_m": 3000.0, "max_area_m2": 400_000.0, "max_route_min": 60.0}),
    "hollow-4": ("hollow-4", {"max_street_m": 1500.0, "max_area_m2": 150_000.0}),
    "hollow-9": ("hollow-9", {"max_street_m": 1500.0, "max_area_m2": 150_000.0}),
}
# (module, name) of every step partition_area runs, timed by a wrapper
STEPS = [("gridpatrol.gis.blocks", "block_adjacency"), ("gridpatrol.gis.partition", "partition_blocks"),
         ("gridpatrol.gis.partition", "enforce_caps"), ("gridpatrol.gis.partition", "enforce_route"),
         ("gridpatrol.gis.partition", "merge_small"), ("gridpatrol.gis.partition", "absorb_empty"),
         ("gridpatrol.gis.partition", "resplit_empty"), ("gridpatrol.gis.partition.empty", "fill_empty"),
         ("gridpatrol.gis.partition.empty_bound", "plan_empty_bound"),
         ("gridpatrol.gis.partition.empty_bound", "recut_empty"),
         ("gridpatrol.gis.partition.empty", "fill_along_chains"), ("gridpatrol.gis.partition.grow", "grow_from_homes"),
         ("gridpatrol.layers.grids.core", "mark_exempt"), ("gridpatrol.layers.grids.core", "area_blocks"),
         ("gridpatrol.layers.grids.route_cap.RouteMeter", "around")]


def _store(kind: str, folder: Path):  # noqa: ANN202
    """A fresh GeoPackage store of the case: the cached 锦江区 store, or a hollow city of the test."""
    from gridpatrol.layers.store import open_store

    url = f"gpkg:///{folder / (kind + '.gpkg')}"
    if kind == "jj":
        from tests.cached_stores import jinjiang_inputs, jinjiang_with_users
        from tests.store_cache import fill_from_cache

        fill_from_cache(url, "jobs-jinjiang", jinjiang_with_users, jinjiang_inputs())
        return open_store(url)
    import pytest

    from tests.layers.test_empty_grids_plan import _hollow_city

    store = open_store(url)
    with pytest.MonkeyPatch.context() as mp:
        _hollow_city(store, mp, int(kind.split("-")[1]))
    return store


def _timed_steps(spent: dict[str, float], calls: dict[str, int]) -> list:
    """Wrap every step of STEPS so that its time adds to ``spent`` (outermost call only)."""
    import importlib

    undo, depth = [], [0]
    for mod, name in STEPS:
        parts = mod.split(".")
        owner = importlib.import_module(".".join(parts[:-1])) if parts[-1][0].isupper() else importlib.import_module(mod)
        if parts[-1][0].isupper():
            owner = getattr(owner, parts[-1])
        fn = owner.__dict__[name]
        raw = fn.__func__ if isinstance(fn, classmethod) else fn

        def wrap(*a, _raw=raw, _name=name, **k):  # noqa: ANN002, ANN003, ANN202
            depth[0] += 1
            t = time.perf_counter()
            try:
                return _raw(*a, **k)
            finally:
                depth[0] -= 1
                if depth[0] == 0 or _name == "around":
                    spent[_name] += time.perf_counter() - t
                calls[_name] += 1

        functools.update_wrapper(wrap, raw)
        setattr(owner, name, classmethod(wrap) if isinstance(fn, classmethod) else wrap)
        undo.append((owner, name, fn))
    return undo


def run(case: str, folder: Path, profile: Path | None, dump: Path | None) -> dict:
    from gridpatrol.layers import grids as gl
    from gridpatrol.layers.grids import route_cap

    kind, caps = CASES[case]
    store = _store(kind, folder)
    spent, calls = defaultdict(float), defaultdict(int)
    init = route_cap.RouteMeter.__init__
    meters: list = []  # every RouteMeter of the draw, for its count of patrols planned

    def counting_init(self, roads):  # noqa: ANN001, ANN202
        init(self, roads)
        meters.append(self)
    route_cap.RouteMeter.__init__ = counting_init
    undo = _timed_steps(spent, calls)
    prof = cProfile.Profile() if profile else None
    t = time.perf_counter()
    try:
        if prof:
            prof.enable()
        pid = gl.draw_grids(store, gl.PlanParams(seed=1, **caps))
        if prof:
            prof.disable()
    finally:
        wall = time.perf_counter() - t
        route_cap.RouteMeter.__init__ = init
        for owner, name, fn in undo:
            setattr(owner, name, fn)
    if prof:
        profile.mkdir(parents=True, exist_ok=True)
        prof.dump_stats(str(profile / f"{case}.prof"))
    blocks = gl.read_blocks(store, pid)
    grids = gl.read_grids(store, pid)
    plan = sorted(sorted(int(b) for b in g["block_id"]) for _, g in blocks.groupby("grid_code"))
    res, _ = gl.check_grids(store, pid)
    out = {"case": case, "wall_s": round(wall, 2), "steps_s": {k: round(v, 2) for k, v in spent.items()},
           "calls": dict(calls), "routes_planned": sum(m.routes for m in meters), "grids": len(grids),
           "empty_grids": int((grids["households"] <= 0).sum()), "valid": bool(res.valid),
           "out_of_band": int((~res.grids["in_band"]).sum()), "problems": res.summary.get("problems_by_kind")}
    if dump:
        dump.mkdir(parents=True, exist_ok=True)
        (dump / f"{case}.json").write_text(json.dumps({"plan": plan, **out}, ensure_ascii=False))
    store.dispose()
    return out


def compare(a: Path, b: Path) -> None:
    for fa in sorted(a.glob("*.json")):
        fb = b / fa.name
        if not fb.exists():
            continue
        pa, pb = json.loads(fa.read_text()), json.loads(fb.read_text())
        same = pa["plan"] == pb["plan"]
        moved = len({tuple(g) for g in pa["plan"]} ^ {tuple(g) for g in pb["plan"]})
        print(f"{fa.stem}: {'same plan' if same else f'differs ({moved} grids not in both)'}; "
              f"wall {pa['wall_s']} → {pb['wall_s']} s; empty {pa['empty_grids']} → {pb['empty_grids']}; "
              f"out of band {pa['out_of_band']} → {pb['out_of_band']}; valid {pa['valid']} → {pb['valid']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--profile", type=Path, help="write a cProfile file per case here")
    ap.add_argument("--dump", type=Path, help="write each plan's block → grid assignment here")
    ap.add_argument("--compare", type=Path, nargs=2, help="compare two --dump folders and stop")
    args = ap.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.case:
            out = run(case, Path(tmp), args.profile, args.dump)
            print(json.dumps(out, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
