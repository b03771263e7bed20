"""Bad requests get a 4xx with a message that says what was wrong, never a 500; nothing half-written."""
from __future__ import annotations

import json

import pytest

from tests.api.api_seed import DATA
from tests.conftest import missing_dependency

SQLISH = ["1 OR 1=1", "'; DROP TABLE roads; --", "1); DELETE FROM users; --", "\" OR \"\"=\"", "%' UNION SELECT password_hash FROM users --"]


def _ok_error(r, *words: str) -> dict:  # noqa: ANN001
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    body = r.json()
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10
    for w in words:
        assert w.lower() in body["detail"].lower(), (w, body["detail"])
    return body


@pytest.mark.parametrize("bbox,words", [
    ("104.1,30.7,104.0,30.6", ["inverted"]),
    ("170,-10,-170,10", ["antimeridian"]),
    ("104,30.7,104.1,30.6", ["inverted", "latitude"]),
    ("1,2,3", ["4 numbers"]),
    ("a,b,c,d", ["4 numbers"]),
    ("nan,1,2,3", ["finite"]),
    ("500000,3000000,510000,3010000", ["longitude", "projected"]),
    ("1 OR 1=1", ["bbox"]),
])
def test_bad_bbox(client, bbox, words):  # noqa: ANN001
    _ok_error(client.get("/ogc/collections/roads/items", params={"bbox": bbox}), *words)
    _ok_error(client.get("/buildings", params={"bbox": bbox}), *words)


@pytest.mark.parametrize("query,words", [
    ("limit=0", ["limit"]), ("limit=-5", ["limit"]), ("limit=abc", ["limit", "integer"]),
    ("limit=1e400", ["limit"]), ("offset=-1", ["offset"]),
    ("datetime=yesterday", ["datetime"]), ("datetime=2018-05-01/2018-01-01", ["ends before"]),
    ("f=xml", ["f"]), ("nosuchfield=1", ["unknown query parameter"]),
])
def test_bad_item_queries(client, query, words):  # noqa: ANN001
    _ok_error(client.get(f"/ogc/collections/roads/items?{query}"), *words)


def test_huge_limit_is_capped(client):  # noqa: ANN001
    for limit in ("1000000000", "9" * 400):
        r = client.get(f"/ogc/collections/roads/items?limit={limit}")
        assert r.status_code == 200 and r.json()["numberReturned"] == 10_000 > 0 or (
            r.json()["numberReturned"] == r.json()["numberMatched"] < 10_000)


@pytest.mark.parametrize("s", SQLISH)
def test_sql_looking_strings_are_just_strings(client, tokens, s):  # noqa: ANN001
    r = client.get("/ogc/collections/roads/items", params={"name": s, "limit": 5})
    assert r.status_code == 200 and r.json()["numberMatched"] == 0
    assert client.get(f"/ogc/collections/{s}/items").status_code in (403, 404)
    _ok_error(client.get("/areas/" + s.replace("/", "")), "no area")
    r = client.post("/auth/token", data={"username": s, "password": s})
    _ok_error(r)
    # The tables are still there.
    assert client.get("/ogc/collections/roads/items?limit=1").json()["numberMatched"] > 1000
    assert client.get("/auth/users", headers=tokens["ada"]).status_code == 200


GOOD_AREA = {"type": "Feature", "properties": {"code": "510199"},
             "geometry": {"type": "Polygon", "coordinates": [[[104.05, 30.66], [104.06, 30.66], [104.06, 30.67], [104.05, 30.66]]]}}


@pytest.mark.parametrize("body,words", [
    ({"type": "Feature"}, ["geometry"]),
    ({"type": "FeatureCollection"}, ["features"]),
    ({"type": "FeatureCollection", "features": []}, ["no features"]),
    ({"type": "Topology"}, ["Feature"]),
    ({**GOOD_AREA, "geometry": {"type": "Polygon", "coordinates": "abc"}}, ["coordinates"]),
    ({**GOOD_AREA, "geometry": {"type": "Polygon", "coordinates": [[[1, 2], [3]]]}}, ["position"]),
    ({**GOOD_AREA, "geometry": {"type": "Polygon", "coordinates": [[[104, 30], [104.1, 30.1], [104, 30.1], [104.1, 30], [104, 30]]]}}, ["invalid", "self-intersection"]),
    ({**GOOD_AREA, "geometry": {"type": "Point", "coordinates": [104, 30]}}, ["Polygon"]),
    ({**GOOD_AREA, "geometry": {"type": "Polygon", "coordinates": [[[11570000, 3550000], [11580000, 3550000], [11580000, 3560000], [11570000, 3550000]]]}}, ["longitude"]),
    ({**GOOD_AREA, "geometry": {"type": "Circle", "coordinates": [104, 30]}}, ["unsupported"]),
    ({**GOOD_AREA, "properties": {"name": "x"}}, ["code"]),
    ({**GOOD_AREA, "crs": {"type": "name", "properties": {"name": "EPSG:2248"}}}, ["WGS-84"]),
    ([1, 2, 3], ["object"]),
])
def test_malformed_geojson(client, tokens, body, words):  # noqa: ANN001
    before = client.get("/areas").json()["numberMatched"]
    _ok_error(client.post("/areas", json=body, headers=tokens["pia"]), *words)
    assert client.get("/areas").json()["numberMatched"] == before, "a refused import changed the store"


def test_not_json_and_wrong_types(client, tokens):  # noqa: ANN001
    h = {**tokens["pia"], "Content-Type": "application/json"}
    _ok_error(client.post("/areas", content=b"{not json", headers=h), "json")
    _ok_error(client.post("/areas", content="null", headers=h))
    _ok_error(client.post("/areas?level=planet", json=GOOD_AREA, headers=tokens["pia"]), "level")
    _ok_error(client.post("/areas?crs=utm", json=GOOD_AREA, headers=tokens["pia"]), "crs")
    _ok_error(client.get("/buildings/abc"), "building_id", "integer")
    _ok_error(client.get("/ogc/collections/roads/items/1.5"), "feature_id")
    _ok_error(client.post("/auth/users", json={"name": 5, "role": [], "password": {}}, headers=tokens["ada"]), "request body")
    _ok_error(client.post("/auth/token", json={"username": "ada"}), "username")


def test_huge_bodies_are_refused_before_parsing(client, tokens):  # noqa: ANN001
    big = {"type": "FeatureCollection", "features": [GOOD_AREA] * 60_000}
    r = client.post("/areas", content=json.dumps(big).encode(), headers={**tokens["pia"], "Content-Type": "application/json"})
    _ok_error(r, "over the limit")
    assert r.status_code == 413

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(200):
            yield b" " * 65536

    r = client.post("/areas", content=chunks(), headers={**tokens["pia"], "Content-Type": "application/json"})
    assert r.status_code == 413, r.text[:200]


def test_unknown_paths_and_methods(client):  # noqa: ANN001
    _ok_error(client.get("/no/such/thing"), "no such endpoint")
    _ok_error(client.delete("/healthz"), "not allowed")


def test_real_gcj02_boundary_imports_and_moves(client, tokens):  # noqa: ANN001
    """A real district boundary (GCJ-02) posted as GeoJSON is converted, not stored raw."""
    p = DATA / "chengdu" / "510105.geojson"
    if not p.exists():
        missing_dependency(f"real data file {p} is missing")
    geom = json.loads(p.read_text(encoding="utf-8"))
    body = {"type": "Feature", "properties": {"code": "510105", "name": "青羊区"}, "geometry": geom}
    r = client.post("/areas?crs=gcj02&name_field=name", json=body, headers=tokens["pia"])
    assert r.status_code == 201, r.text
    import shapely
    from shapely.geometry import shape

    stored = shape(client.get("/areas/510105").json()["geometry"])
    raw = shape(geom)
    # GCJ-02 → WGS-84 in Chengdu moves coordinates by a few hundred metres (about 0.002–0.003°).
    shift = shapely.centroid(raw).distance(shapely.centroid(stored))
    assert 0.001 < shift < 0.006


@pytest.mark.parametrize("path", [
    "/ogc/collections/areas/items/129358608834805917043130368", "/buildings/99999999999999999999",
    "/incidents/99999999999999999999", "/grids?plan_id=99999999999999999999999",
    "/grids/diff?a=1&b=99999999999999999999999", "/grids/check?plan_id=-1",
])
def test_huge_and_negative_ids(client, tokens, path):  # noqa: ANN001
    """Found by the schemathesis run: ids beyond 64 bits reached SQLite and raised OverflowError (500)."""
    _ok_error(client.get(path, headers=tokens["ada"]))


# ---- issue 11: wrong CRS, points outside the county, malformed polygons, impossible times --------

CAMS_LONLAT = "code,name,project,lon,lat\n51010400001310000001,a,skynet,104.0805,30.6565\n51010400001310000002,b,skynet,104.083,30.648\n"
INCIDENTS_LONLAT = "occurred_at,category,lon,lat\n2024-05-01T10:00+08:00,治安,104.0805,30.6565\n"


def _count(client, tokens, layer: str) -> int:  # noqa: ANN001
    return client.get(f"/ogc/collections/{layer}/items?limit=1", headers=tokens["ada"]).json()["numberMatched"]


@pytest.mark.parametrize("crs,words", [
    ("EPSG:3857", ["look like longitude/latitude degrees", "EPSG:3857", "row 1", "row 2"]),
    ("EPSG:32648", ["look like longitude/latitude degrees", "EPSG:32648"]),
    ("EPSG:4978", ["geocentric"]),
])
def test_wrong_crs_imports_are_refused(client, tokens, crs, words):  # noqa: ANN001
    before = (_count(client, tokens, "cameras"), _count(client, tokens, "incidents"))
    h = {**tokens["ada"], "Content-Type": "text/csv"}
    body = _ok_error(client.post(f"/cameras/import?crs={crs}", content=CAMS_LONLAT.encode(), headers=h), *words)
    if crs != "EPSG:4978":
        assert [p["row"] for p in body["problems"]] == [1, 2] and body["problems"][0]["field"] == "lon/lat"
    _ok_error(client.post(f"/incidents/import?crs={crs}", content=INCIDENTS_LONLAT.encode(), headers=h), *words[:2])
    assert (_count(client, tokens, "cameras"), _count(client, tokens, "incidents")) == before


def test_points_outside_the_county_are_refused(client, tokens):  # noqa: ANN001
    district = json.loads((DATA / "chengdu" / "510104.geojson").read_text(encoding="utf-8"))
    feat = {"type": "Feature", "properties": {"code": "510104"}, "geometry": district}
    assert client.post("/areas?crs=gcj02", json=feat, headers=tokens["pia"]).status_code == 201
    before = (_count(client, tokens, "cameras"), _count(client, tokens, "incidents"))
    far = CAMS_LONLAT.replace("104.0805,30.6565", "-76.61,39.29")
    h = {**tokens["ada"], "Content-Type": "text/csv"}
    body = _ok_error(client.post("/cameras/import", content=far.encode(), headers=h), "outside the county's imported areas")
    assert [p["row"] for p in body["problems"]] == [1]
    _ok_error(client.post("/incidents/import", content=INCIDENTS_LONLAT.replace("104.0805,30.6565", "-76.61,39.29").encode(),
                          headers=h), "outside the county's imported areas")
    _ok_error(client.post("/incidents", json={"lon": -76.61, "lat": 39.29, "category": "治安"}, headers=tokens["dan"]),
              "outside the county's imported areas")
    assert (_count(client, tokens, "cameras"), _count(client, tokens, "incidents")) == before
    # 2 km outside the district is within the margin; inside is fine.
    r = client.post("/incidents", json={"lon": 104.0805, "lat": 30.6565, "category": "治安"}, headers=tokens["dan"])
    assert r.status_code == 201, r.text


ANTIMERIDIAN = [[[179.9, 30.0], [-179.9, 30.0], [-179.9, 31.0], [179.9, 30.0]]]
UNCLOSED = [[[104.05, 30.66], [104.06, 30.66], [104.06, 30.67]]]
THREE_D = [[[104.05, 30.66, 500.0], [104.06, 30.66, 500.0], [104.06, 30.67, 500.0], [104.05, 30.66, 500.0]]]


@pytest.mark.parametrize("coords,message", [
    (ANTIMERIDIAN, "feature 0: the polygon spans 359.8° of longitude: it crosses the antimeridian (180°)"),
    (UNCLOSED, "feature 0: a polygon ring is not closed (its last position must repeat its first)"),
    (THREE_D, "feature 0: the polygon has heights (3D coordinates); polygons are stored in 2D"),
], ids=["antimeridian", "unclosed", "3d"])
def test_malformed_polygons_are_refused_with_one_message(client, tokens, coords, message):  # noqa: ANN001
    """The same words on both stores (this module runs on each) for areas and grids alike."""
    feat = {"type": "Feature", "properties": {"code": "510198"}, "geometry": {"type": "Polygon", "coordinates": coords}}
    before = (client.get("/areas").json()["numberMatched"], len(client.get("/grids/plans", headers=tokens["pia"]).json()))
    for path in ("/areas", "/grids/import"):
        body = {"type": "FeatureCollection", "features": [feat]} if path == "/grids/import" else feat
        r = client.post(path, json=body, headers=tokens["pia"])
        assert r.status_code == 422, (path, r.status_code, r.text[:300])
        assert message in r.json()["detail"], (path, r.json()["detail"])
    assert (client.get("/areas").json()["numberMatched"], len(client.get("/grids/plans", headers=tokens["pia"]).json())) == before


@pytest.mark.parametrize("occurred_at", ["0001-01-01T00:00:00Z", "9999-01-01T00:00:00Z", "1985-06-01T00:00:00Z",
                                         "2999-01-01T00:00:00+08:00"])
def test_impossible_incident_dates_are_refused(client, tokens, occurred_at):  # noqa: ANN001
    before = _count(client, tokens, "incidents")
    r = client.post("/incidents", json={"lon": 104.0805, "lat": 30.6565, "category": "治安", "occurred_at": occurred_at},
                    headers=tokens["dan"])
    _ok_error(r, "occurred_at")
    assert r.status_code == 422
    assert _count(client, tokens, "incidents") == before


@pytest.mark.parametrize("value", [1e20, -1e20, 99999999999999999999, 2**63, "1e20", "0001-01-01", "9999-12-31"])
def test_out_of_range_epochs_in_imports(client, tokens, value):  # noqa: ANN001
    h = {**tokens["ada"], "Content-Type": "application/json"}
    rec = [{"occurred_at": value, "category": "治安", "lon": 104.0805, "lat": 30.6565}]
    body = _ok_error(client.post("/incidents/import", content=json.dumps(rec).encode(), headers=h), "not a date/time")
    assert body["problems"][0]["row"] == 1 and body["problems"][0]["field"] == "occurred_at"


@pytest.mark.parametrize("path", ["/cameras/import", "/incidents/import", "/areas", "/grids/import"])
def test_json_nested_1000_deep(client, tokens, path):  # noqa: ANN001
    h = {**tokens["ada"], "Content-Type": "application/json"}
    for doc in (b"[" * 1000 + b"]" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000):
        _ok_error(client.post(path, content=doc, headers=h))


def test_big5_csv_names_the_encoding(client, tokens):  # noqa: ANN001
    big5 = ("設備編碼,名稱,項目,經度,緯度\n51010400001310000009,春熙路東口,天網,104.0805,30.6565\n").encode("big5")
    h = {**tokens["ada"], "Content-Type": "text/csv"}
    before = _count(client, tokens, "cameras")
    _ok_error(client.post("/cameras/import", content=big5, headers=h), "not UTF-8", "GB18030", "big5")
    assert _count(client, tokens, "cameras") == before
    r = client.post("/cameras/import?encoding=big5", content=big5, headers=h)
    assert r.status_code == 201, r.text[:300]
    assert _count(client, tokens, "cameras") == before + 1
