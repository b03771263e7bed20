"""Settings (file, env, production rules), page login by cookie (reads only), GCJ-02 display option."""
from __future__ import annotations

import numpy as np
import pyproj
import pytest
from gridpatrol.api.config import load_settings
from gridpatrol.gis.crs import wgs84_to_gcj02
from gridpatrol.gis.errors import InputError

from tests.api.api_seed import PASSWORD

KEY = "cfg-7Hq2Lw9Zr4Tx8Mv3Nb6Kp1Jd5Sg0Fy"


def test_settings_from_file_then_env(tmp_path, monkeypatch):  # noqa: ANN001
    cfg = tmp_path / "gp.toml"
    cfg.write_text('[gridpatrol]\nogc_max_limit = 500\ntile_url = "http://pgis.local/{z}/{x}/{y}.png"\n'
                   'tile_crs = "gcj02"\nsecret_key = "' + KEY + '"\n', encoding="utf-8")
    s = load_settings(cfg)
    assert (s.ogc_max_limit, s.tile_crs, s.secret_key) == (500, "gcj02", KEY)
    monkeypatch.setenv("GRIDPATROL_OGC_MAX_LIMIT", "250")
    monkeypatch.setenv("GRIDPATROL_PRODUCTION", "yes")
    s = load_settings(cfg)
    assert s.ogc_max_limit == 250 and s.production and not s.allow_anonymous


@pytest.mark.parametrize("text,words", [
    ("ogc_max_limt = 5\n", ["unknown settings", "ogc_max_limt"]),
    ("ogc_max_limit = 'many'\n", ["ogc_max_limit", "integer"]),
    ("tile_crs = 'bd09'\n", ["tile_crs"]),
    ("timezone = 'Mars/Olympus'\n", ["timezone", "IANA time zone"]),
    ("secret_key = 'short'\n", ["32 characters"]),
    ("production = true\n", ["secret key"]),
    ("ogc_max_limit = [\n", ["TOML"]),
])
def test_bad_settings_say_what_is_wrong(tmp_path, text, words):  # noqa: ANN001
    cfg = tmp_path / "gp.toml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_settings(cfg)
    for w in words:
        assert w in str(err.value)


def test_missing_config_file(tmp_path):  # noqa: ANN001
    with pytest.raises(InputError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_cookie_login_reads_pages_but_never_writes(app):  # noqa: ANN001
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        assert c.get("/maps/incidents").status_code == 403
        r = c.post("/login", data={"username": "dan", "password": PASSWORD, "next": "/maps/incidents"},
                   follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/maps/incidents"
        assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
        page = c.get("/maps/incidents")
        assert page.status_code == 200 and "gp-panel" in page.text and "/static/vendor/leaflet/leaflet.js" in page.text
        assert "<script>" not in page.text and "script-src 'self'" in page.headers["content-security-policy"]
        assert c.get("/auth/me").json()["name"] == "dan"
        # The cookie alone cannot write (a forged cross-site form would carry it): acts as anonymous.
        w = c.post("/incidents", json={"lon": 104.07, "lat": 30.67, "category": "治安"})
        assert w.status_code == 403
        bad = c.post("/login", data={"username": "dan", "password": "wrong-password"}, follow_redirects=False)
        assert bad.status_code == 401
        # An open redirect is refused: next must be a local path.
        r = c.post("/login", data={"username": "dan", "password": PASSWORD, "next": "//evil.example/x"},
                   follow_redirects=False)
        assert r.headers["location"] == "/"


def test_gcj02_tiles_shift_layers_and_lookup_round_trips(client, tokens):  # noqa: ANN001
    from gridpatrol.api.app import page_csp
    from gridpatrol.api.display import display_geojson

    settings = load_settings(tile_url="http://intranet.example/{z}/{x}/{y}.png", tile_crs="gcj02")
    gj = display_geojson({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "<b>x</b>"},
         "geometry": {"type": "Point", "coordinates": [104.07, 30.67]}}]}, settings)
    x, y = wgs84_to_gcj02(np.array([104.07]), np.array([30.67]))
    assert gj["features"][0]["geometry"]["coordinates"] == pytest.approx([x[0], y[0]], abs=1e-12)
    assert gj["features"][0]["properties"] == {"name": "<b>x</b>"}
    # The basemap's origin, and only it, may serve images to the pages.
    assert "img-src 'self' data: http://intranet.example;" in page_csp(settings)
    assert "intranet" not in page_csp(load_settings())
    # A click on GCJ-02 tiles, looked up with crs=gcj02, finds what the WGS-84 click finds.
    h = tokens["ada"]
    cam = client.get("/cameras?limit=1", headers=h).json()["features"][0]
    clon, clat = cam["geometry"]["coordinates"]
    # A spot 30 m straight ahead of the camera (range 80 m, field of view 90°): it sees it.
    lon, lat, _ = pyproj.Geod(ellps="WGS84").fwd(clon, clat, cam["properties"]["azimuth_deg"], 30.0)
    plain = client.get(f"/lookup?lon={lon}&lat={lat}", headers=h).json()
    assert cam["properties"]["code"] in [c["code"] for c in plain["cameras"]]
    gx, gy = wgs84_to_gcj02(np.array([lon]), np.array([lat]))
    shifted = client.get(f"/lookup?lon={gx[0]}&lat={gy[0]}&crs=gcj02", headers=h).json()
    assert [c["code"] for c in shifted["cameras"]] == [c["code"] for c in plain["cameras"]]
    assert shifted["grid"] == plain["grid"]
    assert (shifted["lon"], shifted["lat"]) == pytest.approx((gx[0], gy[0]), abs=1e-7)
