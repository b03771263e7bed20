"""A hostile planner stores script payloads in every text a page shows; a dispatcher opens every page in
headless Chromium. No script runs, no request leaves the origin, the payloads show as text, every
HTML page carries the CSP, and the maps still work. On both stores.

Screenshots go to $GRIDPATROL_SHOTS (default: the test's tmp dir).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import httpx
import pytest

from tests.api.live_server import PASSWORD, login, queue_worker, served_built_store
from tests.e2e.chromium import log_in, open_tab, require_chromium

# Each would set window.__pwned (or open a dialog, or fetch from elsewhere) if it ran.
WORKER = '<img src=x onerror="window.__pwned=1;alert(1)">'
GRID_NAME = '"><script>window.__pwned=2</script>'
GRID_CODE = "</script><svg onload=window.__pwned=3>"
STREET = "<iframe src=javascript:window.__pwned=4>"
BUILDING = "<b onmouseover=window.__pwned=5>楼</b>"
CAMERA = "javascript:window.__pwned=6//<img src=http://evil.example/c.png>"
CATEGORY = "<script src=http://evil.example/x.js></script>"
PLACE = "<svg/onload=window.__pwned=7>村"  # a village's name (place nodes and areas, as OSM has them)
CSP_PARTS = ("default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "style-src 'self'")
WATCH = ("document.addEventListener('securitypolicyviolation', e => (window.__csp = window.__csp || [])"
         ".push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile));")


def _camera_target(base: str, area) -> tuple[dict, float, float]:  # noqa: ANN001
    """An online camera inside the grids and a point 20 m along its view that the lookup sees it from."""
    import shapely

    h = login(base, "ada")
    for c in httpx.get(base + "/cameras?limit=10000", headers=h, timeout=60).json()["features"]:
        p = c["properties"]
        lon, lat = c["geometry"]["coordinates"]
        if p["status"] != "online" or p["azimuth_deg"] is None or p["secrecy_level"] > 0 \
                or not area.contains(shapely.Point(lon, lat)):
            continue
        az = math.radians(p["azimuth_deg"])
        tlon = lon + 20 / (111_320 * math.cos(math.radians(lat))) * math.sin(az)
        tlat = lat + 20 / 110_574 * math.cos(az)
        seen = httpx.get(base + f"/cameras/at?lon={tlon}&lat={tlat}&in_view=true", headers=h, timeout=60).json()
        if any(s["code"] == p["code"] for s in seen):
            return c, tlon, tlat
    pytest.fail("no camera with a point in view inside the grids")


def _poison(db: str, base: str) -> dict:
    """Store the payloads: through the API where it must refuse them, directly in the tables otherwise
    (as an OSM import, a camera file or an older version would)."""
    import shapely
    from gridpatrol.layers.models import (
        Building,
        Camera,
        Grid,
        GridPlan,
        Incident,
        Place,
        PlaceArea,
        Road,
    )
    from gridpatrol.layers.store import open_store
    from shapely.geometry import shape
    from sqlalchemy import func, select, update

    hp, hd = login(base, "pia"), login(base, "dan")
    r = httpx.post(base + "/grids/draw", headers=hp, json={"seed": 1}, timeout=600)
    assert r.status_code == 201, r.text
    grids = httpx.get(base + "/grids", headers=hp, timeout=60).json()["features"]
    code, other = grids[0]["properties"]["code"], grids[1]["properties"]["code"]
    # The API refuses names with markup, saying which field (Chinese and English).
    r = httpx.post(base + f"/grids/{code}/worker", headers=hp, json={"worker": WORKER}, timeout=60)
    assert r.status_code == 422 and "网格员姓名" in r.text and "worker name" in r.text, r.text
    r = httpx.post(base + "/incidents", headers=hd, json={"lon": 104.07, "lat": 30.66, "category": CATEGORY}, timeout=60)
    assert r.status_code == 422 and "事件类别" in r.text, r.text
    area = shapely.union_all([shape(g["geometry"]) for g in grids])
    cam, lon, lat = _camera_target(base, area)
    store = open_store(db)
    try:
        with store.begin() as c:
            plan = c.execute(select(func.max(GridPlan.id))).scalar()
            c.execute(update(Grid).where(Grid.plan_id == plan).values(worker=WORKER, name=GRID_NAME))
            c.execute(update(Grid).where(Grid.plan_id == plan, Grid.code == other).values(code=GRID_CODE))
            c.execute(update(Road).where(Road.name.is_not(None)).values(name=STREET, name_zh=STREET, name_en=STREET))
            c.execute(update(Building).values(name=BUILDING))
            c.execute(update(Camera).values(name=CAMERA))
            c.execute(update(Incident).values(category=CATEGORY))
            c.execute(update(Place).values(name=PLACE))
            c.execute(update(PlaceArea).values(name=PLACE))
    finally:
        store.dispose()
    # A route planned over the poisoned streets: its directions name them.
    r = httpx.post(base + "/routes/plan", headers=hp, json={"grids": [code], "time_limit_s": 10}, timeout=600)
    assert r.status_code == 201 and r.json()[0]["ok"], r.text
    grid_of_click = httpx.get(base + f"/lookup?lon={lon}&lat={lat}", headers=hd, timeout=60).json()["grid"]["code"]
    return {"code": code, "cam": cam, "lon": lon, "lat": lat, "click_grid": grid_of_click, "grids": grids}


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def site(request, tmp_path_factory):  # noqa: ANN001, ANN201
    require_chromium()
    with served_built_store(request, tmp_path_factory, "hostile") as (db, base, tmp):
        yield {"base": base, "db": db, **_poison(db, base),
               "shots": Path(os.environ.get("GRIDPATROL_SHOTS", tmp)), "store": request.param}


class Visit:
    """A dispatcher's (or planner's) browser tab that records what a payload could do."""

    def __init__(self, browser, site, user: str) -> None:  # noqa: ANN001
        self.site = site
        self.ctx, self.page, self.outside, self.errors = open_tab(browser, site["base"], viewport=(1366, 768),
                                                                  init_script=WATCH)
        self.dialogs: list[str] = []
        self.console: list[str] = []
        self.csp_headers: dict[str, str | None] = {}
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)
        log_in(self.page, site["base"], user)

    def open(self, path: str, ready: str) -> None:
        resp = self.page.goto(self.site["base"] + path)
        assert resp.status == 200, (path, resp.status)
        self.csp_headers[path] = resp.headers.get("content-security-policy")
        self.page.wait_for_selector(ready, timeout=60_000)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.site["shots"] / f"hostile_{self.site['store']}_{name}.png"))

    def hover_at(self, lon: float, lat: float) -> str:
        """Move the mouse over (lon, lat) of the map and return the tooltip's text."""
        pt = self.page.evaluate(f"(() => {{ const p = window.gpMap.latLngToContainerPoint([{lat}, {lon}]); return [p.x, p.y]; }})()")
        box = self.page.locator("#gp-map").bounding_box()
        self.page.mouse.move(box["x"] + pt[0] - 3, box["y"] + pt[1] - 3)
        self.page.mouse.move(box["x"] + pt[0], box["y"] + pt[1])
        self.page.wait_for_selector(".leaflet-tooltip", timeout=10_000)
        return " ".join(self.page.locator(".leaflet-tooltip").all_inner_texts())

    def assert_clean(self) -> None:
        assert self.page.evaluate("() => window.__pwned") is None, "a payload ran"
        assert self.dialogs == [], self.dialogs
        assert self.outside == [], self.outside
        assert self.errors == [], self.errors
        assert self.page.evaluate("() => window.__csp || []") == [], "CSP violations"
        assert [c for c in self.console if "Content Security Policy" in c] == []
        for path, csp in self.csp_headers.items():
            assert csp is not None and all(p in csp for p in CSP_PARTS), (path, csp)


def test_payloads_stay_text_on_every_page(browser, site):  # noqa: ANN001
    from shapely.geometry import shape

    v = Visit(browser, site, "dan")
    page = v.page
    # Landing page and login page.
    v.open("/", "main")
    assert page.locator("html").get_attribute("lang") == "zh-CN" and "网格图" in page.inner_text("main")
    v.shot("landing")

    # Grid map: hovering a grid shows its worker and name as text; the payload grid code is a label.
    v.open("/maps/grids", "#gp-map[data-state=loaded]")
    assert page.evaluate("() => { let n = 0; window.gpMap.eachLayer(l => { if (l.feature) n++; }); return n; }") > 100
    labels = page.locator(".gp-grid-label").all_inner_texts()
    assert GRID_CODE in labels
    first = shape(site["grids"][0]["geometry"]).representative_point()
    page.evaluate(f"void window.gpMap.setView([{first.y}, {first.x}], 17, {{animate: false}})")
    page.wait_for_timeout(300)
    tip = v.hover_at(first.x + 2e-5, first.y + 2e-5)
    assert WORKER in tip or GRID_NAME in tip or BUILDING in tip or STREET in tip, tip
    # the villages and places overlay: every tooltip shows the poisoned name as text
    n_places = page.evaluate("() => { let n = 0; window.gpMap.eachLayer(l => { if (l.feature && l.feature.properties"
                             " && 'place' in l.feature.properties) { l.openTooltip(); n++; } }); return n; }")
    assert n_places >= 1
    assert PLACE in " ".join(page.locator(".leaflet-tooltip").all_inner_texts())
    v.shot("grids")

    # Incident map: the lookup panel at the camera's view shows the poisoned grid, worker, camera and incidents.
    v.open(f"/maps/incidents?click={site['lon']},{site['lat']}", "#gp-panel[data-state=loaded]")
    panel = page.inner_text("#gp-panel")
    assert site["click_grid"] in panel and GRID_NAME in panel and WORKER in panel
    assert CAMERA in panel and site["cam"]["properties"]["code"] in panel
    assert page.locator("path.gp-sector").count() >= 1
    page.wait_for_selector(".marker-cluster")
    # Zoomed in until an incident leaves its cluster, hovering it shows the category as text.
    inc = httpx.get(site["base"] + "/incidents?limit=1", headers=login(site["base"], "dan"), timeout=60).json()["features"][0]
    ilon, ilat = inc["geometry"]["coordinates"]
    page.evaluate(f"void window.gpMap.setView([{ilat}, {ilon}], 20, {{animate: false}})")
    page.wait_for_timeout(800)
    assert CATEGORY in v.hover_at(ilon, ilat)
    # A real click on the map looks up again.
    page.evaluate(f"void window.gpMap.setView([{site['lat']}, {site['lon']}], 18, {{animate: false}})")
    page.wait_for_timeout(300)
    box = page.locator("#gp-map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#gp-panel[data-state=loaded]")
    assert GRID_NAME in page.inner_text("#gp-panel")
    v.shot("incidents")
    v.assert_clean()
    v.ctx.close()

    # Route map (planner): the directions name the poisoned streets, as text.
    v = Visit(browser, site, "pia")
    v.open(f"/maps/routes/{site['code']}", "#gp-directions[data-state=loaded]")
    steps = v.page.locator(".gp-step").all_inner_texts()
    assert steps and any(STREET in s for s in steps), steps[:5]
    assert v.page.evaluate("() => { let n = 0; window.gpMap.eachLayer(l => { if (l instanceof L.Polyline"
                           " && !(l instanceof L.Polygon) && l.getLatLngs().length > 10) n++; }); return n; }") >= 1
    v.shot("route")
    v.assert_clean()
    v.ctx.close()


def test_workbench_shows_payloads_as_text(browser, site):  # noqa: ANN001
    """The planner's workbench (/planner): grid codes, names, workers and street labels hold the payloads, as text."""
    v = Visit(browser, site, "pia")
    page = v.page
    v.open("/planner", "#gp-map[data-state=loaded]")
    items = " ".join(page.locator("#gp-grid-list li").all_inner_texts())
    assert GRID_CODE in items and GRID_NAME in items and WORKER in items
    assert GRID_NAME in page.locator(".gp-grid-name").all_inner_texts()
    page.fill("#gp-search", WORKER[:12])  # search by worker name matches every grid
    assert page.locator("#gp-grid-list li").count() == len(site["grids"])
    first = shape_of(site["grids"][0]).representative_point()
    page.evaluate(f"void window.gpMap.setView([{first.y}, {first.x}], 17, {{animate: false}})")
    page.wait_for_timeout(500)
    assert STREET in page.locator(".gp-street-label").all_inner_texts()
    v.shot("planner")
    v.assert_clean()
    v.ctx.close()


def test_job_progress_shows_payloads_as_text(browser, site):  # noqa: ANN001
    """The workbench's job progress (#gp-job-text, set by textContent): a rebalance of the grid whose code is a
    payload shows its step ("rebalancing <code>…") and its refusal (the grids are not neighbours) as text."""
    from tests.e2e.test_planner_jobs_page import WATCH_BAR

    with queue_worker(site["db"]):
        v = Visit(browser, site, "pia")
        v.ctx.add_init_script(WATCH_BAR)
        page = v.page
        v.open("/planner", "#gp-map[data-state=loaded]")
        # The payload grid (grids[1] before its code was changed) and the grid farthest from it: not neighbours.
        payload = shape_of(site["grids"][1])
        far = max(site["grids"][2:], key=lambda g: shape_of(g).distance(payload))["properties"]["code"]
        for code in (GRID_CODE, far):
            page.evaluate("c => [...document.querySelectorAll('#gp-grid-list li')].find(li => li.dataset.code === c)"
                          ".querySelector('input[type=checkbox]').click()", code)
        page.check("#gp-force-grids")
        page.click("#gp-rebalance")
        page.wait_for_selector("#gp-job[data-state=failed]", timeout=600_000)
        text = page.locator("#gp-job-text").text_content()
        assert "重新平衡网格：失败" in text and GRID_CODE in text and "not adjacent" in text, text
        assert GRID_CODE in page.locator("#gp-msg").text_content()
        shown = [r[3] for r in page.evaluate("window.gpBar") if not r[4]]
        assert all(GRID_CODE in t for t in shown if "rebalancing" in t), shown
        assert page.locator("#gp-job svg, #gp-job script, #gp-job img, #gp-msg svg").count() == 0
        v.shot("planner_job")
        v.assert_clean()
        v.ctx.close()


def shape_of(feature: dict):  # noqa: ANN201
    from shapely.geometry import shape

    return shape(feature["geometry"])


def test_docs_page_works_under_its_csp(browser, site):  # noqa: ANN001
    v = Visit(browser, site, "dan")
    v.open("/docs", ".swagger-ui .opblock")
    assert v.page.locator(".swagger-ui .opblock").count() > 20
    v.shot("docs")
    v.assert_clean()
    v.ctx.close()


def test_headers_cookies_and_logout(site):  # noqa: ANN001
    base = site["base"]
    for path in ("/", "/login", "/healthz", "/static/js/common.js", "/maps/data/grids"):
        r = httpx.get(base + path, timeout=60)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "same-origin" and r.headers["x-frame-options"] == "DENY", path
        if r.headers["content-type"].startswith("text/html"):
            assert "script-src 'self'" in r.headers["content-security-policy"], path
    with httpx.Client(base_url=base, timeout=60) as c:
        r = c.post("/login", data={"username": "dan", "password": PASSWORD, "next": "/"})
        cookie = r.history[0].headers["set-cookie"].lower() if r.history else r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        token = c.cookies.get("gp_token")
        assert c.get("/auth/me").json()["name"] == "dan"
        c.post("/logout")
        assert c.cookies.get("gp_token") is None
    # The token the cookie held is revoked, not only forgotten by the browser.
    r = httpx.get(base + "/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert r.status_code == 401


def test_cli_map_files_escape_every_text(site, tmp_path):  # noqa: ANN001
    """``gridpatrol map-grids`` and ``print-route --html`` keep folium, whose tooltips and labels are raw
    HTML: every text from the store must arrive there escaped."""
    import html as h

    from tests.api.live_server import cli

    grids, route = tmp_path / "grids.html", tmp_path / "route.html"
    cli(site["db"], "map-grids", "--out", str(grids))
    cli(site["db"], "print-route", site["code"], "--out", str(tmp_path / "r.pdf"), "--html", str(route))
    for path, payloads in ((grids, (GRID_NAME, GRID_CODE, STREET, BUILDING)), (route, (STREET,))):
        # folium writes its data as JSON, where "<" may stand as \u003c: read those back first.
        text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), path.read_text(encoding="utf-8"))
        text = text.replace('\\"', '"')
        for p in payloads:
            assert p not in text, (path.name, p)
            assert h.escape(p) in text, (path.name, p)
