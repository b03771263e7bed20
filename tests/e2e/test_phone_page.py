"""A grid worker uses the phone page (/m/) in headless Chromium with a Pixel 5's screen and a GPS position set, on
both stores: logs in, sees the shifts of their grid and the next instruction (checked against the route's geometry),
reports an incident online (with a photo the phone shrinks), and offline (network cut: queued in IndexedDB, sent once
with its original time when the network is back, the page itself served by the service worker meanwhile), records a
track (chunks sent to POST /tracks, or queued while it is absent) and finds it in the patrol report. Grid and street names are hostile and stay text. Screenshots go
to $GRIDPATROL_SHOTS (default: the test's tmp dir).
"""
from __future__ import annotations

import io
import itertools
import math
import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.api.live_server import (
    build_store,
    drop_schema,
    login,
    pg_schema_url,
    running_server,
)
from tests.e2e.chromium import phone_session, require_chromium

GRID_NAME = '"><script>window.__pwned=2</script>'
STREET = "<iframe src=javascript:window.__pwned=4>"
WAIT = 120_000


def _poison_and_plan(db: str, base: str) -> dict:
    """Grids drawn, wu made the worker of one, hostile grid and street names stored, that grid's route planned."""
    from gridpatrol.layers.models import Grid, GridPlan, Road
    from gridpatrol.layers.store import open_store
    from sqlalchemy import func, select, update

    hp = login(base, "pia")
    r = httpx.post(base + "/grids/draw", headers=hp, json={"seed": 1}, timeout=600)
    assert r.status_code == 201, r.text
    grids = httpx.get(base + "/grids", headers=hp, timeout=60).json()["features"]
    code = sorted(grids, key=lambda g: g["properties"]["street_m"] or 0)[len(grids) // 3]["properties"]["code"]
    r = httpx.post(base + f"/grids/{code}/worker", headers=hp, json={"worker": "wu"}, timeout=60)
    assert r.status_code in (200, 201), r.text
    store = open_store(db)
    try:
        with store.begin() as c:
            plan = c.execute(select(func.max(GridPlan.id))).scalar()
            c.execute(update(Grid).where(Grid.plan_id == plan, Grid.code == code).values(name=GRID_NAME))
            c.execute(update(Road).where(Road.name.is_not(None)).values(name=STREET, name_zh=STREET, name_en=STREET))
    finally:
        store.dispose()
    r = httpx.post(base + "/routes/plan", headers=hp, json={"grids": [code], "time_limit_s": 10}, timeout=600)
    assert r.status_code == 201 and r.json()[0]["ok"], r.text
    return {"code": code}


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def site(request, tmp_path_factory):
    require_chromium()
    tmp = tmp_path_factory.mktemp("phone")
    schema = None
    if request.param == "gpkg":
        db = f"gpkg:///{tmp / 'm.gpkg'}"
    else:
        db, schema = pg_schema_url(request.getfixturevalue("pg_database"))
    try:
        build_store(db, tmp)
        with running_server(db) as base:
            yield {"base": base, "store": request.param, "tmp": tmp, **_poison_and_plan(db, base),
                   "shots": Path(os.environ.get("GRIDPATROL_SHOTS", tmp))}
    finally:
        if schema:
            drop_schema(request.getfixturevalue("pg_database"), schema)


def _plane(lat0: float):
    kx, ky = 111_320 * math.cos(math.radians(lat0)), 110_574
    return lambda lat, lon: (lon * kx, lat * ky)


def _seg_dist(p, a, b) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    n = dx * dx + dy * dy
    t = max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / n)) if n else 0.0
    return math.hypot(a[0] + t * dx - p[0], a[1] + t * dy - p[1])


def _standing_point(shift: dict) -> tuple[float, float, float]:
    """A vertex of the route 60–350 m along it that no other pass of the route comes within 15 m of: (lat, lon, m)."""
    line = shift["line"]
    P = _plane(line[0][0])
    xy = [P(p[0], p[1]) for p in line]
    for k, (lat, lon, m) in enumerate(line):
        if not 60 < m < 350:
            continue
        others = [_seg_dist(xy[k], xy[i], xy[i + 1]) for i in range(len(line) - 1)
                  if line[i + 1][2] < m - 30 or line[i][2] > m + 30]
        if not others or min(others) > 15:
            return lat, lon, m
    pytest.fail("no vertex of the route is passed only once")


@pytest.fixture(scope="module")
def phone(site):
    """A Pixel 5 in Shanghai's time zone, logged in as worker wu, standing on the first shift's route."""
    h = login(site["base"], "wu")
    data = httpx.get(site["base"] + "/m/data", headers=h, timeout=120).json()
    lat, lon, m = _standing_point(data["shifts"][0])
    with phone_session(site["base"], "wu", lat, lon, wait_ms=WAIT) as s:
        s["page"].errors = s["errors"]  # type: ignore[attr-defined]
        yield {"ctx": s["ctx"], "page": s["page"], "data": data, "at": (lat, lon, m), "outside": s["outside"]}


def _dan_incidents(base: str, text: str) -> list[dict]:
    feats = httpx.get(base + "/incidents?limit=10000", headers=login(base, "dan"), timeout=60).json()["features"]
    return [f for f in feats if f["properties"]["description"] == text]


def test_the_worker_sees_their_shifts_and_the_next_instruction_from_the_geometry(site, phone):
    page, data, ctx = phone["page"], phone["data"], phone["ctx"]
    # Stand where the fixture put the phone and open the page afresh: other tests of this module
    # walk the route, switch the language or reload, in whatever order they run.
    lat, lon, _m = phone["at"]
    ctx.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": 8})
    page.goto(site["base"] + "/m/")
    page.wait_for_selector("#gp-map[data-state=loaded]", timeout=WAIT)
    assert page.url.endswith("/m/")
    shifts = data["shifts"]
    assert shifts and {s["grid_code"] for s in shifts} == {site["code"]}
    buttons = page.locator("#m-shifts button")
    assert buttons.count() == len(shifts)
    assert site["code"] in buttons.first.text_content() and "班" in buttons.first.text_content()
    page.wait_for_selector("#m-next[data-state=step]", timeout=WAIT)
    lat, _lon, m = phone["at"]
    s = shifts[0]
    want = next(k for k, st in enumerate(s["steps"]) if st["at_m"] > m + 5)  # the first step ahead of where we stand
    assert int(page.locator("#m-next").get_attribute("data-step")) == want
    assert s["steps"][want]["text"] in page.locator("#m-next").text_content()
    left = int(page.locator("#m-left").get_attribute("data-m"))
    assert abs(left - (s["line"][-1][2] - m)) <= 2, (left, s["line"][-1][2], m)
    assert page.locator("#m-pos").text_content().startswith(f"{lat:.6f}")


def test_a_report_made_online_enters_the_loop_as_reported_in_the_workers_grid(site, phone):
    from PIL import Image

    page = phone["page"]
    text = "楼道堆放杂物 online"
    img = io.BytesIO()
    Image.new("RGB", (2400, 1800), (200, 80, 40)).save(img, "PNG")
    page.select_option("#m-category", "消防安全")
    page.fill("#m-text", text)
    page.set_input_files("#m-photos", files=[{"name": "p.png", "mimeType": "image/png", "buffer": img.getvalue()}])
    page.wait_for_selector("#m-photo-previews img", timeout=WAIT)
    page.click("#m-send")
    page.wait_for_selector("#m-report-msg[data-state=sent]", timeout=WAIT)
    got = _dan_incidents(site["base"], text)
    assert len(got) == 1
    p = got[0]["properties"]
    assert p["state"] == "reported" and p["grid_code"] == site["code"] and p["category"] == "消防安全" and p["reporter"] == "wu"
    photos = httpx.get(site["base"] + f"/m/incidents/{got[0]['id']}/photos", headers=login(site["base"], "dan"), timeout=60).json()
    assert len(photos) == 1 and (photos[0]["width"], photos[0]["height"]) == (1280, 960)  # shrunk on the phone


def test_a_report_made_offline_arrives_once_with_its_original_time(site, phone):
    ctx, page = phone["ctx"], phone["page"]
    text = "路灯损坏 offline"
    ctx.set_offline(True)
    page.fill("#m-text", text)
    page.click("#m-send")
    page.wait_for_selector("#m-report-msg[data-state=queued]", timeout=WAIT)
    queued = page.evaluate("GPStore.all('reports').then(rs => rs.filter(r => r.state === 'queued'))")
    assert len(queued) == 1 and queued[0]["text"] == text
    reported_at = datetime.fromisoformat(queued[0]["reported_at"])
    page.reload()  # offline: the service worker serves the page and the worker's map data
    page.wait_for_selector("#gp-map[data-state=loaded]", timeout=WAIT)
    assert page.locator("#m-shifts button").count() == len(phone["data"]["shifts"])
    assert page.locator("#m-queue li[data-state=queued]").count() == 1
    page.wait_for_timeout(1500)  # the network comes back later than the report was made
    assert _dan_incidents(site["base"], text) == []
    back = datetime.now(UTC)
    ctx.set_offline(False)
    page.wait_for_selector(f"#m-queue li[data-key='{queued[0]['key']}'][data-state=sent]", timeout=WAIT)
    page.evaluate("Promise.all([gpPhone.flush(), gpPhone.flush()])")  # sending again changes nothing
    page.reload()
    page.wait_for_selector("#gp-map[data-state=loaded]", timeout=WAIT)
    got = _dan_incidents(site["base"], text)
    assert len(got) == 1, got
    occurred = datetime.fromisoformat(got[0]["properties"]["occurred_at"])
    assert abs((occurred - reported_at).total_seconds()) < 0.002 and occurred < back
    assert got[0]["properties"]["grid_code"] == site["code"] and got[0]["properties"]["state"] == "reported"


def test_a_patrol_records_a_track_in_chunks(site, phone):
    ctx, page = phone["ctx"], phone["page"]
    line = phone["data"]["shifts"][0]["line"]
    page.click("#m-track-start")
    page.wait_for_selector("#m-track-stop:not([hidden])", timeout=WAIT)
    for lat, lon, _m in line[:6]:
        ctx.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": 12})
        page.wait_for_timeout(200)
    page.click("#m-track-stop")
    page.wait_for_selector("#m-track-start:not([hidden])", timeout=WAIT)
    page.wait_for_function("GPStore.all('fixes').then(f => f.length === 0)", timeout=WAIT)
    tracks = httpx.post(site["base"] + "/tracks", headers=login(site["base"], "wu"), json={}, timeout=60).status_code
    chunks = page.evaluate("GPStore.all('chunks')")
    if tracks in (404, 405):  # POST /tracks is not there yet: the chunk waits, whole
        page.wait_for_function("GPStore.all('chunks').then(c => c.length && c.every(x => x.state === 'waiting'))",
                               timeout=WAIT)
        chunks = page.evaluate("GPStore.all('chunks')")
        assert len(chunks) == 1 and chunks[0]["seq"] == 0 and len(chunks[0]["track_id"]) == 36
        assert chunks[0]["route_id"] == phone["data"]["shifts"][0]["id"]
        pts = chunks[0]["points"]
        assert len(pts) >= 2 and all(p["t"].endswith("+08:00") for p in pts)
        assert {(round(p["lat"], 6), round(p["lon"], 6)) for p in pts} <= {(round(a, 6), round(b, 6)) for a, b, _ in line[:6]}
    else:
        assert chunks == []
        # The track is stored for wu and appears in wu's patrol report of the day (county time); with
        # working hours spanning the whole day it carries no outside_hours flag, whenever the test runs.
        h = login(site["base"], "wu")
        shift_id = phone["data"]["shifts"][0]["id"]
        mine = [t for t in httpx.get(site["base"] + "/tracks", headers=h, timeout=60).json()
                if t["source"] == "phone" and t["route_id"] == shift_id]
        assert len(mine) == 1 and mine[0]["n_points"] >= 2 and mine[0]["worker"] == "wu", mine
        today = phone["data"]["today"]
        r = httpx.get(site["base"] + f"/patrols/report?from={today}&to={today}&hours=00:00-23:59", headers=h, timeout=300)
        assert r.status_code == 200, r.text
        rep = r.json()
        (row,) = [t for t in rep["tracks"] if t["id"] == mine[0]["id"]]
        assert row["points"] == mine[0]["n_points"] and row["source"] == "phone" and row["route_id"] == shift_id
        assert "outside_hours" not in {f["kind"] for f in row["flags"]} and rep["work_hours"] == "00:00-23:59"
        assert site["code"] in {g["code"] for g in rep["grids"]}


def _point_before(shift: dict, k: int) -> tuple[float, float]:
    """The point of the route 10 m before step ``k`` (lat, lon), interpolated along the line."""
    at = shift["steps"][k]["at_m"] - 10
    line = shift["line"]
    for a, b in itertools.pairwise(line):
        if a[2] <= at <= b[2] and b[2] > a[2]:
            t = (at - a[2]) / (b[2] - a[2])
            return a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
    pytest.fail(f"step {k} is not on the line")


def test_names_stay_text_no_request_leaves_the_origin_and_chinese_renders(site, phone):
    ctx, page = phone["ctx"], phone["page"]
    s = phone["data"]["shifts"][0]
    # walk up to a step that names the hostile street: the page shows its instruction, as text
    k = next(k for k, st in enumerate(s["steps"]) if k and STREET in st["text"]
             and st["at_m"] - s["steps"][k - 1]["at_m"] > 25)
    lat, lon = _point_before(s, k)
    ctx.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": 8})
    page.wait_for_selector(f"#m-next[data-step='{k}']", timeout=WAIT)
    assert STREET in page.locator("#m-next").text_content()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("iframe").count() == 0 and page.locator("script:not([src])").count() == 0
    assert not phone["outside"], phone["outside"]
    assert not page.errors, page.errors
    assert "今日班次" in page.content() and page.locator("html").get_attribute("lang") == "zh-CN"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(site["shots"] / f"phone-{site['store']}.png"))
    page.screenshot(path=str(site["shots"] / f"phone-{site['store']}-full.png"), full_page=True)


def test_the_english_switch(site, phone):
    page = phone["page"]
    page.goto(site["base"] + "/m/?lang=en")
    page.wait_for_selector("#gp-map[data-state=loaded]", timeout=WAIT)
    assert "Today's shifts" in page.content() and page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#m-shifts button").first.text_content().count("shift") == 1
    page.goto(site["base"] + "/m/?lang=zh")
    page.wait_for_selector("#gp-map[data-state=loaded]", timeout=WAIT)
