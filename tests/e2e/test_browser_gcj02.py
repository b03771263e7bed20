"""The incident map on a GCJ-02 basemap (``tile_url`` + ``tile_crs = "gcj02"``), in headless Chromium
with the network cut off and a local fake tile server: our layers, the clustered incidents and the
first view are shifted to GCJ-02, and a click looks up the right WGS-84 point (the camera that sees
the clicked spot is found and its sector drawn where the tiles show it).

Screenshots go to $GRIDPATROL_SHOTS (default: the test's tmp dir).
"""
from __future__ import annotations

import math
import os
import re
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from gridpatrol.gis.crs import wgs84_to_gcj02

from tests.api.live_server import built_gpkg_store, login, running_server
from tests.e2e.chromium import click_map_at, open_tab, require_chromium


def _png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A plain one-colour PNG tile."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * size
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * size)) + chunk(b"IEND", b""))


class _Tiles(BaseHTTPRequestHandler):
    tile = _png((232, 238, 214))
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        _Tiles.seen.append(self.path)
        ok = re.fullmatch(r"/\d+/\d+/\d+\.png", self.path) is not None
        body = self.tile if ok else b"not a tile"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "image/png" if ok else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


def _gcj(lon: float, lat: float) -> tuple[float, float]:
    x, y = wgs84_to_gcj02(np.array([lon]), np.array([lat]))
    return float(x[0]), float(y[0])


@pytest.fixture(scope="module")
def site(tmp_path_factory):  # noqa: ANN201
    require_chromium()
    db, tmp = built_gpkg_store(tmp_path_factory, "gcj")
    tiles = ThreadingHTTPServer(("127.0.0.1", 0), _Tiles)
    threading.Thread(target=tiles.serve_forever, daemon=True).start()
    env = {"GRIDPATROL_TILE_URL": f"http://127.0.0.1:{tiles.server_port}/{{z}}/{{x}}/{{y}}.png",
           "GRIDPATROL_TILE_CRS": "gcj02", "GRIDPATROL_TILE_ATTRIBUTION": "fake GCJ-02 tiles"}
    try:
        with running_server(db, env=env) as base:
            yield {"base": base, "db": db, "shots": Path(os.environ.get("GRIDPATROL_SHOTS", tmp))}
    finally:
        tiles.shutdown()
        tiles.server_close()


def _page(browser, site, user: str):  # noqa: ANN001, ANN202
    return open_tab(browser, site["base"], user)


def _target(base: str) -> tuple[dict, float, float]:
    """A secrecy-0 online fixed camera and a WGS-84 point 20 m along its view direction that the
    dispatcher's lookup finds in view; and that a lookup 500 m off (the point misread as GCJ-02) does not."""
    h = login(base, "dan")
    cams = httpx.get(base + "/cameras?limit=10000", headers=h, timeout=60).json()["features"]
    for c in cams:
        p = c["properties"]
        if p["status"] != "online" or p["azimuth_deg"] is None or p["camera_type"] != "fixed":
            continue
        lon, lat = c["geometry"]["coordinates"]
        az = math.radians(p["azimuth_deg"])
        tlon = lon + 20 / (111_320 * math.cos(math.radians(lat))) * math.sin(az)
        tlat = lat + 20 / 110_574 * math.cos(az)
        right = httpx.get(base + f"/lookup?lon={tlon}&lat={tlat}", headers=h, timeout=60).json()
        wrong = httpx.get(base + f"/lookup?lon={tlon}&lat={tlat}&crs=gcj02", headers=h, timeout=60).json()
        if p["code"] in {x["code"] for x in right["cameras"]} and p["code"] not in {x["code"] for x in wrong["cameras"]}:
            return c, tlon, tlat
    pytest.fail("no camera with a point in view")


def _panel_state(page) -> dict:  # noqa: ANN001
    """Pin and sector positions drawn by the lookup panel (display coordinates)."""
    return page.evaluate(
        "() => { const m = window.gpMap; const out = {pins: [], sectors: []};"
        " m.eachLayer(l => { if (l instanceof L.CircleMarker && l.options.fillColor === '#ffeb3b') out.pins.push(l.getLatLng());"
        " if (l instanceof L.Polygon && l.options.className === 'gp-sector') out.sectors.push(l.getLatLngs()[0].map(p => [p.lat, p.lng])); });"
        " return out; }")


def test_incident_map_on_gcj02_tiles(browser, site):  # noqa: ANN001
    from gridpatrol.layers.store import open_store

    base = site["base"]
    cam, lon, lat = _target(base)
    code = cam["properties"]["code"]
    clon, clat = cam["geometry"]["coordinates"]
    glon, glat = _gcj(lon, lat)
    _Tiles.seen.clear()
    ctx, page, outside, errors = _page(browser, site, "dan")
    page.goto(base + "/maps/incidents")
    page.wait_for_selector(".marker-cluster")  # not wait_for_function: the CSP forbids its eval
    page.wait_for_selector("img.leaflet-tile-loaded")
    assert _Tiles.seen and all(re.fullmatch(r"/\d+/\d+/\d+\.png", s) for s in _Tiles.seen)

    # First view: centred on the streets' extent as the GCJ-02 tiles show it.
    store = open_store(site["db"])
    try:
        minx, miny, maxx, maxy = store.extent("roads")
    finally:
        store.dispose()
    center = page.evaluate("(() => { const c = window.gpMap.getCenter(); return [c.lng, c.lat]; })()")
    want = _gcj((minx + maxx) / 2, (miny + maxy) / 2)
    assert center == pytest.approx(want, abs=2e-4), (center, want, ((minx + maxx) / 2, (miny + maxy) / 2))

    # The clustered incidents sit at their GCJ-02 positions.
    page.wait_for_selector("#gp-map[data-state=loaded]")
    every = page.evaluate(
        "(() => { const out = []; window.gpMap.eachLayer(l => { if (l instanceof L.MarkerClusterGroup)"
        " l.getLayers().forEach(k => out.push([k.getTooltip().getContent().textContent, k.getLatLng().lng, k.getLatLng().lat,"
        " k.options.className === 'gp-camera-mark'])); });"
        " return out; })()")
    markers = [m[:3] for m in every if not m[3]]
    # The camera marks too sit where the tiles show the cameras (GCJ-02).
    mark = [m for m in every if m[3] and code in m[0]]
    assert len(mark) == 1 and (mark[0][1], mark[0][2]) == pytest.approx(_gcj(clon, clat), abs=1e-6), mark
    assert len(markers) >= 100
    incs = httpx.get(base + "/incidents?limit=10000", headers=login(base, "dan"), timeout=60).json()["features"]
    where = {f["id"]: f["geometry"]["coordinates"] for f in incs}
    for tip, mx, my in markers[::50]:
        iid = int(re.match(r"#(\d+)", tip).group(1))
        wx, wy = where[iid]
        assert (mx, my) == pytest.approx(_gcj(wx, wy), abs=1e-6)
        assert abs(mx - wx) + abs(my - wy) > 1e-3  # really moved (a few hundred metres)

    # A click where the tiles show the spot finds the camera that sees it.
    panel = click_map_at(page, glon, glat)
    assert code in panel and "GCJ-02" in panel
    drawn = _panel_state(page)
    assert len(drawn["pins"]) == 1
    assert (drawn["pins"][0]["lng"], drawn["pins"][0]["lat"]) == pytest.approx((glon, glat), abs=2e-6)
    # The camera's sector starts at the camera as the tiles show it (GCJ-02), not at its WGS-84 spot.
    gcx, gcy = _gcj(clon, clat)
    apexes = [s[0] for s in drawn["sectors"]]
    assert any(abs(a[1] - gcx) < 1e-6 and abs(a[0] - gcy) < 1e-6 for a in apexes), (apexes, (gcx, gcy))
    page.screenshot(path=str(site["shots"] / "incident_map_gcj02_click.png"))

    # A deep link gives the point in WGS-84: the pin lands on the GCJ-02 spot, the same camera is found.
    page.goto(base + f"/maps/incidents?click={lon},{lat}")
    page.wait_for_selector("#gp-panel[data-state=loaded]", timeout=30_000)
    assert code in page.inner_text("#gp-panel")
    drawn = _panel_state(page)
    assert (drawn["pins"][0]["lng"], drawn["pins"][0]["lat"]) == pytest.approx((glon, glat), abs=2e-6)
    bad = page.goto(base + "/maps/incidents?click=north,pole")
    assert bad.status == 422 and "lon,lat" in page.content()
    assert outside == [] and errors == []
    ctx.close()
