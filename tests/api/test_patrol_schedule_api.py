"""GET /patrols/report over routes on a patrol calendar (both stores): a track uploaded with POST /tracks
completes the shift due that day, the other day's shifts are missed, and the XLSX carries the same 排班."""
from __future__ import annotations

import io
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely

from tests.layers.track_seed import CYCLE_DAYS, PASSWORD, chengdu_osm, seed_calendar
from tests.store_cache import cached_module_store_url


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def site(request, tmp_path_factory):
    from fastapi.testclient import TestClient
    from gridpatrol.api.app import create_app
    from gridpatrol.api.config import load_settings

    with cached_module_store_url(request, tmp_path_factory, "tracks-calendar", seed_calendar, [chengdu_osm()]) as url:
        app = create_app(url, settings=load_settings(log_level="WARNING"))
        with TestClient(app, raise_server_exceptions=False) as c:
            r = c.post("/auth/token", data={"username": "wu", "password": PASSWORD})
            assert r.status_code == 200, r.text
            yield {"client": c, "store": app.state.store, "wu": {"Authorization": f"Bearer {r.json()['access_token']}"}}
        app.state.store.dispose()


def _walk_geojson(store, route_id: int) -> dict:
    """A simulated walk (σ 10 m, a fix every 5 s) of route ``route_id`` on 2026-11-02 from 09:00, as GeoJSON."""
    from gridpatrol.gis.streets import street_network
    from gridpatrol.gis.tracksim import simulate_walk
    from gridpatrol.layers.routes import read_routes

    net = street_network(store.read_layer("roads", bbox=(104.06, 30.657, 104.095, 30.687)), mode="walk")
    r = read_routes(store, "T02", mode="walk")
    tf = net.transformer()
    line = shapely.transform(r[r["id"] == route_id].geometry.iloc[0], lambda xy: np.column_stack(tf.transform(xy[:, 0], xy[:, 1])))
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    w = simulate_walk(line, sigma_m=10, every_s=5, t0=t0, seed=9)
    lon, lat = net.transformer(inverse=True).transform(w.x, w.y)
    times = [datetime.fromtimestamp(t, ZoneInfo("Asia/Shanghai")).isoformat() for t in w.t]
    return {"type": "Feature", "properties": {"times": times},
            "geometry": {"type": "LineString", "coordinates": [[float(a), float(b)] for a, b in zip(lon, lat)]}}


def test_a_posted_track_completes_the_shift_due_that_day(site):
    from gridpatrol.layers.routes import read_routes
    from openpyxl import load_workbook

    c, h = site["client"], site["wu"]
    r = read_routes(site["store"], "T02", mode="walk")
    day_of = {int(i): json.loads(s)["cycle"]["day"] for i, s in zip(r["id"], r["stats_json"])}
    first = min(i for i, d in day_of.items() if d == 1)
    up = c.post("/tracks", json=_walk_geojson(site["store"], first), headers=h)
    assert up.status_code == 201 and up.json()["flags"] == [], up.text
    q = "/patrols/report?from=2026-11-02&to=2026-11-03&cycle_start=2026-11-02"
    rep = c.get(q, headers=h).json()
    status = {(x["date"], x["route_id"]): x["status"] for x in rep["schedule"]}
    want = {("2026-11-02", i): "done" if i == first else "missed" for i, d in day_of.items() if d == 1}
    want.update({("2026-11-03", i): "missed" for i, d in day_of.items() if d == 2})
    assert status == want
    assert all(x["cycle_days"] == CYCLE_DAYS for x in rep["schedule"])
    # With day 1 a day later, the walk fell on day 2 of the cycle: it completes nothing.
    shifted = c.get("/patrols/report?from=2026-11-02&to=2026-11-02&cycle_start=2026-11-03", headers=h).json()
    assert {x["status"] for x in shifted["schedule"]} == {"missed"}
    assert {x["route_id"] for x in shifted["schedule"]} == {i for i, d in day_of.items() if d == 2}
    x = c.get(q + "&format=xlsx", headers=h)
    assert x.status_code == 200
    ws = load_workbook(io.BytesIO(x.content))["排班"]
    rows = [[v.value for v in row] for row in ws.iter_rows(min_row=3)]
    assert [(row[0], row[5], row[6]) for row in rows] == [
        (s["date"], s["route_id"], {"done": "已完成", "missed": "未完成"}[s["status"]]) for s in rep["schedule"]]
