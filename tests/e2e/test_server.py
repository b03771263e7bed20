"""The real server (uvicorn subprocess) on both stores, driven over HTTP: draw and edit grids, plan a
route and download its sheet, create and advance an incident, look up a point, page OGC items."""
from __future__ import annotations

import json
import subprocess
import warnings

import gpxpy
import httpx
import pytest
import shapely
from shapely.geometry import shape

from tests.api.live_server import USERS, cli, login, served_built_store
from tests.conftest import missing_dependency


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def server(request, tmp_path_factory):  # noqa: ANN001, ANN201
    with served_built_store(request, tmp_path_factory, "e2e") as (db, base, _tmp):
        yield {"base": base, "db": db, "headers": {name: login(base, name) for name in USERS.values()}}


def _get(s: dict, path: str, user: str | None = None, **kw) -> httpx.Response:
    return httpx.get(s["base"] + path, headers=s["headers"].get(user, {}), timeout=120, **kw)


def _post(s: dict, path: str, user: str, body: dict | None = None, **kw) -> httpx.Response:
    return httpx.post(s["base"] + path, headers=s["headers"][user], json=body, timeout=600, **kw)


def test_grids_routes_incidents_lookup(server, tmp_path):  # noqa: ANN001
    s = server
    # Draw grids as the planner; the plan checks valid (full coverage, no overlaps).
    r = _post(s, "/grids/draw", "pia", {"target_households": 400, "min_households": 300, "max_households": 500, "seed": 1})
    assert r.status_code == 201, r.text
    plan = r.json()["plan_id"]
    check = _get(s, f"/grids/check?plan_id={plan}").json()
    # Every rule holds on both stores (the same seed draws the same plan on each: see
    # tests/layers/test_same_plan_both_stores.py); the one grid above 500 is a single building.
    assert check["summary"]["gap_m2"] == 0 and check["summary"]["overlap_m2"] == 0, check["summary"]
    assert check["summary"]["buildings_unassigned"] == 0 and check["summary"]["buildings_cut"] == 0
    errors = [f["properties"] for f in check["problems"]["features"] if f["properties"].get("severity") == "error"]
    assert errors == [] and check["valid"], errors
    grids = _get(s, f"/grids?plan_id={plan}", "pia").json()["features"]
    assert len(grids) >= 4
    area = _get(s, "/areas/510104").json()
    district = shape(area["geometry"])
    parts = [shape(g["geometry"]) for g in grids]
    union = shapely.union_all(parts)
    # Independent checks: no overlaps (areas add up to the union) and nothing outside the
    # district (the grids cover the district as far as the OSM extract reaches).
    assert sum(p.area for p in parts) == pytest.approx(union.area, rel=1e-7)
    # (tolerance: grids are snapped to a 0.1 mm grid, a few m² along a 20 km boundary)
    assert union.difference(district).area < 1e-5 * union.area

    # Edit: lock one grid and split the one made of most blocks (force: parts may leave the band).
    codes = [g["properties"]["code"] for g in grids]
    blocks = _get(s, f"/ogc/collections/blocks/items?plan_id={plan}&limit=10000").json()["features"]
    per_grid = {c: sum(b["properties"]["grid_code"] == c for b in blocks) for c in codes}
    largest = max(per_grid, key=per_grid.get)
    assert per_grid[largest] >= 2
    locked = next(c for c in codes if c != largest)
    r = _post(s, "/grids/lock", "pia", {"codes": [locked]})
    assert r.status_code == 200 and r.json()["plan_id"] > plan
    r = _post(s, f"/grids/{locked}/split", "pia", {"parts": 2})
    assert r.status_code == 409 and "locked" in r.json()["detail"]
    r = _post(s, f"/grids/{largest}/split", "pia", {"parts": 2, "force": True})
    assert r.status_code == 200, r.text
    edited = r.json()["plan_id"]
    after = _get(s, f"/grids?plan_id={edited}", "pia").json()["features"]
    assert len(after) == len(grids) + 1
    # The edit keeps the covered area exactly.
    assert shapely.union_all([shape(g["geometry"]) for g in after]).symmetric_difference(union).area < 1e-7 * union.area
    assert sum(g["properties"]["households"] for g in after) == pytest.approx(sum(g["properties"]["households"] for g in grids))
    assert _post(s, "/grids/draw", "dan", {}).status_code == 403

    # Plan a walking route for the smallest grid and download its sheet and GPX.
    small = min(after, key=lambda g: shape(g["geometry"]).area)["properties"]["code"]
    r = _post(s, "/routes/plan", "pia", {"grids": [small], "mode": "walk", "time_limit_s": 20})
    assert r.status_code == 201 and r.json()[0]["ok"], r.text
    summary = r.json()[0]["summary"]
    assert summary["length_m"] >= summary["required_m"] > 0
    pdf = _get(s, f"/routes/{small}/sheet.pdf", "pia")
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-" and len(pdf.content) < 2_000_000
    (tmp_path / "sheet.pdf").write_bytes(pdf.content)
    text = subprocess.run(["pdftotext", str(tmp_path / "sheet.pdf"), "-"], capture_output=True, text=True).stdout
    assert small in text and "OpenStreetMap" in text
    gpx = gpxpy.parse(_get(s, f"/routes/{small}/route.gpx", "pia").text)
    pts = [p for t in gpx.tracks for seg in t.segments for p in seg.points]
    route = _get(s, f"/routes/{small}", "pia").json()["features"][0]
    line = shape(route["geometry"])
    assert len(pts) >= 2 and line.distance(shapely.Point(pts[0].longitude, pts[0].latitude)) < 1e-6
    assert route["properties"]["directions"] and route["properties"]["length_m"] == pytest.approx(summary["length_m"])
    assert _get(s, f"/routes/{small}/sheet.pdf", "vic").status_code == 403

    # Create an incident inside a grid as the dispatcher: the grid is attached automatically.
    g0 = shape(after[0]["geometry"])
    p = g0.representative_point()
    r = _post(s, "/incidents", "dan", {"lon": p.x, "lat": p.y, "category": "消防安全", "description": "e2e 测试"})
    assert r.status_code == 201, r.text
    inc = r.json()
    assert inc["grid_code"] == after[0]["properties"]["code"]
    path = ["escalated", "assigned", "completed", "feedback", "revisited", "closed"]
    for to in path:
        r = _post(s, f"/incidents/{inc['id']}/advance", "dan", {"to": to, "note": f"e2e {to}"})
        assert r.status_code == 200, r.text
    assert _post(s, f"/incidents/{inc['id']}/advance", "dan", {"to": "assigned"}).status_code == 409
    events = _get(s, f"/incidents/{inc['id']}/events", "dan").json()
    assert [e["to_state"] for e in events] == ["reported", *path]

    # Look up the point: grid, worker field, the new incident nearest, cameras with sectors.
    look = _get(s, f"/lookup?lon={p.x}&lat={p.y}&days=1", "dan").json()
    assert look["grid"]["code"] == inc["grid_code"]
    assert look["incidents"][0]["id"] == inc["id"] and look["incidents"][0]["distance_m"] < 1
    for c in look["cameras"]:
        assert c["in_view"] and c["distance_m"] <= (c["range_m"] or 100) + 1
    assert "cameras" not in _get(s, f"/lookup?lon={p.x}&lat={p.y}", "pia").json()

    # Every write above is in the audit log with its actor.
    audit = _get(s, "/auth/audit?limit=1000", "ada").json()
    acts = {(e["actor"], e["action"]) for e in audit}
    assert ("pia", "POST /grids/draw") in acts and ("dan", "POST /incidents") in acts
    assert ("dan", f"POST /incidents/{inc['id']}/advance") in acts


def test_ogc_paging_over_http_matches_cli_counts(server):  # noqa: ANN001
    s = server
    info = json.loads(cli(s["db"], "info", "--json").stdout)
    counts = {row["layer"]: row["rows"] for row in info["layers"]}
    for layer, user in (("roads", None), ("buildings", None), ("cameras", "ada"), ("incidents", "dan")):
        ids, url = [], f"/ogc/collections/{layer}/items?limit=500"
        while url:
            body = _get(s, url, user).json()
            ids += [f["id"] for f in body["features"]]
            nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
            url = nxt[0].replace(s["base"], "") if nxt else ""
        if layer == "cameras":
            assert len(ids) == len(set(ids)) == counts[layer] > 0
        else:
            assert len(ids) == len(set(ids)) == counts[layer] > 0, layer
    assert _get(s, "/ogc/collections/cameras/items", "vic").status_code == 403
    assert _get(s, "/ogc/collections/cameras/items", "dan").status_code == 200


def _gdal_read(base: str, layer: str, headers: dict[str, str]):  # noqa: ANN202
    """Read a whole collection with GDAL's own OGC API – Features client (the OAPIF driver), in
    pages of 100 so that it follows our ``next`` links, as a desktop GIS does."""
    import pyogrio

    _gdal_token(headers)
    try:
        return pyogrio.read_dataframe(f"OAPIF:{base}/ogc", layer=layer, PAGE_SIZE=100)
    finally:
        _gdal_token(None)


def _gdal_token(headers: dict[str, str] | None) -> None:
    """Log GDAL's HTTP client in with our bearer token (or out, with None)."""
    import pyogrio

    token = headers["Authorization"].split()[1] if headers else None
    pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": token and "BEARER", "GDAL_HTTP_BEARER": token})


def test_gdal_ogc_api_client_reads_every_layer(server):  # noqa: ANN001
    """An independent client (GDAL, which QGIS also ships) pages through our OGC API: every row
    arrives once with its geometry, and camera access follows the roles."""
    import pyogrio

    s = server
    info = json.loads(cli(s["db"], "info", "--json").stdout)
    counts = {row["layer"]: row["rows"] for row in info["layers"]}
    for layer, user in (("buildings", "vic"), ("grids", "vic"), ("cameras", "ada"), ("incidents", "dan")):
        if counts.get(layer, 0) == 0:
            continue  # grids exist only once a plan is drawn (the first test draws one)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = _gdal_read(s["base"], layer, s["headers"][user])
        # GDAL takes the field types from the collection's JSON Schema, not from the first page:
        # nothing is squeezed into a narrower type on the way (67.5 households stay 67.5).
        lossy = [str(w.message) for w in caught if "Lossy conversion" in str(w.message)]
        assert not lossy, (layer, lossy[:3])
        if layer == "buildings":
            assert df["households"].dtype.kind == "f" and (df["households"] % 1 != 0).any()
        assert len(df) == counts[layer], (layer, len(df), counts[layer])
        assert df.geometry.notna().all() and df.crs.to_string() == "OGC:CRS84", (layer, df.crs)
        assert df.total_bounds[0] > 103 and df.total_bounds[3] < 32, (layer, df.total_bounds)  # Chengdu, lon/lat order
    seen = {}
    for user in ("vic", "dan"):
        _gdal_token(s["headers"][user])
        try:
            seen[user] = {name for name, _ in pyogrio.list_layers(f"OAPIF:{s['base']}/ogc")}
        finally:
            _gdal_token(None)
    assert "buildings" in seen["vic"] and "cameras" not in seen["vic"], seen["vic"]
    assert "cameras" in seen["dan"], seen["dan"]
    # Part 2: CRS84 is confirmed; EPSG:4326 by URI (latitude first) is refused, not mis-answered.
    ok = _get(s, "/ogc/collections/roads/items?limit=1&crs=http://www.opengis.net/def/crs/OGC/1.3/CRS84")
    assert ok.status_code == 200 and ok.headers["Content-Crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    bad = _get(s, "/ogc/collections/roads/items?crs=http://www.opengis.net/def/crs/EPSG/0/4326")
    assert 400 <= bad.status_code < 500 and "CRS84" in bad.text, bad.text


def test_health_docs_and_landing(server):  # noqa: ANN001
    s = server
    assert _get(s, "/healthz").json() == {"status": "ok"}
    ready = _get(s, "/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["map_assets"] == "ok"
    assert "swagger" in _get(s, "/docs").text.lower()
    spec = _get(s, "/openapi.json").json()
    assert "/ogc/collections/{layer}/items" in spec["paths"] and "/lookup" in spec["paths"]
    landing = _get(s, "/").text
    assert 'href="/maps/grids"' in landing and 'href="/docs"' in landing


def test_schemathesis_bounded_fuzz(server, tmp_path):  # noqa: ANN001
    """A bounded schemathesis run over the OpenAPI schema against the live server: no 500s.

    Runs last in this module (it writes random areas, users and incidents). Long computations
    (drawing, splitting, route planning, and queueing them as jobs) are excluded; their bad inputs have
    their own tests. So is
    POST /auth/logout: it would revoke the token the run uses (tests/api/test_token_revocation.py).
    """
    import shutil
    import sys
    from pathlib import Path

    st = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    if not Path(st).exists():
        missing_dependency("schemathesis is not installed (pip install schemathesis)")
    token = server["headers"]["ada"]["Authorization"]
    res = subprocess.run(
        [st, "run", server["base"] + "/openapi.json", "-H", f"Authorization: {token}", "-c", "not_a_server_error",
         "-n", "6", "--generation-deterministic", "--max-time", "90", "-w", "1", "--no-color",
         "--exclude-path-regex", r"^/(auth/logout|grids/draw|grids/import|grids/.*/split|grids/merge|grids/move-blocks|grids/rebalance|routes/plan|jobs$)",
         "--continue-on-failure", "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=400,
    )
    assert "Server error" not in res.stdout and res.returncode == 0, res.stdout[-4000:]
