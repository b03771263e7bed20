"""Benchmark: a generated province drawn as one job per district (draw-grids --all-areas --jobs) by 1 and by
2 `gridpatrol worker` processes on PostGIS; the speed-up in the same run, every district's plan checked.

    python -m gridpatrol.scripts.bench.province --districts 16 --blocks 4000 --workers 1 2
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

from gridpatrol.layers import grids as gl
from gridpatrol.layers import job_queue
from gridpatrol.layers import jobs as jl
from gridpatrol.layers.pg_schemas import drop_schema, new_schema
from gridpatrol.layers.store import open_store
from gridpatrol.layers.synth_province import load_province
from gridpatrol.scripts.bench.common import local_pg_url
from sqlalchemy import text

GRIDPATROL = str(Path(sys.executable).with_name("gridpatrol"))


def _sample_load(out: list[float], stop: threading.Event) -> None:
    """The 1-minute load average every 10 s until ``stop`` (the machine is shared: say how busy it was)."""
    while True:
        out.append(os.getloadavg()[0])
        if stop.wait(10):
            return


def copy_probe(store) -> dict:  # noqa: ANN001
    """Time what one more area write copies: the newest plan's grids and blocks outside its first area into a
    new plan (the `INSERT … SELECT` of layers/grids/area_draw.py), in a transaction that is rolled back."""
    out = {}
    with store.engine.connect() as c, c.begin() as tx:
        base = c.execute(text("SELECT max(id) FROM grid_plans")).scalar()
        first = c.execute(text("SELECT min(area_code) FROM blocks WHERE plan_id = :b"), {"b": base}).scalar()
        pid = c.execute(text("INSERT INTO grid_plans (created_at, method, params_json, metrics_json) "
                             "VALUES (now(), 'draw', '{}', '{}') RETURNING id")).scalar()
        for table, col in (("grids", "parent_code"), ("blocks", "area_code")):
            cols = [r[0] for r in c.execute(text(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = :t AND column_name NOT IN ('id', 'plan_id') ORDER BY ordinal_position"),
                {"t": table})]
            names = ", ".join(f'"{x}"' for x in cols)
            t0 = time.perf_counter()
            n = c.execute(text(f'INSERT INTO {table} (plan_id, {names}) SELECT :pid, {names} FROM {table} '
                               f'WHERE plan_id = :base AND ({col} IS NULL OR {col} <> :first)'),
                          {"pid": pid, "base": base, "first": first}).rowcount
            out[f"copy_{table}"], out[f"copy_{table}_s"] = n, round(time.perf_counter() - t0, 2)
        tx.rollback()
    return out


def run(db_url: str, districts: int, blocks: int, n_workers: int, seed: int) -> dict:
    """Load the province into a fresh schema, queue one draw job per district, run ``n_workers`` worker
    processes until every job ended; the wall time, the jobs' own times and the newest plan's check."""
    url, schema = new_schema(db_url, "bench_prov_", postgis=True)
    store = open_store(url)
    try:
        t0 = time.perf_counter()
        codes = load_province(store, districts, blocks, seed=seed)
        load_s = time.perf_counter() - t0
        ids = job_queue.submit_per_area(store, "draw-grids", {"seed": 1}, created_by="bench")
        t0 = time.perf_counter()
        loads: list[float] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_load, args=(loads, stop), daemon=True)
        sampler.start()
        procs = [subprocess.Popen([GRIDPATROL, "--db", url, "worker", "--heartbeat", "5", "--stalled-after", "120"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n_workers)]
        try:
            while any(jl.get(store, i)["state"] not in jl.ENDED for i in ids):
                time.sleep(0.5)
            wall_s = time.perf_counter() - t0
        finally:
            stop.set()
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(120)
        jobs = [jl.get(store, i) for i in ids]
        copy = copy_probe(store)
        res, pid = gl.check_grids(store)
        grids = gl.read_grids(store, pid)
        with store.engine.connect() as c:
            n_blocks = c.execute(text("SELECT count(*) FROM blocks WHERE plan_id = :p"), {"p": pid}).scalar()
        job_s = [(j["finished_at"] - j["started_at"]).total_seconds() for j in jobs if j["started_at"]]
        span_s = (max(j["finished_at"] for j in jobs) - min(j["started_at"] for j in jobs)).total_seconds()
        return {
            "workers": n_workers, "districts": len(codes), "blocks": int(n_blocks), "grids": len(grids),
            "districts_in_plan": grids["parent_code"].nunique(), "load_s": round(load_s, 1),
            "wall_s": round(wall_s, 1), "span_s": round(span_s, 1), "job_s_sum": round(sum(job_s), 1),
            "job_s_max": round(max(job_s), 1), "done": sum(j["state"] == "done" for j in jobs),
            "valid": bool(res.summary["valid"]), "errors": res.summary["errors"],
            "error_kinds": {k: n for k, n in res.summary["problems_by_kind"].items()
                            if (res.problems["kind"] == k).any()
                            and (res.problems.loc[res.problems["kind"] == k, "severity"] == "error").any()},
            "share_in_band": round(float(res.summary["share_in_band"]), 3),
            "load_min": round(min(loads), 1), "load_mean": round(sum(loads) / len(loads), 1),
            "load_max": round(max(loads), 1), **copy,
        }
    finally:
        store.dispose()
        drop_schema(db_url, schema)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--districts", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=4000, help="blocks per district (about)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--db", default=None, help="PostgreSQL URL (default: the local test database)")
    a = ap.parse_args()
    db_url = a.db or local_pg_url("gridpatrol_test")
    print(f"{platform.node()} · {os.cpu_count()} cores · load {os.getloadavg()[0]:.1f} · "
          f"{a.districts} districts × ~{a.blocks} blocks", flush=True)
    rows = []
    for w in a.workers:
        rows.append(run(db_url, a.districts, a.blocks, w, a.seed))
        print(rows[-1], flush=True)
    base = rows[0]["span_s"]
    print("\n| workers | districts | blocks | grids | districts in plan | done | valid | errors | share in band "
          "| load s | wall s (workers started → all ended) | first start → last end s | sum of job s "
          "| longest job s | speed-up (first start → last end) | load average min / mean / max |")
    print("|" + "---|" * 16)
    for r in rows:
        print(f"| {r['workers']} | {r['districts']} | {r['blocks']} | {r['grids']} | {r['districts_in_plan']} "
              f"| {r['done']} | {r['valid']} | {r['errors']} | {r['share_in_band']} | {r['load_s']} | {r['wall_s']} | {r['span_s']} "
              f"| {r['job_s_sum']} | {r['job_s_max']} | {base / r['span_s']:.2f} "
              f"| {r['load_min']} / {r['load_mean']} / {r['load_max']} |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
