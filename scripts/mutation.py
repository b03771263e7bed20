"""Mutation testing (mutmut 3) of the modules holding the rules users rely on, each against the tests
that guard it; prints the share of mutants killed per module (see docs/mutation.md)."""
from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Module → the test files (or test ids) that guard its rules. Small selections: mutmut runs them
# once per mutant.
_MATCHING_TESTS = ("test_blossom_matching_is_the_integer_optimum_and_certifies_it",
                   "test_matching_costs_too_large_for_micrometre_integers_still_give_the_optimum")
MODULES: dict[str, list[str]] = {
    "gis/incidents.py": ["tests/gis/test_incidents.py", "tests/gis/test_incident_messages.py", "tests/gis/test_properties.py::test_a_transition_not_in_the_table_is_always_refused"],
    "gis/crs.py": ["tests/gis/test_crs.py", "tests/gis/test_gcj02_reference.py", "tests/gis/test_properties.py::test_gcj02_round_trip_inside_china_within_a_micro_degree",
                   "tests/gis/test_properties.py::test_gcj02_leaves_points_far_outside_china_untouched"],
    # The role filters; the worker's own grids' routes and incidents (test_worker_scope: the seed has
    # routes there) and a token from before schema version 3 (no "ver" claim) still working.
    "api/auth.py": ["tests/api/test_auth.py", "tests/api/test_worker_scope.py",
                    "tests/api/test_token_revocation.py::test_a_store_from_before_revocation_is_upgraded_and_keeps_its_users"],
    "gis/grid_check.py": ["tests/gis/test_grid_check.py"],  # mutmut writes an 18 MB module for it: use --only, --sample
    "gis/osm.py": ["tests/gis/test_households.py", "tests/gis/test_osm.py"],  # the household estimate
    # OGC paging: pages, next links, keyset cursors, the numberMatched cap (layers/features.py since
    # 475a13d); api/ogc.py keeps the limit cap (min(limit, ogc_max_limit)) and the links.
    "layers/features.py": ["tests/api/test_ogc.py", "tests/api/test_ogc_keyset.py", "tests/api/test_ogc_cap.py"],
    "api/ogc.py": ["tests/api/test_ogc.py", "tests/api/test_ogc_keyset.py", "tests/api/test_ogc_cap.py",
                   "tests/api/test_bbox_rules.py"],  # parse_bbox's rules and messages (fast, no API seed)
    # Route optimality certificates: the odd-node matching's certified lower bound (every postman
    # route's bound) and the blossom duals' check.
    "gis/routing/matching.py": ["tests/gis/test_certificates.py", *(f"tests/gis/test_coverage.py::{t}" for t in _MATCHING_TESTS)],
    "gis/routing/blossom.py": ["tests/gis/test_certificates.py", *(f"tests/gis/test_coverage.py::{t}" for t in _MATCHING_TESTS)],
}
# The recorded results: docs/mutation.json is the record, docs/mutation.md shows it between the markers.
RECORD = ROOT / "docs" / "mutation.json"
DOC = ROOT / "docs" / "mutation.md"
BEGIN, END = "<!-- mutation.json: begin (written by scripts/mutation.py --record) -->", "<!-- mutation.json: end -->"
FLOORS = ("gis", "layers", "api", "scripts")
COPY = [*FLOORS, "tests", "pyproject.toml"]
LINE = re.compile(r"^\s*(\S+__mutmut_\d+): (.+)$")


def _mutmut(workdir: Path, env: dict[str, str], *args: str, quiet: bool = True) -> str:
    mutmut = str(Path(sys.executable).parent / "mutmut")
    return subprocess.run([mutmut, *args], cwd=workdir, env=env, check=False, text=True,
                          stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
                          stderr=subprocess.DEVNULL if quiet else None).stdout or ""


def _statuses(workdir: Path, env: dict[str, str]) -> dict[str, str]:
    """Every generated mutant's name and status (``not checked`` until run)."""
    out = _mutmut(workdir, env, "results", "--all", "true", quiet=False)
    return {m.group(1): m.group(2).strip() for m in map(LINE.match, out.splitlines()) if m}


def pick(names: list[str], sample: int | None, seed: int, only: str | list[str] | None) -> list[str]:
    """The mutants to run: those matching ``only`` (globs on mutmut's names, any of them), then ``sample``
    of them drawn with ``random.Random(seed)`` from the sorted list (the same draw for the same code)."""
    globs = [only] if isinstance(only, str) else only
    chosen = sorted(n for n in names if not globs or any(fnmatch.fnmatchcase(n, g) for g in globs))
    if sample is not None and sample < len(chosen):
        chosen = sorted(random.Random(seed).sample(chosen, sample))
    return chosen


def run_module(module: str, tests: list[str], workdir: Path, children: int, *, sample: int | None = None,
               seed: int = 0, only: str | list[str] | None = None) -> tuple[Counter, int]:
    """Mutate ``module`` in a copy of the repository under ``workdir`` and run ``tests`` per mutant
    (all of them, or ``sample`` drawn with ``seed`` among those matching ``only``). Returns the
    statuses of the mutants run and the number of mutants the module has."""
    # The code is laid out as the installed namespace (gridpatrol/gis, …), so the mutants import
    # as gridpatrol.gis.… from mutmut's mutants/ folder and mutmut's names match their modules.
    for name in COPY:
        src = ROOT / name
        dst = workdir / ("gridpatrol" if name in FLOORS else "") / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "mutants"))
        else:
            shutil.copy2(src, dst)
    # mutmut reads [tool.mutmut] from pyproject.toml before setup.cfg: drop it from the copy.
    text = (workdir / "pyproject.toml").read_text(encoding="utf-8")
    (workdir / "pyproject.toml").write_text(re.sub(r"\n\[tool\.mutmut\][^\[]*", "\n", text), encoding="utf-8")
    (workdir / "setup.cfg").write_text(
        "[mutmut]\n"
        "source_paths=\n    gridpatrol/gis\n    gridpatrol/layers\n    gridpatrol/api\n    gridpatrol/scripts\n"
        f"only_mutate=\n    gridpatrol/{module}\n"
        "pytest_add_cli_args=\n    -p\n    no:randomly\n    -p\n    no:cacheprovider\n    -x\n    -q\n"
        "pytest_add_cli_args_test_selection=\n" + "".join(f"    {t}\n" for t in tests),
        encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("GRIDPATROL_DATA", str(ROOT.parent / "shared" / "data"))
    env.setdefault("SPATIALITE_LIBRARY_PATH", "mod_spatialite")
    chosen: list[str] = []
    if sample is not None or only is not None:
        # A first run with a filter that matches no mutant generates the mutants and records which
        # tests reach which function, then stops (mutmut asserts the filter matched): list, draw.
        _mutmut(workdir, env, "run", "--max-children", str(children), "no-such-mutant-(listing-only)")
        everything = list(_statuses(workdir, env))
        chosen = pick(everything, sample, seed, only)
        if not chosen:
            sys.exit(f"{module}: no mutant matches {only!r}")
        print(f"running {len(chosen)} of {len(everything)} mutants", flush=True)
    _mutmut(workdir, env, "run", "--max-children", str(children), *chosen)
    every = _statuses(workdir, env)
    run = {k: v for k, v in every.items() if not chosen or k in chosen}
    statuses = Counter(run.values())
    for name in sorted(k for k, v in run.items() if v == "survived"):
        print(f"--- survived: {name}\n{_mutmut(workdir, env, 'show', name, quiet=False)}")
    return statuses, len(every)


def scope_of(sample: int | None, seed: int, only: str | list[str] | None, tests: list[str] | None = None) -> str:
    """Which mutants a run ran: ``all``, or the ``--only`` glob and the ``--sample``/``--seed`` draw,
    and the ``--tests`` that replaced the module's selection. Shares are compared only between runs
    of the same scope (the same mutants for the same code, against the same tests)."""
    globs = [only] if isinstance(only, str) else only or []
    parts = [f"only {' '.join(globs)}"] if globs else []
    if sample is not None:
        parts.append(f"sample {sample} seed {seed}")
    if tests:
        parts.append(f"tests {' '.join(tests)}")
    return ", ".join(parts) or "all"


def share(entry: dict) -> float:
    """Killed share in per cent, one decimal, of the mutants run (the unit of the floor)."""
    return round(100.0 * entry["killed"] / entry["run"], 1) if entry["run"] else 0.0


def load_record(path: Path = RECORD) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"modules": {}}


def record_result(record: dict, module: str, scope: str, result: dict, *, allow_lower: str | None = None) -> dict:
    """Add ``result`` (mutants, run, killed, survived, other, date, command) as the newest run of
    ``module`` in ``scope``. A killed share lower than the scope's recorded one is refused
    (ValueError) unless ``allow_lower`` gives the reason, which is kept with the run."""
    runs = record.setdefault("modules", {}).setdefault(module, {}).setdefault(scope, [])
    new = dict(result)
    new["share"] = share(new)
    if runs and new["share"] < runs[-1]["share"]:
        if not allow_lower:
            raise ValueError(f"{module} ({scope}): killed share {new['share']} % is below the recorded "
                             f"{runs[-1]['share']} % ({runs[-1]['date']}); kill the survivors, or pass "
                             "--allow-lower REASON to record it with the reason")
        new["lower_because"] = allow_lower
    runs.append(new)
    return record


def falls(record: dict) -> list[str]:
    """Every place the recorded share falls from one run of a module and scope to the next
    without a reason given (empty when the record keeps its rule)."""
    out = []
    for module, scopes in record.get("modules", {}).items():
        for scope, runs in scopes.items():
            for before, after in zip(runs, runs[1:]):
                if after["share"] < before["share"] and not after.get("lower_because"):
                    out.append(f"{module} ({scope}): {before['share']} % → {after['share']} % on {after['date']}")
    return out


def table(record: dict) -> str:
    """The markdown table of the newest run of every module and scope (what docs/mutation.md shows)."""
    lines = ["| module | scope | mutants | run | killed | survived | other¹ | killed share | date |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for module in sorted(record.get("modules", {})):
        for scope, runs in sorted(record["modules"][module].items()):
            last = runs[-1]
            note = f" (lowered: {last['lower_because']})" if last.get("lower_because") else ""
            lines.append(f"| {module} | {scope} | {last['mutants']} | {last['run']} | {last['killed']} | "
                         f"{last['survived']} | {last['other']} | {last['share']:.1f} %{note} | {last['date']} |")
    return "\n".join(lines) + "\n"


def write_record(record: dict, path: Path = RECORD, doc: Path = DOC) -> None:
    """Write the record and put its table between the markers of docs/mutation.md."""
    path.write_text(json.dumps(record, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    text = doc.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{table(record)}{END}{tail}", encoding="utf-8")


def doc_table(doc: Path = DOC) -> str:
    """The table between the markers of docs/mutation.md, as written there."""
    return doc.read_text(encoding="utf-8").split(BEGIN, 1)[1].split(END, 1)[0].lstrip("\n")


def main() -> None:
    """Run the modules named on the command line (default: all) and print a table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("modules", nargs="*", default=list(MODULES), help="modules to mutate, e.g. gis/crs.py")
    ap.add_argument("--children", type=int, default=1, help="mutants run in parallel (default 1)")
    ap.add_argument("--keep", action="store_true", help="keep the work folders (to inspect mutants)")
    ap.add_argument("--sample", type=int, metavar="N", help="run N mutants drawn at random (for big modules)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the --sample draw (default 0): same seed, same mutants")
    ap.add_argument("--only", metavar="GLOB", action="append",
                    help="only mutants whose mutmut name matches, e.g. '*x__buildings__mutmut_*' (repeat for more)")
    ap.add_argument("--tests", nargs="+", metavar="TEST",
                    help="run these tests (files or ids) instead of the module's selection (one module only)")
    ap.add_argument("--record", action="store_true",
                    help="record the results in docs/mutation.json and docs/mutation.md; refused if a killed "
                    "share falls below the recorded one for the same module and scope")
    ap.add_argument("--allow-lower", metavar="REASON", help="with --record: record a lower share, with this reason")
    args = ap.parse_args()
    if args.allow_lower and not args.record:
        sys.exit("--allow-lower goes with --record")
    if args.tests and len(args.modules) != 1:
        sys.exit("--tests goes with one module")
    rows = []
    for module in args.modules:
        if module not in MODULES:
            sys.exit(f"unknown module {module}: choose from {', '.join(MODULES)}")
        work = Path(tempfile.mkdtemp(prefix="mutation-"))
        try:
            tests = args.tests or MODULES[module]
            print(f"== {module} ({', '.join(tests)})", flush=True)
            st, generated = run_module(module, tests, work, args.children, sample=args.sample,
                                       seed=args.seed, only=args.only)
        finally:
            if args.keep:
                print(f"work folder kept: {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        total = sum(st.values())
        killed = st.get("killed", 0) + st.get("timeout", 0)
        rows.append((module, generated, total, killed, st.get("survived", 0), total - killed - st.get("survived", 0)))
    print(f"\n{'module':<26}{'of':>7}{'run':>6}{'killed':>8}{'survived':>10}{'other':>7}{'killed %':>10}")
    for module, generated, total, killed, survived, other in rows:
        pct = 100.0 * killed / total if total else 0.0
        print(f"{module:<26}{generated:>7}{total:>6}{killed:>8}{survived:>10}{other:>7}{pct:>9.1f}%")
    if args.record:
        record = load_record()
        scope = scope_of(args.sample, args.seed, args.only, args.tests)
        command = " ".join(["scripts/mutation.py", *sys.argv[1:]])
        today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d")
        try:
            for module, generated, total, killed, survived, other in rows:
                record_result(record, module, scope, {
                    "mutants": generated, "run": total, "killed": killed, "survived": survived, "other": other,
                    "date": today, "command": command, "tests": args.tests or MODULES[module]}, allow_lower=args.allow_lower)
        except ValueError as e:
            sys.exit(f"not recorded: {e}")
        write_record(record)
        print(f"recorded in {RECORD.relative_to(ROOT)} and {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
