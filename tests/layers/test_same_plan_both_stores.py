"""The same inputs and seed draw the same plan on the GeoPackage and on PostGIS: grid codes, the
block each grid is made of, households, geometry and the check's verdict."""
from __future__ import annotations

import pytest
import shapely

from tests.conftest import data_path

PARAMS = {"target_households": 400, "min_households": 300, "max_households": 500, "seed": 1}


@pytest.fixture(scope="module")
def prepared():  # noqa: ANN201
    from gridpatrol.layers.importing import prepare_osm

    return prepare_osm(data_path("chengdu", "chengdu.osm"))


def _draw(url: str, prepared) -> dict:  # noqa: ANN001
    from gridpatrol.layers import grids as plans
    from gridpatrol.layers.importing import import_area_files, import_osm
    from gridpatrol.layers.store import open_store

    store = open_store(url)
    try:
        import_osm(store, prepared)
        import_area_files(store, [data_path("chengdu", "510104.geojson")], crs="gcj02", name="锦江区")
        pid = plans.draw_grids(store, plans.PlanParams(**PARAMS))
        grids = plans.read_grids(store, pid).sort_values("code").reset_index(drop=True)
        blocks = plans.read_blocks(store, pid).sort_values("block_id").reset_index(drop=True)
        check, _ = plans.check_grids(store, pid)
        return {"grids": grids, "blocks": blocks, "check": check}
    finally:
        store.dispose()


def test_same_seed_same_plan_on_geopackage_and_postgis(prepared, gpkg_url, pg_url):  # noqa: ANN001
    g, p = _draw(gpkg_url, prepared), _draw(pg_url, prepared)
    # The grids: same codes, same households and counts, same shapes.
    assert g["grids"]["code"].tolist() == p["grids"]["code"].tolist()
    for col in ("households", "buildings", "street_m", "area_m2"):
        assert g["grids"][col].to_numpy() == pytest.approx(p["grids"][col].to_numpy(), rel=1e-9, abs=1e-6), col
    assert shapely.equals_exact(g["grids"].geometry.to_numpy(), p["grids"].geometry.to_numpy(), 1e-9).all()
    # The blocks and the grid each belongs to.
    assert g["blocks"]["block_id"].tolist() == p["blocks"]["block_id"].tolist()
    assert g["blocks"]["grid_code"].tolist() == p["blocks"]["grid_code"].tolist()
    assert g["blocks"]["households"].to_numpy() == pytest.approx(p["blocks"]["households"].to_numpy(), abs=1e-9)
    # Both plans check the same, and valid: every grid in 300-500 households or exempt (one building
    # too large to split), so no store needs a tolerance.
    assert g["check"].valid and p["check"].valid
    kinds = [sorted(r.problems[["kind", "severity"]].itertuples(index=False, name=None)) for r in (g["check"], p["check"])]
    assert kinds[0] == kinds[1]
    assert all(sev != "error" for _, sev in kinds[0]), kinds[0]
    out = g["grids"][~g["grids"]["exempt"].astype(bool)]
    assert out["households"].between(PARAMS["min_households"], PARAMS["max_households"]).all()
