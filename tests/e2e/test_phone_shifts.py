"""Today's shifts on the phone page (/m/), in headless Chromium as a Pixel 5 in Shanghai's time zone (both stores):
worker wu has two grids and worker wang one, their routes cut into shifts (plan-routes --max-minutes) and laid
out on a patrol calendar (--cycle-days). wu's page lists exactly the shifts of wu's grids due today — today being the
date in Asia/Shanghai, day 1 the Shanghai date the routes were planned, worked out here from the routes' stored figures
— and counts the others; nothing of wang's appears. wu, turned hostile, finds none of wang's shifts through the page's
API (/m/data, with made-up parameters) or the routes API (list, GeoJSON, GPX, sheet), by grid code or route id.
"""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.api.live_server import PASSWORD, cli, login, served_built_store
from tests.e2e.chromium import phone_session, require_chromium

WAIT = 120_000
TZ = ZoneInfo("Asia/Shanghai")
CYCLE_DAYS = 3
OTHER = "wang"


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def site(request, tmp_path_factory):
    require_chromium()
    with served_built_store(request, tmp_path_factory, "phone_shifts") as (db, base, _tmp):
        r = httpx.post(base + "/auth/users", headers=login(base, "ada"), timeout=60,
                       json={"name": OTHER, "role": "worker", "password": PASSWORD})
        assert r.status_code == 201, r.text
        hp = login(base, "pia")
        r = httpx.post(base + "/grids/draw", headers=hp, json={"seed": 1}, timeout=600)
        assert r.status_code == 201, r.text
        grids = httpx.get(base + "/grids", headers=hp, timeout=60).json()["features"]
        # Three grids of middling street length: two for wu, one for wang.
        by_len = sorted((g for g in grids if (g["properties"]["street_m"] or 0) > 0),
                        key=lambda g: g["properties"]["street_m"])
        mid = len(by_len) // 2
        mine = [by_len[mid]["properties"]["code"], by_len[mid + 1]["properties"]["code"]]
        theirs = by_len[mid + 2]["properties"]["code"]
        for code, who in ((mine[0], "wu"), (mine[1], "wu"), (theirs, OTHER)):
            r = httpx.post(base + f"/grids/{code}/worker", headers=hp, json={"worker": who}, timeout=60)
            assert r.status_code in (200, 201), r.text
        # Shifts of at most 20 minutes' walk, laid out over 3 days per worker.
        cli(db, "plan-routes", "--grid", mine[0], "--grid", mine[1], "--grid", theirs, "--max-minutes", "20",
            "--cycle-days", str(CYCLE_DAYS), timeout=900)
        yield {"base": base, "mine": mine, "theirs": theirs, "hp": hp}


def _shifts_by_planner(site, code: str) -> list[dict]:
    """The stored shifts of ``code`` as the planner sees them: id, cycle day, Shanghai date planned."""
    r = httpx.get(site["base"] + f"/routes/{code}", headers=site["hp"], timeout=120)
    assert r.status_code == 200, r.text
    out = []
    for f in r.json()["features"]:
        p = f["properties"]
        at = datetime.fromisoformat(str(p["created_at"]).replace(" ", "T"))
        at = at if at.tzinfo else at.replace(tzinfo=UTC)  # the stores keep UTC
        out.append({"id": f.get("id", p.get("id")), "code": code, "day": p["stats"]["cycle"]["day"],
                    "days": p["stats"]["cycle"]["days"], "planned": at.astimezone(TZ).date()})
    return out


@pytest.fixture(scope="module")
def phone(site):
    with phone_session(site["base"], "wu", 30.65, 104.08, wait_ms=WAIT) as s:
        s["page"].errors = s["errors"]  # type: ignore[attr-defined]
        yield s["page"]


def test_the_worker_sees_todays_shifts_of_their_grids_by_the_calendar(site, phone):
    mine = [s for code in site["mine"] for s in _shifts_by_planner(site, code)]
    assert len(mine) >= 2 and all(s["days"] == CYCLE_DAYS for s in mine)
    today = datetime.now(TZ).date()  # the county's day, whatever the machine's zone
    due = {s["id"] for s in mine if (today - s["planned"]).days % CYCLE_DAYS + 1 == s["day"]}
    # The calendar spreads wu's shifts over the days: some are due today, some not (else this proves little).
    assert len({s["day"] for s in mine}) > 1, mine
    page = phone
    shown = page.locator("#m-shifts button")
    ids = {int(shown.nth(k).get_attribute("data-route")) for k in range(shown.count())}
    assert ids == due, (ids, due, today)
    texts = [shown.nth(k).text_content() for k in range(shown.count())]
    assert all(any(code in t for code in site["mine"]) and site["theirs"] not in t for t in texts), texts
    rest = len(mine) - len(due)
    if rest:
        assert f"另有 {rest} 个班次不在今天" in page.locator("#m-shifts").text_content()
    assert page.locator("#m-today").text_content().startswith(today.isoformat())
    assert not page.errors, page.errors


def test_the_page_shows_nothing_of_another_workers_grid(site, phone):
    page = phone
    theirs = {s["id"] for s in _shifts_by_planner(site, site["theirs"])}
    assert theirs
    data = page.evaluate("fetch('/m/data', {credentials: 'same-origin'}).then(r => r.json())")
    assert {s["grid_code"] for s in data["shifts"]} <= set(site["mine"])
    assert not {s["id"] for s in data["shifts"]} & theirs
    assert {f["properties"]["code"] for f in data["grids"]["features"]} == set(site["mine"])
    assert site["theirs"] not in page.content()


def test_a_hostile_worker_finds_no_shift_of_another_worker_through_the_api(site, phone):
    base, h = site["base"], login(site["base"], "wu")
    theirs = _shifts_by_planner(site, site["theirs"])
    ids = {s["id"] for s in theirs}
    code = site["theirs"]
    for q in (f"?worker={OTHER}", f"?user={OTHER}", f"?grid={code}", f"?grid_code={code}", f"?code={code}"):
        r = httpx.get(base + "/m/data" + q, headers=h, timeout=120)
        assert r.status_code in (200, 422), r.text
        if r.status_code == 200:
            body = r.json()
            assert body["user"] == "wu" and not {s["id"] for s in body["shifts"]} & ids, q
            assert code not in r.text, q
    listed = httpx.get(base + "/routes?limit=10000", headers=h, timeout=120)
    assert listed.status_code == 200 and not {x["id"] for x in listed.json()} & ids
    assert code not in listed.text
    paths = (f"/routes/{code}", f"/routes/{code}?mode=walk", f"/routes/{code}/route.gpx",
             f"/routes/{code}/sheet.pdf", f"/maps/routes/{code}", f"/maps/routes/{code}?worker=1")
    for path in paths:  # with the token, and with the phone's login cookie
        r = httpx.get(base + path, headers=h, timeout=300)
        assert r.status_code in (403, 404), (path, r.status_code, r.text[:300])
        assert not any(f'"id": {i}' in r.text or f'"id":{i}' in r.text for i in ids), path
        got = phone.request.get(base + path, timeout=300_000)
        assert got.status in (403, 404), (path, got.status, got.text()[:300])
    for i in ids:  # by route id, wherever an id is taken
        for path in (f"/routes/{i}", f"/m/incidents/{i}/photos"):
            r = httpx.get(base + path, headers=h, timeout=120)
            assert r.status_code in (403, 404), (path, r.status_code)
    # Their patrol report is not wu's to read.
    today = datetime.now(TZ).date().isoformat()
    r = httpx.get(base + f"/patrols/report?worker={OTHER}&from={today}&to={today}", headers=h, timeout=300)
    assert r.status_code in (403, 404) or code not in r.text, r.text[:300]
