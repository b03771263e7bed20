"""Benchmark: the planner's exact U-turn searches, recorded once and replayed through two revisions.

Driving passes differ from run to run (the solve has a time limit), so whether a run of
``scripts/bench/uturns.py`` meets a hard route for the exact search is luck. This records every
call ``euler_circuit`` makes to ``circuit_exact.fewest_uturns`` (whole routes and shifts, above
their node bound) during one run of that bench, then replays the same inputs through
circuit_exact.py at ``--baseline`` (git revision) and through this one: time per call, U-turns,
bound proven, and whether the two agree.

    python -m gridpatrol.scripts.bench.uturns_replay record calls.pkl -- --modes drive --exact-work 2
    python -m gridpatrol.scripts.bench.uturns_replay replay calls.pkl [--baseline main]
"""
from __future__ import annotations

import argparse
import pickle
import sys

import gridpatrol.gis.routing.circuit as circuit
from gridpatrol.gis.routing.circuit_exact import fewest_uturns
from gridpatrol.scripts.bench.common import timed
from gridpatrol.scripts.bench.uturns import load_at


def record(path: str, bench_args: list[str]) -> None:
    calls = []

    def recording(items, node, lb, is_in, start, hint=None, work=2.0, **kw):  # noqa: ANN001, ANN202
        calls.append(dict(items=items, node=node, lb=lb, is_in=is_in, start=start, hint=hint, work=work))
        return fewest_uturns(items, node, lb, is_in, start, hint=hint, work=work, **kw)

    circuit.fewest_uturns = recording  # what euler_circuit calls
    from gridpatrol.scripts.bench import uturns

    sys.argv = [sys.argv[0], *bench_args]
    uturns.main()
    with open(path, "wb") as f:
        pickle.dump(calls, f)
    print(f"{len(calls)} calls recorded in {path}")


def replay(path: str, baseline: str) -> None:
    with open(path, "rb") as f:
        calls = pickle.load(f)
    old = load_at(baseline, "gis/routing/circuit_exact.py", "baseline_circuit_exact")
    tot = {"before": 0.0, "after": 0.0}
    differ = 0
    for k, c in enumerate(calls):
        args = (c["items"], c["node"], c["lb"], c["is_in"], c["start"])
        t0, r0 = timed(lambda: old.fewest_uturns(*args, hint=c["hint"], work=c["work"]))
        t1, r1 = timed(lambda: fewest_uturns(*args, hint=c["hint"], work=c["work"]))
        tot["before"] += t0
        tot["after"] += t1
        same = (r0.uturns, r0.lower_bound, r0.optimal) == (r1.uturns, r1.lower_bound, r1.optimal)
        differ += not same
        print(f"{k}: {len(c['items'])} passes; {baseline}: {r0.uturns} U-turns, bound {r0.lower_bound}, {t0:.3f} s | "
              f"now: {r1.uturns}, bound {r1.lower_bound}, {t1:.3f} s{'' if same else '  (differ)'}", flush=True)
    print(f"{len(calls)} calls: {baseline} {tot['before']:.2f} s, now {tot['after']:.2f} s; {differ} differ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=["record", "replay"])
    ap.add_argument("file")
    ap.add_argument("--baseline", default="main", help="git revision of the baseline circuit_exact.py (replay)")
    args, rest = ap.parse_known_args()
    if args.action == "record":
        record(args.file, [a for a in rest if a != "--"])
    else:
        replay(args.file, args.baseline)


if __name__ == "__main__":
    main()
