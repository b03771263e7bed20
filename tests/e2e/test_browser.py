"""Headless Chromium loads every map page from the running server with the network otherwise cut
off, clicks the incident map, and the DOM shows grids, route, the lookup panel and camera sectors.

Screenshots are written to $GRIDPATROL_SHOTS (default: the test's tmp dir) for a human to look at.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import httpx
import pytest

from tests.api.live_server import built_gpkg_store, login, running_server
from tests.e2e.chromium import click_map_at, open_tab, require_chromium


@pytest.fixture(scope="module")
def site(tmp_path_factory):  # noqa: ANN201
    require_chromium()
    db, tmp = built_gpkg_store(tmp_path_factory, "browser")
    with running_server(db) as base:
        h = login(base, "pia")
        r = httpx.post(base + "/grids/draw", headers=h, json={"seed": 1}, timeout=600)
        assert r.status_code == 201, r.text
        grids = httpx.get(base + "/grids", headers=h, timeout=60).json()["features"]
        code = grids[0]["properties"]["code"]
        r = httpx.post(base + "/routes/plan", headers=h, json={"grids": [code], "time_limit_s": 20}, timeout=600)
        assert r.status_code == 201 and r.json()[0]["ok"], r.text
        from gridpatrol.layers.store import open_store

        store = open_store(db)
        street_names = set(store.read_layer("roads")["name"].dropna())
        store.dispose()
        yield {"base": base, "db": db, "grids": grids, "route_code": code, "street_names": street_names,
               "shots": Path(os.environ.get("GRIDPATROL_SHOTS", tmp))}


def _page(browser, site, user: str | None = None):  # noqa: ANN001, ANN202
    """A fresh context (own cookies) whose requests to anything but the server are aborted and recorded."""
    return open_tab(browser, site["base"], user)


def _features(page, prop: str, folium_file: bool = False) -> list:  # noqa: ANN001
    """Values of ``prop`` of every GeoJSON feature drawn on the page's map (canvas or SVG).

    The served pages expose their map as ``window.gpMap``; a folium file as ``window[<div id>]``."""
    m = "window[document.querySelector('.folium-map').id]" if folium_file else "window.gpMap"
    return page.evaluate(
        "(prop) => { const m = " + m + "; const out = [];"
        " m.eachLayer(l => { if (l.feature && l.feature.properties && prop in l.feature.properties)"
        " out.push(l.feature.properties[prop]); }); return out; }", prop)


def _assert_street_labels(page, site) -> None:  # noqa: ANN001
    """At least five street labels in view, no two overlapping, each the name of a street of the data."""
    boxes = page.evaluate("() => Array.from(document.querySelectorAll('.gp-street-label')).map(e => "
                          "{ const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom, e.textContent]; })")
    assert len(boxes) >= 5, boxes
    names = set(site["street_names"])
    assert all(b[4] in names for b in boxes), [b[4] for b in boxes if b[4] not in names]
    shrink = 2  # rotated labels' bounding boxes are larger than the text: compare them a little smaller
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap_x = min(a[2], b[2]) - max(a[0], b[0]) - 2 * shrink
            overlap_y = min(a[3], b[3]) - max(a[1], b[1]) - 2 * shrink
            assert overlap_x <= 0 or overlap_y <= 0 or (overlap_x * overlap_y) < 0.25 * min(
                (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])), (a, b)


def test_grid_map(browser, site):  # noqa: ANN001
    ctx, page, outside, errors = _page(browser, site)
    page.goto(site["base"] + "/maps/grids")
    page.wait_for_selector("#gp-map[data-state=loaded]")
    codes = {g["properties"]["code"] for g in site["grids"]}
    drawn = set(_features(page, "code"))
    assert codes <= drawn
    assert len(_features(page, "highway")) > 100  # our own streets are the basemap
    labels = page.locator(".leaflet-marker-icon").all_inner_texts()
    assert len(labels) >= len(codes)
    page.screenshot(path=str(site["shots"] / "grid_map.png"))
    # Zoomed in, street names are written along the streets, none over another, all real street names.
    page.evaluate("void window.gpMap.setZoom(17, {animate: false})")
    page.wait_for_timeout(500)
    _assert_street_labels(page, site)
    page.screenshot(path=str(site["shots"] / "grid_map_streets.png"))
    assert outside == [] and errors == []
    ctx.close()


def test_route_map(browser, site):  # noqa: ANN001
    ctx, page, outside, errors = _page(browser, site, "pia")
    page.goto(site["base"] + f"/maps/routes/{site['route_code']}")
    page.wait_for_selector(".leaflet-container")
    page.wait_for_selector("#gp-directions[data-state=loaded]")
    lines = page.evaluate(
        "() => { const m = window.gpMap; let n = 0;"
        " m.eachLayer(l => { if (l instanceof L.Polyline && !(l instanceof L.Polygon) && l.getLatLngs().length > 10) n++; });"
        " return n; }")
    assert lines >= 1, "the route line is not on the map"
    assert site["route_code"] in page.content()
    page.screenshot(path=str(site["shots"] / "route_map.png"))
    assert outside == [] and errors == []
    ctx.close()


def _target(site) -> tuple[dict, float, float]:  # noqa: ANN001
    """An online fixed camera inside the first grid, and a point 20 m along its view direction."""
    import shapely
    from shapely.geometry import shape

    h = login(site["base"], "ada")
    area = shapely.union_all([shape(g["geometry"]) for g in site["grids"]])
    cams = httpx.get(site["base"] + "/cameras?limit=10000", headers=h, timeout=60).json()["features"]
    for c in cams:
        p = c["properties"]
        lon, lat = c["geometry"]["coordinates"]
        if p["status"] != "online" or p["azimuth_deg"] is None or not area.contains(shapely.Point(lon, lat)):
            continue
        az = math.radians(p["azimuth_deg"])
        tlon = lon + 20 / (111_320 * math.cos(math.radians(lat))) * math.sin(az)
        tlat = lat + 20 / 110_574 * math.cos(az)
        seen = httpx.get(site["base"] + f"/cameras/at?lon={tlon}&lat={tlat}&in_view=true", headers=h, timeout=60).json()
        if any(s["code"] == p["code"] for s in seen):
            return c, tlon, tlat
    pytest.fail("no camera with a point in view inside the grids")


def test_incident_map_click_shows_lookup_and_sectors(browser, site):  # noqa: ANN001
    cam, lon, lat = _target(site)
    ctx, page, outside, errors = _page(browser, site, "dan")
    page.goto(site["base"] + "/maps/incidents")
    page.wait_for_selector(".leaflet-container")
    page.wait_for_selector(".marker-cluster")  # not wait_for_function: the CSP forbids its eval
    clusters = page.locator(".marker-cluster").count()
    # Zoom to the spot, then click the map there like a dispatcher would.
    page.wait_for_selector("#gp-map[data-state=loaded]")
    panel = click_map_at(page, lon, lat)
    assert "网格" in panel and site["grids"][0]["properties"]["code"][:6] in panel
    # The cameras the dispatcher may see are marked on the map, not only after a click.
    assert page.locator("path.gp-camera-mark").count() >= 1
    assert cam["properties"]["code"] in panel
    assert page.locator("#gp-panel .gp-camera").count() >= 1
    assert page.locator("path.gp-sector").count() == page.locator("#gp-panel .gp-camera").count()
    page.screenshot(path=str(site["shots"] / "incident_map_zoomed.png"))
    # And the overview with clusters and a lookup from a deep link.
    page.goto(site["base"] + f"/maps/incidents?click={lon},{lat}")
    page.wait_for_selector("#gp-panel[data-state=loaded]", timeout=30_000)
    page.evaluate(f"void window.gpMap.setView([{lat}, {lon}], 17, {{animate: false}})")
    page.wait_for_timeout(800)
    _assert_street_labels(page, site)
    page.screenshot(path=str(site["shots"] / "incident_map.png"))
    assert clusters > 0 and outside == [] and errors == []
    ctx.close()


def test_viewer_sees_no_incident_map_and_no_cameras(browser, site):  # noqa: ANN001
    cam, lon, lat = _target(site)
    ctx, page, outside, errors = _page(browser, site, "vic")
    resp = page.goto(site["base"] + "/maps/incidents")
    assert resp.status == 403 and "may not" in page.content()
    for path in ("/maps/grids", f"/lookup?lon={lon}&lat={lat}", "/", "/ogc/collections"):
        page.goto(site["base"] + path)
        assert cam["properties"]["code"] not in page.content()
    ctx.close()


def test_standalone_map_file_works_from_disk_offline(browser, site, tmp_path):  # noqa: ANN001
    """``gridpatrol map-grids --out x.html`` opened from disk: Leaflet and the grids load with no
    request to any server at all (assets are inlined)."""
    from tests.api.live_server import cli

    db = site["db"]
    out = tmp_path / "grids.html"
    cli(db, "map-grids", "--out", str(out))
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    ctx.route("**/*", lambda route: (requests.append(route.request.url), route.continue_()
                                     if route.request.url.startswith(("file:", "data:")) else route.abort()))
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.as_uri())
    page.wait_for_selector(".leaflet-container canvas, .leaflet-container svg")
    assert {g["properties"]["code"] for g in site["grids"]} <= set(_features(page, "code", folium_file=True))
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == [] and errors == []
    page.screenshot(path=str(site["shots"] / "standalone_grid_map.png"))
    ctx.close()


@pytest.mark.parametrize("viewport", [(1366, 768), (390, 844)], ids=["desktop", "phone"])
def test_every_page_at_desktop_and_phone_size(browser, site, viewport):  # noqa: ANN001
    """Landing, log-in, grid, route and incident maps as the dispatcher at 1366×768 and 390×844:
    each loads in Chinese, fits the width (no sideways scrolling on the phone), and is kept as a
    screenshot to look at ($GRIDPATROL_SHOTS)."""
    w, h = viewport
    pages = [("login", "/login", "form"), ("landing", "/", "main"),
             ("grid_map", "/maps/grids", "#gp-map[data-state=loaded]"),
             ("route_map", f"/maps/routes/{site['route_code']}", "#gp-directions[data-state=loaded]"),
             ("incident_map", "/maps/incidents", "#gp-map[data-state=loaded]")]
    for name, path, ready in pages:
        ctx, page, outside, errors = open_tab(browser, site["base"], None if name == "login" else "dan", viewport=viewport)
        page.goto(site["base"] + path)
        page.wait_for_selector(ready, timeout=60_000)
        assert page.locator("html").get_attribute("lang") == "zh-CN", name
        assert page.evaluate("document.documentElement.scrollWidth") <= w + 1, (name, viewport)
        page.screenshot(path=str(site["shots"] / f"{name}_{w}x{h}.png"))
        assert outside == [] and errors == [], (name, outside, errors)
        ctx.close()
