"""Camera and incident imports over the API: the CLI's validation and messages, all or nothing,
size limits, roles (cameras never leak), audit; on both stores with real files."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from tests.api.api_seed import CLEARED_DISPATCHER, DATA
from tests.conftest import missing_dependency

CCTV_MAP = "code=ID,name=CameraName,owner_unit=Owner,lon=Longitude,lat=Latitude"
CRIME_MAP = "occurred_at=CrimeDate,time=CrimeTime,category=Description,lon=Longitude,lat=Latitude"


def _file(*parts: str):  # noqa: ANN202
    p = DATA.joinpath(*parts)
    if not p.exists():
        missing_dependency(f"real data file {p} is missing (expected ../shared/data next to the repository)")
    return p


def _count(client, tokens, layer: str) -> int:  # noqa: ANN001
    return client.get(f"/ogc/collections/{layer}/items?limit=1", headers=tokens["ada"]).json()["numberMatched"]


def _cctv_rows() -> tuple[list[str], list[list[str]]]:
    with open(_file("baltimore", "cctv_2014.csv"), encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def _csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    return buf.getvalue().encode("utf-8")


CAM_PARAMS = {"map": CCTV_MAP, "code_prefix": "baltimore:", "project": "other"}


def test_camera_csv_upload_imports_every_row(client, tokens):  # noqa: ANN001
    header, rows = _cctv_rows()
    before = _count(client, tokens, "cameras")
    r = client.post("/cameras/import", params=CAM_PARAMS, headers=tokens["ada"],
                    files={"file": ("cctv_2014.csv", _csv_bytes(header, rows), "text/csv")})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["counts"]["cameras"] == len(rows) == 614 and body["source"] == "upload cctv_2014.csv"
    assert _count(client, tokens, "cameras") == before + len(rows)
    # Independent check of a few rows against the CSV itself: code prefix and position.
    i_id, i_lon, i_lat = header.index("ID"), header.index("Longitude"), header.index("Latitude")
    for row in rows[::150]:
        cam = client.get(f"/cameras/baltimore:{row[i_id]}", headers=tokens["ada"]).json()
        assert cam["geometry"]["coordinates"] == pytest.approx([float(row[i_lon]), float(row[i_lat])], abs=1e-9)
    # Re-importing updates, never duplicates.
    r = client.post("/cameras/import", params=CAM_PARAMS, headers=tokens["ada"],
                    files={"file": ("cctv_2014.csv", _csv_bytes(header, rows), "text/csv")})
    assert r.status_code == 201 and r.json()["counts"]["replaced"] == len(rows)
    assert _count(client, tokens, "cameras") == before + len(rows)


def test_bad_camera_rows_refuse_the_file_with_the_cli_message(client, tokens, tmp_path, loaded_store_url):  # noqa: ANN001
    from gridpatrol.gis.errors import InputError
    from gridpatrol.layers.cameras import import_cameras
    from gridpatrol.layers.store import open_store

    header, rows = _cctv_rows()
    rows = [list(r) for r in rows[:40]]
    for r in rows:
        r[header.index("ID")] = "x" + r[header.index("ID")]  # new codes: nothing of this file is stored yet
    rows[4][header.index("Latitude")] = "abc"
    rows[8][header.index("ID")] = rows[2][header.index("ID")]
    data = _csv_bytes(header, rows)
    cams, imports = _count(client, tokens, "cameras"), _count(client, tokens, "imports")
    r = client.post("/cameras/import", params=CAM_PARAMS, headers=tokens["ada"],
                    files={"file": ("bad cams.csv", data, "text/csv")})
    assert r.status_code == 422, r.text
    body = r.json()
    # The same message as the command line, with the file named as uploaded.
    disk = tmp_path / "bad_cams.csv"
    disk.write_bytes(data)
    store = open_store(loaded_store_url)
    try:
        with pytest.raises(InputError) as cli_err:
            import_cameras(store, disk, crs="wgs84", mapping=CCTV_MAP, code_prefix="baltimore:", project="other")
    finally:
        store.dispose()
    cli_message = str(cli_err.value).replace(str(disk), "upload bad_cams.csv")
    assert "--skip-bad" in cli_message  # the CLI's way out, which the API does not offer
    assert body["detail"].split(" (fix the rows")[0] == cli_message.split(" (fix the rows")[0]
    assert "--skip-bad" not in body["detail"] and "send the whole file again" in body["detail"]
    assert "nothing was imported" in body["detail"]
    by_row = {p["row"]: p for p in body["problems"]}
    assert set(by_row) == {5, 9}
    assert by_row[5]["line"] == 6 and by_row[5]["field"] == "lon/lat" and "not numbers" in by_row[5]["problem"]
    assert by_row[9]["field"] == "code" and "repeats row 3" in by_row[9]["problem"]
    assert _count(client, tokens, "cameras") == cams and _count(client, tokens, "imports") == imports
    assert client.get(f"/cameras/baltimore:{rows[0][header.index('ID')]}", headers=tokens["ada"]).status_code == 404


def _chengdu_features(n: int = 6) -> list[dict]:
    """GB/T 28181 cameras in central Chengdu given in GCJ-02, secrecy levels 0..3."""
    rng = np.random.default_rng(11)
    out = []
    for i in range(n):
        out.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [
            104.065 + float(rng.uniform(-0.01, 0.01)), 30.66 + float(rng.uniform(-0.01, 0.01))]},
            "properties": {"code": f"51010400{'13'}131{'1'}{900000 + i:06d}", "name": f"导入测试{i}", "project": "雪亮",
                           "direction_deg": 90, "type": "枪机", "secrecy_level": i % 4}})
    return out


def test_geojson_body_in_gcj02_and_secrecy(client, tokens):  # noqa: ANN001
    from gridpatrol.gis.crs import wgs84_to_gcj02

    feats = _chengdu_features()
    bad = json.loads(json.dumps(feats))
    bad[3]["properties"]["fov_deg"] = 500
    bad[4]["geometry"] = None
    before = _count(client, tokens, "cameras")
    r = client.post("/cameras/import?crs=gcj02", headers=tokens["ada"],
                    json={"type": "FeatureCollection", "features": bad})
    assert r.status_code == 422, r.text
    probs = {p["feature_index"]: p for p in r.json()["problems"]}
    assert set(probs) == {3, 4} and probs[3]["field"] == "fov_deg" and probs[4]["field"] == "lon/lat"
    assert "row 4: fov_deg 500 is outside" in r.json()["detail"]
    assert _count(client, tokens, "cameras") == before
    r = client.post("/cameras/import?crs=gcj02", headers={**tokens["ada"], "Content-Type": "application/geo+json"},
                    content=json.dumps({"type": "FeatureCollection", "features": feats}).encode())
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["cameras"] == len(feats)
    for f in feats:
        cam = client.get(f"/cameras/{f['properties']['code']}", headers=tokens["ada"]).json()
        lon, lat = cam["geometry"]["coordinates"]
        glon, glat = f["geometry"]["coordinates"]
        # Stored in WGS-84: a few hundred metres from the GCJ-02 input, and back onto it exactly.
        assert 0.001 < abs(glon - lon) + abs(glat - lat) < 0.01
        x, y = wgs84_to_gcj02(np.array([lon]), np.array([lat]))
        assert (x[0], y[0]) == pytest.approx((glon, glat), abs=1e-6)
        assert cam["properties"]["project"] == "sharp_eyes" and cam["properties"]["camera_type"] == "fixed"
    codes = {f["properties"]["code"]: f["properties"]["secrecy_level"] for f in feats}
    for user, clear in (("dan", 0), (CLEARED_DISPATCHER, 2)):
        seen = {c["properties"]["code"] for c in client.get("/cameras?limit=10000", headers=tokens[user]).json()["features"]}
        assert {c for c, lv in codes.items() if lv <= clear} <= seen
        assert not {c for c, lv in codes.items() if lv > clear} & seen


def test_only_admins_import_cameras_and_nothing_leaks(client, tokens):  # noqa: ANN001
    feats = _chengdu_features(2)
    for f in feats:
        f["properties"]["code"] = f["properties"]["code"][:-6] + "77777" + f["properties"]["code"][-1]
    before = _count(client, tokens, "cameras")
    for user in ("dan", CLEARED_DISPATCHER, "pia", "wu", "vic", "anonymous"):
        r = client.post("/cameras/import", headers=tokens[user], json={"type": "FeatureCollection", "features": feats})
        assert r.status_code == 403 and "may not import cameras" in r.json()["detail"], (user, r.text)
        assert feats[0]["properties"]["code"] not in r.text and "104.0" not in r.text
        r = client.post("/cameras/import", headers=tokens[user], files={"file": ("c.csv", b"code,name\n", "text/csv")})
        assert r.status_code == 403
    assert _count(client, tokens, "cameras") == before


def test_incident_json_records_with_mapping(client, tokens):  # noqa: ANN001
    path = _file("baltimore", "crime_2018_homicide.json")
    records = json.loads(path.read_text(encoding="utf-8"))
    with_xy = sum(1 for r in records if r.get("Longitude") is not None and r.get("Latitude") is not None)
    before = _count(client, tokens, "incidents")
    params = {"map": CRIME_MAP, "tz": "America/New_York", "state": "closed"}
    for user in ("pia", "wu", "vic", "anonymous"):
        r = client.post("/incidents/import", params=params, headers=tokens[user], json=records)
        assert r.status_code == 403 and "may not import incidents" in r.json()["detail"], user
    r = client.post("/incidents/import", params=params, headers=tokens["dan"], json=records)
    assert r.status_code == 201, r.text
    counts = r.json()["counts"]
    assert counts["incidents"] == with_xy and counts["no_coordinates"] == len(records) - with_xy
    assert _count(client, tokens, "incidents") == before + with_xy
    # Baltimore's epoch-ms dates with a local time of day: the first record is 2018-12-31 10:19 EST.
    got = client.get("/incidents?category=HOMICIDE&datetime=2018-12-31T15:19:00Z&limit=5", headers=tokens["dan"]).json()
    assert got["numberMatched"] >= 1
    assert {f["properties"]["state"] for f in got["features"]} == {"closed"}
    assert "camera" not in json.dumps(r.json()).lower()


def test_bad_incident_rows_refuse_everything(client, tokens):  # noqa: ANN001
    recs = [{"occurred_at": "2018-05-01T10:00:00+08:00", "category": "治安", "lon": 104.07, "lat": 30.66},
            {"occurred_at": "yesterday-ish", "category": "治安", "lon": 104.07, "lat": 30.66},
            {"occurred_at": "2018-05-01T11:00:00+08:00", "category": "", "lon": 104.07, "lat": 30.66},
            {"occurred_at": "2018-05-01T12:00:00+08:00", "category": "消防", "lon": 104.07, "lat": 30.66, "state": "banana"}]
    before = _count(client, tokens, "incidents")
    r = client.post("/incidents/import", headers=tokens["dan"], json=recs)
    assert r.status_code == 422, r.text
    probs = {p["row"]: p["field"] for p in r.json()["problems"]}
    assert probs == {2: "occurred_at", 3: "category", 4: "state"}
    assert "3 bad incident row(s); nothing was imported" in r.json()["detail"]
    assert _count(client, tokens, "incidents") == before
    # CSV as the raw body, GCJ-02 coordinates: good → stored in WGS-84 with its grid attached.
    text = "occurred_at,category,lon,lat\n2018-06-01T09:00:00+08:00,环境卫生,104.0725,30.6625\n"
    r = client.post("/incidents/import?crs=gcj02", headers={**tokens["ada"], "Content-Type": "text/csv"},
                    content=text.encode())
    assert r.status_code == 201 and r.json()["counts"]["incidents"] == 1, r.text


@pytest.mark.parametrize("path,kw,words", [
    ("/incidents/import?tz=Mars/Olympus", {"json": [{"a": 1}]}, ["time zone"]),
    ("/incidents/import?state=banana", {"json": [{"a": 1}]}, ["state"]),
    ("/incidents/import?crs=utm", {"json": [{"a": 1}]}, ["crs"]),
    ("/cameras/import", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, ["not valid json"]),
    ("/cameras/import", {"json": {"type": "Feature"}}, ["featurecollection"]),
    ("/cameras/import", {"json": {"type": "FeatureCollection", "features": 5}}, ["features"]),
    ("/cameras/import", {"content": b"", "headers": {"Content-Type": "text/csv"}}, ["empty"]),
    ("/cameras/import", {"content": b"<xml/>", "headers": {"Content-Type": "application/xml"}}, ["content-type"]),
    ("/cameras/import", {"files": {"file": ("cams.xlsx", b"PK..", "application/octet-stream")}}, ["unknown file kind"]),
    ("/cameras/import", {"files": {"other": ("cams.csv", b"a,b\n1,2\n", "text/csv")}}, ["file"]),
    ("/cameras/import", {"files": {"file": ("cams.csv", b"a,b\n1,2\n", "text/csv")}}, ["required column", "upload cams.csv"]),
    ("/cameras/import", {"files": {"file": ("c.gpkg", b"not a geopackage at all", "application/octet-stream")}}, ["cannot read"]),
    ("/cameras/import?map=code", {"json": [{"code": "x"}]}, ["ours=theirs"]),
    ("/cameras/import?crs=EPSG:99999", {"json": [{"code": "osm:1", "name": "a", "project": "other", "lon": 1, "lat": 2}]},
     ["unknown coordinate system"]),
    # CGCS2000 is degrees: projected-looking numbers are refused, not stored as nonsense.
    ("/cameras/import?crs=EPSG:4490", {"json": [{"code": "osm:1", "name": "a", "project": "other", "lon": 1400000,
                                                  "lat": 600000}]}, ["not longitude/latitude"]),
    ("/incidents/import", {"json": [{"occurred_at": "2018-01-01", "category": "x"}]}, ["required column"]),
    ("/incidents/import", {"json": [{"occurred_at": "2018-01-01", "category": "x", "lon": None, "lat": None}]}, ["no incident rows"]),
])
def test_bad_import_requests_are_422_with_a_message(client, tokens, path, kw, words):  # noqa: ANN001
    before = (_count(client, tokens, "cameras"), _count(client, tokens, "incidents"))
    kw = dict(kw)  # the parameters are shared by both stores' runs
    headers = {**tokens["ada"], **kw.pop("headers", {})}
    r = client.post(path, headers=headers, **kw)
    assert r.status_code == 422, (r.status_code, r.text[:300])
    detail = r.json()["detail"]
    for w in words:
        assert w.lower() in detail.lower(), (w, detail)
    assert "/tmp" not in detail and "gridpatrol-upload" not in detail
    assert (_count(client, tokens, "cameras"), _count(client, tokens, "incidents")) == before


def test_oversized_uploads_are_413(loaded_store_url, tokens):  # noqa: ANN001
    from fastapi.testclient import TestClient
    from gridpatrol.api.app import create_app
    from gridpatrol.api.config import load_settings

    header, rows = _cctv_rows()
    data = _csv_bytes(header, rows)
    app = create_app(loaded_store_url, settings=load_settings(log_level="WARNING", max_body_bytes=len(data) // 2))
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            r = c.post("/auth/token", data={"username": "ada", "password": "test-password-123"})
            h = {"Authorization": "Bearer " + r.json()["access_token"]}
            before = c.get("/ogc/collections/cameras/items?limit=1", headers=h).json()["numberMatched"]
            r = c.post("/cameras/import", params=CAM_PARAMS, headers=h, files={"file": ("big.csv", data, "text/csv")})
            assert r.status_code == 413 and "over the limit" in r.json()["detail"] and "max_body_bytes" in r.json()["detail"]
            recs = json.loads(_file("baltimore", "crime_2018_property.json").read_text(encoding="utf-8"))
            r = c.post("/incidents/import", params={"map": CRIME_MAP}, headers=h, json=recs)
            assert r.status_code == 413
            assert c.get("/ogc/collections/cameras/items?limit=1", headers=h).json()["numberMatched"] == before
    finally:
        app.state.store.dispose()


def test_imports_are_audited(client, tokens):  # noqa: ANN001
    feats = _chengdu_features(3)
    for f in feats:
        f["properties"]["code"] = f["properties"]["code"][:-6] + "55555" + f["properties"]["code"][-1]
    ok = client.post("/cameras/import?crs=gcj02", headers=tokens["ada"], json={"type": "FeatureCollection", "features": feats})
    assert ok.status_code == 201
    feats[1]["properties"]["direction_deg"] = "north"
    bad = client.post("/cameras/import", headers=tokens["ada"], json={"type": "FeatureCollection", "features": feats})
    assert bad.status_code == 422
    denied = client.post("/cameras/import", headers=tokens["dan"], json={"type": "FeatureCollection", "features": feats})
    assert denied.status_code == 403
    log = [e for e in client.get("/auth/audit?limit=1000", headers=tokens["ada"]).json()
           if e["action"] == "POST /cameras/import"]
    mine = [e for e in log if e["detail"].get("sha256") == ok.json()["sha256"]]
    assert len(mine) == 1
    e = mine[0]
    assert (e["actor"], e["detail"]["status"], e["detail"]["outcome"], e["detail"]["counts"]["cameras"]) == ("ada", 201, "imported", 3)
    assert e["detail"]["options"]["crs"] == "gcj02" and e["detail"]["source"] == "request body" and e["at"]
    refused = [x for x in log if x["detail"].get("outcome") == "refused" and x["detail"].get("status") == 422]
    assert refused and refused[0]["detail"]["bad_rows"] == 1
    assert any(x["actor"] == "dan" and x["detail"]["status"] == 403 for x in log)


def test_geopackage_upload(client, tokens, tmp_path):  # noqa: ANN001
    """A GeoPackage camera list (as QGIS saves one) uploaded as a file imports like on the command line."""
    import geopandas as gpd
    from shapely.geometry import shape

    feats = _chengdu_features(4)
    for f in feats:
        f["properties"]["code"] = f["properties"]["code"][:-6] + "33333" + f["properties"]["code"][-1]
    gdf = gpd.GeoDataFrame([f["properties"] for f in feats], geometry=[shape(f["geometry"]) for f in feats], crs=4326)
    path = tmp_path / "cams.gpkg"
    gdf.to_file(path, driver="GPKG", layer="cameras")
    r = client.post("/cameras/import", headers=tokens["ada"],
                    files={"file": ("cams.gpkg", path.read_bytes(), "application/geopackage+sqlite3")})
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["cameras"] == 4 and r.json()["source"] == "upload cams.gpkg"
    cam = client.get(f"/cameras/{feats[0]['properties']['code']}", headers=tokens["ada"]).json()
    assert cam["geometry"]["coordinates"] == pytest.approx(feats[0]["geometry"]["coordinates"], abs=1e-9)
