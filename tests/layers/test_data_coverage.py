"""Data sanity before drawing: an area whose streets and buildings cover only a corner of it is
warned about (check-grids, draw-grids) and refused below 20 % unless allow_sparse (library, CLI,
API); household densities no city has are warned about. Real Chengdu data clipped to a corner of
锦江区 (510104), both stores."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import geopandas as gpd
import pytest
import shapely
from gridpatrol.gis.crs import to_wgs84_geometry
from gridpatrol.gis.data_coverage import CELL_M
from gridpatrol.gis.errors import InputError
from gridpatrol.layers import grids as plans
from gridpatrol.layers.grids.sanity import data_checks
from gridpatrol.layers.importing import OsmOptions, import_areas, import_osm

from tests.conftest import data_path
from tests.e2e.test_cli_grids import INPUT_EXIT, run

# The extract's declared bounds (its <bounds> header): the import claims to cover all of this.
EXTRACT = shapely.box(104.0421, 30.6528, 104.1296, 30.7279)


def _district():
    geom = gpd.read_file(data_path("chengdu", "510104.geojson")).geometry.values[0]
    return to_wgs84_geometry(geom, "gcj02")


def _corner(share: float):
    """A box at the south-west corner of 锦江区's part of the extract holding ``share`` of that part."""
    plan = _district().intersection(EXTRACT)
    minx, miny, maxx, maxy = plan.bounds
    lo, hi = 0.0, 1.0
    for _ in range(40):
        f = (lo + hi) / 2
        box = shapely.box(minx, miny, minx + f * (maxx - minx), miny + f * (maxy - miny))
        lo, hi = (f, hi) if plan.intersection(box).area / plan.area < share else (lo, f)
    return box


def _clipped_extract(tmp_path, box):
    """chengdu.osm with only the nodes in ``box`` and the ways made of them, header bounds kept:
    an extract that claims the whole box of the city but holds data in one corner."""
    tree = ET.parse(data_path("chengdu", "chengdu.osm"))
    root = tree.getroot()
    keep = set()
    for n in list(root.findall("node")):
        if box.contains(shapely.Point(float(n.get("lon")), float(n.get("lat")))):
            keep.add(n.get("id"))
        else:
            root.remove(n)
    for w in list(root.findall("way")):
        if not all(nd.get("ref") in keep for nd in w.findall("nd")):
            root.remove(w)
    for r in list(root.findall("relation")):
        root.remove(r)
    assert root.find("bounds") is not None
    out = tmp_path / "corner.osm"
    tree.write(out, encoding="utf-8", xml_declaration=True)
    return out


def _load(store, tmp_path, share: float):
    box = _corner(share)
    import_osm(store, _clipped_extract(tmp_path, box))
    import_areas(store, data_path("chengdu", "510104.geojson"), crs="gcj02")
    return box


def _upper_bound(box) -> float:
    """Share of the planning area within a cell's diagonal of ``box``: no cell beyond it meets the data."""
    plan = gpd.GeoSeries([_district().intersection(EXTRACT)], crs=4326).to_crs(32648).values[0]
    near = gpd.GeoSeries([box], crs=4326).to_crs(32648).buffer(CELL_M * 2 ** 0.5).values[0]
    return plan.intersection(near).area / plan.area


def test_a_quarter_covered_district_is_warned_about_and_drawn(store, tmp_path):
    box = _load(store, tmp_path, 0.25)
    check = data_checks(store, plans.planning_areas(store))
    assert len(check) == 1
    share = check[0]["share"]
    # the corner is downtown (streets everywhere); no cell farther than its diagonal from the data counts
    assert 0.2 <= share <= _upper_bound(box) and share < 0.8
    pid = plans.draw_grids(store, plans.PlanParams(seed=1))
    res, _ = plans.check_grids(store, pid)
    warn = res.problems[res.problems["kind"] == "data_coverage"]
    assert len(warn) == 1 and warn["severity"].iloc[0] == "warning"
    detail = warn["detail"].iloc[0]
    assert "510104" in detail and f"{100 * share:.0f} %" in detail and "data extent 104.06" in detail
    assert res.summary["data_coverage"]["510104"]["share"] == pytest.approx(share, abs=1e-4)


def test_a_tenth_covered_district_is_refused_unless_allow_sparse(store, tmp_path):
    _load(store, tmp_path, 0.10)
    share = data_checks(store, plans.planning_areas(store))[0]["share"]
    assert share < 0.2
    with pytest.raises(InputError, match=rf"area 510104: {100 * share:.0f} % of 3\.7 km²") as info:
        plans.draw_grids(store, plans.PlanParams(seed=1))
    assert "--allow-sparse" in str(info.value.hint)
    assert len(plans.list_plans(store)) == 0 and store.count("grids") == 0 and store.count("blocks") == 0
    pid = plans.draw_grids(store, plans.PlanParams(seed=1, allow_sparse=True))
    import json

    m = json.loads(plans.plan_row(store, pid)["metrics_json"])
    assert [w["kind"] for w in m["data_warnings"]] == ["data_coverage"]
    assert m["data_coverage"]["510104"]["share"] == pytest.approx(share, abs=1e-4)


def test_full_extract_has_no_coverage_warning_and_wrong_units_are_named(store):
    # 1 m² of floor per household instead of 100: households a hundred times too many.
    import_osm(store, data_path("chengdu", "chengdu.osm"), options=OsmOptions(m2_per_household=1.0))
    import_areas(store, data_path("chengdu", "510104.geojson"), crs="gcj02")
    c = data_checks(store, plans.planning_areas(store))[0]
    assert c["share"] > 0.95
    assert [w["kind"] for w in c["warnings"]] == ["implausible_density"]
    assert "m2-per-household" in c["warnings"][0]["detail"] and "510104" in c["warnings"][0]["detail"]


def test_the_real_extract_has_a_plausible_density(store):
    import_osm(store, data_path("chengdu", "chengdu.osm"))
    import_areas(store, data_path("chengdu", "510104.geojson"), crs="gcj02")
    c = data_checks(store, plans.planning_areas(store))[0]
    assert c["warnings"] == [] and 100 < c["households_per_km2"] < 40_000


def test_cli_and_api_refuse_a_sparse_area(store_url, tmp_path):
    from fastapi.testclient import TestClient
    from gridpatrol.api.app import create_app
    from gridpatrol.api.config import load_settings
    from gridpatrol.layers import users
    from gridpatrol.layers.store import open_store

    store = open_store(store_url)
    _load(store, tmp_path, 0.10)
    users.create_user(store, "planner1", "planner", "pw-planner-123456")
    store.dispose()
    bad = run(store_url, "draw-grids", expect=INPUT_EXIT)
    assert "510104" in bad.stderr and "--allow-sparse" in bad.stderr and "Traceback" not in bad.stderr
    app = create_app(store_url, settings=load_settings(log_level="WARNING"))
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            tok = client.post("/auth/token", data={"username": "planner1", "password": "pw-planner-123456"})
            assert tok.status_code == 200, tok.text
            auth = {"Authorization": f"Bearer {tok.json()['access_token']}"}
            r = client.post("/grids/draw", json={"seed": 1}, headers=auth)
            assert r.status_code == 422 and "510104" in r.text, r.text
            assert client.get("/grids/plans", headers=auth).json() == []
            r = client.post("/grids/draw", json={"seed": 1, "allow_sparse": True}, headers=auth)
            assert r.status_code == 201, r.text
            assert [w["kind"] for w in r.json()["warnings"]] == ["data_coverage"]
    finally:
        app.state.store.dispose()
    out = run(store_url, "draw-grids", "--allow-sparse")
    assert "data_coverage" in out.stderr and "510104" in out.stderr
