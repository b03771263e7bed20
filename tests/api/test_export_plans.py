"""GET /export/grids and ``gridpatrol export grids`` write one grid plan: the newest, or the one asked for."""
from __future__ import annotations

import json
import subprocess
import sys

import geopandas as gpd
import pytest
import shapely

from tests.api.api_seed import GRID_CODES

NEW_CODES = ["510104001201", "510104001202"]


@pytest.fixture(scope="module")
def plans(app, loaded_store_url) -> tuple[int, int]:  # noqa: ANN001
    """(the seed's plan, a newer plan of two grids over the same streets) in the module's store."""
    from gridpatrol.layers.grids import latest_plan_id
    from gridpatrol.layers.models import GridPlan
    from sqlalchemy import insert

    store = app.state.store
    old = latest_plan_id(store)
    minx, miny, maxx, maxy = store.extent("roads")
    midx = (minx + maxx) / 2
    with store.begin() as conn:
        new = conn.execute(insert(GridPlan).values(name="newer", method="import", params_json="{}", metrics_json="{}",
                                                   parent_plan_id=old).returning(GridPlan.id)).scalar_one()
        store.insert_gdf(conn, "grids", gpd.GeoDataFrame(
            {"plan_id": new, "code": NEW_CODES, "worker": ["wu", "li"], "households": 800.0},
            geometry=[shapely.MultiPolygon([shapely.box(minx, miny, midx, maxy)]),
                      shapely.MultiPolygon([shapely.box(midx, miny, maxx, maxy)])], crs=4326))
    return old, new


def _codes(body: bytes) -> tuple[list[str], set[int]]:
    feats = json.loads(body)["features"]
    return sorted(f["properties"]["code"] for f in feats), {f["properties"]["plan_id"] for f in feats}


def test_api_exports_the_newest_plan_by_default(client, tokens, plans):  # noqa: ANN001
    old, new = plans
    r = client.get("/export/grids?format=geojson", headers=tokens["pia"])
    assert r.status_code == 200
    assert _codes(r.content) == (NEW_CODES, {new})
    r = client.get(f"/export/grids?format=geojson&plan={old}", headers=tokens["pia"])
    assert r.status_code == 200 and _codes(r.content) == (sorted(GRID_CODES), {old})
    # The planner page's links say plan_id=N.
    assert _codes(client.get(f"/export/grids?format=geojson&plan_id={old}", headers=tokens["pia"]).content)[1] == {old}
    missing = client.get(f"/export/grids?format=geojson&plan={new + 100}", headers=tokens["pia"])
    assert missing.status_code == 404 and f"grid plan {new + 100}" in missing.text


def test_cli_export_takes_a_plan(loaded_store_url, plans, tmp_path):  # noqa: ANN001
    old, new = plans
    cli = [sys.executable, "-m", "gridpatrol.scripts.cli", "--db", loaded_store_url, "export", "grids"]
    for args, want in (([], (NEW_CODES, {new})), (["--plan", str(old)], (sorted(GRID_CODES), {old}))):
        out = tmp_path / f"grids{len(args)}.geojson"
        res = subprocess.run([*cli, str(out), *args], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        assert _codes(out.read_bytes()) == want
    res = subprocess.run([*cli, str(tmp_path / "x.geojson"), "--plan", str(new + 100)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode != 0 and f"grid plan {new + 100}" in res.stdout + res.stderr
    assert not (tmp_path / "x.geojson").exists()
