"""The real ``gridpatrol`` command for grid plans: draw, check, export, map, edits and refusals."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from tests.cached_stores import chengdu_five_districts, chengdu_inputs
from tests.store_cache import fill_from_cache

GRIDPATROL = str(Path(sys.executable).with_name("gridpatrol"))
CONFLICT_EXIT = 4  # gis.errors.ConflictError.exit_code
INPUT_EXIT = 2


def run(db: str, *args: str, expect: int | None = 0, lang: str | None = "en") -> subprocess.CompletedProcess:
    """``gridpatrol --db DB ARGS…``; these tests read values from the output, in English (GRIDPATROL_LANG=en;
    ``lang=None``: the default language, Chinese)."""
    env = {k: v for k, v in os.environ.items() if k != "GRIDPATROL_LANG"} | {"COLUMNS": "200"}
    if lang is not None:
        env["GRIDPATROL_LANG"] = lang
    p = subprocess.run([GRIDPATROL, "--db", db, *args], capture_output=True, text=True, timeout=600, env=env)
    if expect is not None and p.returncode != expect:
        raise AssertionError(f"gridpatrol {' '.join(args)} exited {p.returncode}, expected {expect}:\n"
                             f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def plans(db: str) -> list[int]:
    return [int(x) for x in re.findall(r"│\s*(\d+)\s*│\s*\d{4}-", run(db, "plans").stdout)]


def test_grid_commands_end_to_end(store_url, tmp_path):
    db = store_url
    # What `gridpatrol import-osm chengdu.osm` and `import-areas <the five districts> --crs gcj02`
    # make (tests/e2e/test_cli_import.py runs those commands), copied from the cached store.
    fill_from_cache(db, "chengdu-five-districts", chengdu_five_districts, chengdu_inputs())

    bad = run(db, "draw-grids", "--min-households", "600", "--max-households", "500", expect=INPUT_EXIT)
    assert "band" in bad.stderr and "Traceback" not in bad.stderr

    # A band wide enough for two neighbouring grids to merge within it (checked below).
    out = run(db, "draw-grids", "--target-households", "400", "--min-households", "150",
              "--max-households", "900", "--seed", "3").stdout
    first = int(re.search(r"plan (\d+):", out).group(1))
    problems = tmp_path / "problems.geojson"
    chk = run(db, "check-grids", "--geojson", str(problems))
    assert "is valid" in chk.stdout and problems.exists()

    grids_path, buildings_path = tmp_path / "grids.geojson", tmp_path / "buildings.geojson"
    run(db, "export", "grids", str(grids_path))
    run(db, "export", "buildings", str(buildings_path))
    grids = gpd.read_file(grids_path)
    buildings = gpd.read_file(buildings_path)
    assert {"code", "parent_code", "households", "buildings", "street_m", "area_m2", "polsby_popper"} <= set(grids.columns)
    assert grids["code"].str.fullmatch(r"5101\d{11}").all() and grids["code"].is_unique
    # grid_code of every exported building = the exported grid containing its representative point
    pts = shapely.point_on_surface(buildings.geometry.to_numpy())
    owner = np.full(len(pts), None, dtype=object)
    for code, geom in zip(grids["code"], grids.geometry):
        owner[shapely.covers(geom, pts) & (owner == None)] = code  # noqa: E711
    have = buildings["grid_code"].to_numpy(dtype=object)
    assert all((a is None and (b is None or b != b)) or a == b for a, b in zip(owner, have))
    assert sum(a is not None for a in owner) > 500

    html = tmp_path / "map.html"
    run(db, "map-grids", "--out", str(html))
    text = html.read_text(encoding="utf-8")
    assert "OpenStreetMap contributors" in text
    # nothing is loaded from the network: no remote scripts, stylesheets, images or tiles
    loads = re.findall(r"""<(?:script|link|img)[^>]*(?:src|href)\s*=\s*["']([^"']+)""", text)
    loads += re.findall(r"""L\.tileLayer\(\s*["']([^"']+)""", text)
    assert all(not u.startswith(("http://", "https://", "//")) for u in loads), loads
    for cdn in ("cdnjs.cloudflare.com", "cdn.jsdelivr.net", "unpkg.com", "code.jquery.com", "netdna"):
        assert cdn not in text

    # lock a grid: edits of it are refused with exit 4 and change nothing
    metric = grids.estimate_utm_crs()
    gm = grids.to_crs(metric)
    a = grids["code"].iloc[0]
    touching = [c for c, g in zip(gm["code"], gm.geometry)
                if c != a and g.intersection(gm.geometry.iloc[0]).length > 1.0]
    run(db, "lock-grid", a)
    n_before = plans(db)
    r = run(db, "split-grid", a, "--parts", "2", expect=CONFLICT_EXIT)
    assert "locked" in r.stderr and "Traceback" not in r.stderr
    r = run(db, "merge-grids", a, touching[0], expect=CONFLICT_EXIT)
    assert "locked" in r.stderr
    assert plans(db) == n_before
    run(db, "unlock-grid", a)

    # merging grids that do not touch is refused
    far = next(c for c, g in zip(gm["code"], gm.geometry)
               if c != a and g.distance(gm.geometry.iloc[0]) > 100 and grids.set_index("code").loc[c, "parent_code"]
               == grids["parent_code"].iloc[0])
    n_before = plans(db)
    r = run(db, "merge-grids", a, far, expect=CONFLICT_EXIT)
    assert "not adjacent" in r.stderr
    assert plans(db) == n_before

    # a merge of two small touching grids of one district is accepted and keeps the plan valid
    par = dict(zip(grids["code"], grids["parent_code"]))
    hh = dict(zip(grids["code"], grids["households"]))
    pairs = sorted((hh[c1] + hh[c2], c1, c2) for i, c1 in enumerate(gm["code"]) for c2 in gm["code"][i + 1:]
                   if par[c1] == par[c2] and gm.geometry[gm["code"] == c1].iloc[0].intersection(
                       gm.geometry[gm["code"] == c2].iloc[0]).length > 1.0)
    # The touching pair with the fewest households lies inside the 150–900 band together: the merge
    # breaks no rule, so it must be written (a refusal fails here, whatever its message).
    s0, c1, c2 = pairs[0]
    assert 150 <= s0 <= 900, pairs[:3]
    n_before = plans(db)
    run(db, "merge-grids", c1, c2)
    assert plans(db) == [*n_before, n_before[-1] + 1]
    run(db, "check-grids")
    # The merged grid is one grid of the summed households, the other code is gone.
    merged_path = tmp_path / "merged.geojson"
    run(db, "export", "grids", str(merged_path))
    after = gpd.read_file(merged_path).set_index("code")
    keep, gone = min(c1, c2), max(c1, c2)
    assert gone not in after.index and abs(after.loc[keep, "households"] - s0) < 1e-6
    # Merging it again with a neighbour beyond 900 households is refused, naming the rule and grid.
    am = after.to_crs(metric)
    over = next(c for c in am.index if c != keep and am.loc[c, "parent_code"] == am.loc[keep, "parent_code"]
                and am.loc[c, "geometry"].intersection(am.loc[keep, "geometry"]).length > 1.0
                and after.loc[c, "households"] + after.loc[keep, "households"] > 900)
    n_before = plans(db)
    r = run(db, "merge-grids", keep, over, expect=CONFLICT_EXIT)
    first_code = min(keep, over)
    assert re.search(rf"edit refused, it would break the plan: grid {first_code} has \d+ households, outside "
                     r"150–900", r.stderr.replace("\n", " ")), r.stderr
    assert "Traceback" not in r.stderr and plans(db) == n_before
    last = plans(db)[-1]
    diff = run(db, "diff-grids", str(first), str(last)).stdout
    assert "buildings_changed" in diff

    # unknown grid: a clear not-found error (exit 3)
    r = run(db, "split-grid", "510104000000999", "--parts", "2", expect=3)
    assert "510104000000999" in r.stderr

    # an exported plan imports back as a new plan, made of blocks again: it can be redrawn
    run(db, "import-grids", str(grids_path))
    assert plans(db)[-1] == last + 1
    imported = json.loads(Path(grids_path).read_text(encoding="utf-8"))["features"]
    for f in sorted(imported, key=lambda f: -f["properties"]["area_m2"]):
        p = run(db, "split-grid", f["properties"]["code"], "--parts", "2", "--force", expect=None)
        if p.returncode == 0:
            break
        assert p.returncode == CONFLICT_EXIT and "cannot be split" in p.stderr, p.stderr  # a single block
    assert plans(db)[-1] == last + 2
    # The re-imported, split plan breaks no structural rule: check-grids may only report households
    # outside the band of the import's parameters, and exits 1 exactly when it reports any error.
    problems2 = tmp_path / "problems2.geojson"
    chk = run(db, "check-grids", "--geojson", str(problems2), expect=None)
    found = gpd.read_file(problems2) if problems2.exists() else gpd.GeoDataFrame({"kind": [], "severity": []})
    errors = found[found["severity"] == "error"]
    assert chk.returncode == (1 if len(errors) else 0), chk.stderr
    structural = errors[~errors["kind"].str.startswith("households")]
    assert structural.empty, structural["detail"].astype(str).tolist()
