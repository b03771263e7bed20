"""Mutation testing (mutmut 3) of the modules holding the rules users rely on, each against the tests
that guard it; prints the share of mutants killed per module (see docs/mutation.md)."""
from __future__ import annotations

import argparse
import os
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
MODULES: dict[str, list[str]] = {
    "gis/incidents.py": ["tests/gis/test_incidents.py", "tests/gis/test_incident_messages.py", "tests/gis/test_properties.py::test_a_transition_not_in_the_table_is_always_refused"],
    "gis/crs.py": ["tests/gis/test_crs.py", "tests/gis/test_gcj02_reference.py", "tests/gis/test_properties.py::test_gcj02_round_trip_inside_china_within_a_micro_degree",
                   "tests/gis/test_properties.py::test_gcj02_leaves_points_far_outside_china_untouched"],
    "api/auth.py": ["tests/api/test_auth.py"],
    "gis/grid_check.py": ["tests/gis/test_grid_check.py"],
    "gis/osm.py": ["tests/gis/test_osm.py"],  # the household estimate
    "api/ogc.py": ["tests/api/test_ogc.py"],
}
FLOORS = ("gis", "layers", "api", "scripts")
COPY = [*FLOORS, "tests", "pyproject.toml"]
LINE = re.compile(r"^\s*(\S+__mutmut_\d+): (.+)$")


def run_module(module: str, tests: list[str], workdir: Path, children: int) -> Counter:
    """Mutate ``module`` in a copy of the repository under ``workdir`` and run ``tests`` per mutant."""
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
    mutmut = [str(Path(sys.executable).parent / "mutmut")]
    subprocess.run([*mutmut, "run", "--max-children", str(children)], cwd=workdir, env=env, check=False,
                   stdout=subprocess.DEVNULL)
    out = subprocess.run([*mutmut, "results", "--all", "true"], cwd=workdir, env=env, capture_output=True,
                         text=True, check=False).stdout
    statuses = Counter()
    survivors = []
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            statuses[m.group(2).strip()] += 1
            if m.group(2).strip() == "survived":
                survivors.append(m.group(1))
    for name in survivors:
        diff = subprocess.run([*mutmut, "show", name], cwd=workdir, env=env, capture_output=True, text=True).stdout
        print(f"--- survived: {name}\n{diff}")
    return statuses


def main() -> None:
    """Run the modules named on the command line (default: all) and print a table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("modules", nargs="*", default=list(MODULES), help="modules to mutate, e.g. gis/crs.py")
    ap.add_argument("--children", type=int, default=1, help="mutants run in parallel (default 1)")
    ap.add_argument("--keep", action="store_true", help="keep the work folders (to inspect mutants)")
    args = ap.parse_args()
    rows = []
    for module in args.modules:
        if module not in MODULES:
            sys.exit(f"unknown module {module}: choose from {', '.join(MODULES)}")
        work = Path(tempfile.mkdtemp(prefix="mutation-"))
        try:
            print(f"== {module} ({', '.join(MODULES[module])})", flush=True)
            st = run_module(module, MODULES[module], work, args.children)
        finally:
            if args.keep:
                print(f"work folder kept: {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        total = sum(st.values())
        killed = st.get("killed", 0) + st.get("timeout", 0)
        rows.append((module, total, killed, st.get("survived", 0), total - killed - st.get("survived", 0)))
    print(f"\n{'module':<22}{'mutants':>9}{'killed':>9}{'survived':>10}{'other':>7}{'killed %':>10}")
    for module, total, killed, survived, other in rows:
        share = 100.0 * killed / total if total else 0.0
        print(f"{module:<22}{total:>9}{killed:>9}{survived:>10}{other:>7}{share:>9.1f}%")


if __name__ == "__main__":
    main()
