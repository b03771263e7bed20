"""POST /tracks (phone chunks, GPX, GeoJSON), GET /tracks and GET /patrols/report: idempotency, role
limits and bad input, on both stores with Chengdu's streets and planned routes."""
from __future__ import annotations

import io
import uuid
from datetime import UTC

import numpy as np
import pytest

from tests.api.login import bearer
from tests.layers.track_seed import OTHER_WORKER, PASSWORD, T0, USERS, chengdu_osm, seed
from tests.store_cache import cached_module_store_url


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def client(request, tmp_path_factory):
    from fastapi.testclient import TestClient
    from gridpatrol.api.app import create_app
    from gridpatrol.api.config import load_settings

    with cached_module_store_url(request, tmp_path_factory, "tracks-seed", seed, [chengdu_osm()]) as url:
        app = create_app(url, settings=load_settings(log_level="WARNING"))
        with TestClient(app, raise_server_exceptions=False) as c:
            yield c
        app.state.store.dispose()


@pytest.fixture(scope="module")
def auth(client) -> dict[str, dict[str, str]]:
    out = {}
    for name in [*USERS.values(), OTHER_WORKER]:
        out[name] = bearer(client, name, PASSWORD)
    return out


def _points(n: int, start: int = 0) -> list[dict]:
    from datetime import datetime

    return [{"lon": 104.0725 + 1e-4 * (start + i), "lat": 30.6685, "acc": 10.0,
             "t": datetime.fromtimestamp(T0 + 10 * (start + i), UTC).isoformat()} for i in range(n)]


def test_a_phone_chunk_is_stored_once(client, auth):
    tid = str(uuid.uuid4())
    body = {"track_id": tid, "seq": 0, "device": "Android 14", "route_id": None, "points": _points(5)}
    r = client.post("/tracks", json=body, headers=auth["wu"])
    assert r.status_code == 201, r.text
    again = client.post("/tracks", json=body, headers=auth["wu"])
    assert again.status_code == 200 and again.json()["points"] == 5
    r2 = client.post("/tracks", json={**body, "seq": 1, "points": _points(5, 5)}, headers=auth["wu"])
    assert r2.status_code == 201 and r2.json()["points"] == 10 and r2.json()["id"] == r.json()["id"]
    changed = client.post("/tracks", json={**body, "points": _points(4)}, headers=auth["wu"])
    assert changed.status_code == 409
    # Another worker cannot append to it, nor see it.
    assert client.post("/tracks", json={**body, "seq": 2}, headers=auth[OTHER_WORKER]).status_code == 409
    assert client.get(f"/tracks/{r.json()['id']}", headers=auth[OTHER_WORKER]).status_code == 404
    feat = client.get(f"/tracks/{r.json()['id']}", headers=auth["wu"]).json()
    assert len(feat["geometry"]["coordinates"]) == 10 and feat["properties"]["device"] == "Android 14"


def test_role_limits(client, auth):
    body = {"track_id": str(uuid.uuid4()), "seq": 0, "device": "x", "route_id": None, "points": _points(3)}
    assert client.post("/tracks", json=body).status_code in (401, 403)  # anonymous counts as a viewer
    assert client.post("/tracks", json=body, headers=auth["vic"]).status_code == 403  # viewer
    assert client.post("/tracks", json=body, headers=auth["pia"]).status_code == 403  # planner
    assert client.post("/tracks?worker=li", json=body, headers=auth["wu"]).status_code == 403
    assert client.get("/tracks?worker=li", headers=auth["wu"]).status_code == 403
    assert client.get("/patrols/report?worker=li&from=2026-11-01&to=2026-11-30", headers=auth["wu"]).status_code == 403
    # one track of each worker, so the test does not depend on what other tests uploaded first
    assert client.post("/tracks", json={**body, "track_id": str(uuid.uuid4())}, headers=auth["wu"]).status_code < 300
    client.post("/tracks", json={**body, "track_id": str(uuid.uuid4())}, headers=auth[OTHER_WORKER])
    mine = client.get("/tracks", headers=auth["wu"]).json()
    assert mine and {t["worker"] for t in mine} == {"wu"}
    every = client.get("/tracks?worker=li", headers=auth["dan"]).json()  # dispatcher
    assert every and {t["worker"] for t in every} == {"li"}


@pytest.mark.parametrize("change, where", [
    (lambda b: b["points"][2].update(t="2026-11-02T09:00:00"), "points.2.t"),
    (lambda b: b["points"][1].update(lat="north"), "points.1.lat"),
    (lambda b: b["points"][0].update(lon=204.0), "points"),
    (lambda b: b.update(seq=-1), "seq"),
    (lambda b: b.update(track_id="../../etc"), "track_id"),
    (lambda b: b.update(points=[]), "points"),
])
def test_bad_chunks_say_what_and_where(client, auth, change, where):
    body = {"track_id": str(uuid.uuid4()), "seq": 0, "device": "x", "route_id": None, "points": _points(3)}
    change(body)
    r = client.post("/tracks", json=body, headers=auth["wu"])
    assert r.status_code == 422, r.text
    detail = r.json()["detail"].replace("[", ".").replace("]", "")
    assert where in detail, detail
    assert not [t for t in client.get("/tracks", headers=auth["wu"]).json() if t["client_id"] == body["track_id"]]


def test_gpx_and_geojson_uploads(client, auth):
    from datetime import datetime

    import gpxpy.gpx

    gpx = gpxpy.gpx.GPX()
    trk = gpxpy.gpx.GPXTrack()
    seg = gpxpy.gpx.GPXTrackSegment()
    for p in _points(20, 100):
        seg.points.append(gpxpy.gpx.GPXTrackPoint(p["lat"], p["lon"], time=datetime.fromisoformat(p["t"])))
    trk.segments.append(seg)
    gpx.tracks.append(trk)
    data = gpx.to_xml().encode()
    r = client.post("/tracks", files={"file": ("walk.gpx", io.BytesIO(data), "application/gpx+xml")}, headers=auth["wu"])
    assert r.status_code == 201, r.text
    again = client.post("/tracks", content=data, headers={**auth["wu"], "Content-Type": "application/gpx+xml"})
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [p["lon"], p["lat"]]}, "properties": {"time": p["t"]}}
        for p in _points(5, 300)]}
    r = client.post("/tracks?worker=li", json=fc, headers=auth["dan"])
    assert r.status_code == 201, r.text
    assert client.get(f"/tracks/{r.json()['id']}", headers=auth[OTHER_WORKER]).json()["properties"]["worker"] == "li"
    broken = client.post("/tracks", content=b"<gpx><trk><trkseg><trkpt lat='x'", headers={**auth["wu"], "Content-Type": "application/gpx+xml"})
    assert broken.status_code == 422 and "GPX" in broken.json()["detail"]
    no_time = client.post("/tracks", json={"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[104.07, 30.67], [104.071, 30.67]]},
                                           "properties": {}}, headers=auth["wu"])
    assert no_time.status_code == 422 and "times" in no_time.json()["detail"]


def test_the_report_json_and_files(client, auth):
    r = client.get("/patrols/report?from=2026-11-01&to=2026-11-30", headers=auth["wu"])
    assert r.status_code == 200, r.text
    rep = r.json()
    assert {g["code"] for g in rep["grids"]} == {"T01", "T02"}
    assert all(0.0 <= g["covered_share"] <= 1.0 for g in rep["grids"])
    assert client.get("/patrols/report?from=2026-11-30&to=2026-11-01", headers=auth["wu"]).status_code == 422
    assert client.get("/patrols/report?from=2026-11-01&to=2026-11-30", headers=auth["dan"]).status_code == 422  # whose?
    x = client.get("/patrols/report?worker=wu&from=2026-11-01&to=2026-11-30&format=xlsx", headers=auth["dan"])
    assert x.status_code == 200 and x.content[:2] == b"PK"
    p = client.get("/patrols/report?from=2026-11-01&to=2026-11-30&format=pdf", headers=auth["wu"])
    assert p.status_code == 200 and p.content[:5] == b"%PDF-"
    assert np.isfinite(rep["covered_share"])


@pytest.mark.parametrize("query, words", [
    ("hours=25:00-26:00", ["hours", "工作时间", "不存在的时刻"]),
    ("hours=21:00-07:00", ["hours", "开始须早于结束"]),
    ("hours=morning", ["hours", "格式不对", "07:00-21:00"]),
    ("cycle_start=2026-13-01", ["cycle_start", "日期", "格式不对"]),
])
def test_bad_report_hours_and_cycle_start_are_422_in_chinese(client, auth, query, words):
    r = client.get(f"/patrols/report?from=2026-11-01&to=2026-11-30&{query}", headers=auth["wu"])
    assert r.status_code == 422, r.text
    for w in words:
        assert w in r.json()["detail"], (w, r.json()["detail"])


def test_the_report_takes_hours_and_a_cycle_start(client, auth):
    r = client.get("/patrols/report?from=2026-11-02&to=2026-11-03&hours=08:00-18:00&cycle_start=2026-11-02",
                   headers=auth["wu"])
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["work_hours"] == "08:00-18:00" and rep["cycle_start"] == "2026-11-02"
    assert rep["schedule"] == []  # this store's routes have no calendar: nothing is due per day
    assert all(g["shifts_pending"] == 0 for g in rep["grids"])
    default = client.get("/patrols/report?from=2026-11-02&to=2026-11-03", headers=auth["wu"]).json()
    assert default["work_hours"] == "07:00-21:00" and default["cycle_start"] is None


def test_working_hours_are_a_setting(client, auth, monkeypatch):
    """GRIDPATROL_WORK_HOURS (setting work_hours) decides which uploads are flagged outside working hours."""
    from gridpatrol.api.config import load_settings
    from gridpatrol.gis.errors import InputError

    monkeypatch.setenv("GRIDPATROL_WORK_HOURS", "06:00-20:00")
    assert load_settings().work_hours == "06:00-20:00"
    monkeypatch.setenv("GRIDPATROL_WORK_HOURS", "6点到20点")
    with pytest.raises(InputError, match="work_hours.*工作时间.*格式不对"):
        load_settings()
    monkeypatch.delenv("GRIDPATROL_WORK_HOURS")
    assert load_settings().work_hours == "07:00-21:00"

    def chunk(start_s: float, lat: float) -> dict:  # ten fixes from 06:30 local on 2026-11-02 (T0 is 09:00)
        from datetime import datetime

        pts = [{"lon": 104.0725 + 1e-4 * i, "lat": lat, "acc": 10.0,
                "t": datetime.fromtimestamp(start_s + 10 * i, UTC).isoformat()} for i in range(10)]
        return {"track_id": str(uuid.uuid4()), "seq": 0, "device": "x", "route_id": None, "points": pts}

    early = T0 - 2.5 * 3600
    r = client.post("/tracks", json=chunk(early, 30.6641), headers=auth["wu"])
    assert [f["kind"] for f in r.json()["flags"]] == ["outside_hours"] and "07:00–21:00" in r.json()["flags"][0]["detail"]
    app = client.app
    before = app.state.settings
    app.state.settings = before.model_copy(update={"work_hours": "06:00-21:00"})  # same secret key: tokens stay valid
    try:
        r = client.post("/tracks", json=chunk(early + 60, 30.6643), headers=auth["wu"])
        assert r.status_code == 201 and r.json()["flags"] == []
        rep = client.get("/patrols/report?from=2026-11-02&to=2026-11-02", headers=auth["wu"]).json()
        assert rep["work_hours"] == "06:00-21:00"
    finally:
        app.state.settings = before
