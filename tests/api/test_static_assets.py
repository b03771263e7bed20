"""Map pages load Leaflet and its plugins from our vendored files, never from a CDN."""
from __future__ import annotations

import re

import folium
import pytest
from folium.plugins import MarkerCluster
from gridpatrol.api.static_assets import (
    VENDOR_DIR,
    check_vendor,
    render_offline,
    save_offline,
)

from tests.conftest import missing_dependency

SRC_HREF = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.I)
CSS_URL = re.compile(r"""url\(\s*["']?(https?:)?//""", re.I)


@pytest.fixture(autouse=True)
def _vendor():
    try:
        check_vendor()
    except Exception as exc:  # noqa: BLE001
        missing_dependency(f"vendored static files: {exc}")


def _busy_map() -> folium.Map:
    """A map using every element our pages use: GeoJSON, circle markers, clusters, popups."""
    m = folium.Map(location=[30.69, 104.08], zoom_start=14, tiles=None)
    folium.GeoJson(
        {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"code": "510104001"},
             "geometry": {"type": "Polygon",
                          "coordinates": [[[104.07, 30.68], [104.09, 30.68], [104.09, 30.70], [104.07, 30.68]]]}}]},
        tooltip=folium.GeoJsonTooltip(["code"]),
    ).add_to(m)
    cluster = MarkerCluster().add_to(m)
    for i in range(5):
        folium.CircleMarker([30.69 + i * 1e-3, 104.08], radius=4, popup=f"事件 {i}").add_to(cluster)
    folium.Marker([30.69, 104.08], tooltip="站点").add_to(m)
    folium.LayerControl().add_to(m)
    return m


def _external(urls: list[str]) -> list[str]:
    return [u for u in urls if re.match(r"^(https?:)?//", u, re.I)]


def test_served_page_loads_only_local_assets():
    html = render_offline(_busy_map(), base_url="/static/vendor")
    urls = SRC_HREF.findall(html)
    assert _external(urls) == [], "CDN URLs left in the page"
    assert not CSS_URL.search(html)
    # Every local asset it names exists in the vendor dir.
    local = [u for u in urls if u.startswith("/static/vendor/")]
    assert {"/static/vendor/leaflet/leaflet.js", "/static/vendor/leaflet.markercluster/leaflet.markercluster.js"} <= set(local)
    for u in local:
        assert (VENDOR_DIR / u[len("/static/vendor/"):]).is_file(), u


def test_standalone_file_is_self_contained(tmp_path):
    out = save_offline(_busy_map(), tmp_path / "map.html")
    html = out.read_text(encoding="utf-8")
    assert SRC_HREF.findall(html) == [] or _external(SRC_HREF.findall(html)) == []
    assert not [u for u in SRC_HREF.findall(html) if not u.startswith("data:")], "standalone file links other files"
    assert not CSS_URL.search(html)
    # The libraries are really inside (not just dropped): Leaflet's and the cluster plugin's code.
    assert "L.MarkerClusterGroup" in html and "Leaflet" in html
    assert "事件 3" in html
    assert not list(tmp_path.glob("*.part"))


def test_folium_defaults_are_not_mutated():
    """Localizing one map must not change the CDN lists folium shares between all maps."""
    before = list(folium.Map.default_js)
    render_offline(_busy_map())
    assert folium.Map.default_js == before


def test_api_docs_page_is_served_offline(client):
    """/docs must work on an intranet cut off from the internet: swagger-ui comes from this app."""
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""", page.text)
    urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", page.text)
    assert urls, page.text[:500]
    assert not [u for u in urls if u.startswith(("http://", "https://", "//"))], urls
    for u in urls:
        if u.startswith("/static/"):
            r = client.get(u)
            assert r.status_code == 200 and len(r.content) > (500 if "/vendor/" in u else 100), u
    # No inline script: swagger-ui starts from our own file, so the page's CSP holds.
    assert "<script>" not in page.text and "/static/js/docs.js" in urls
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/openapi.json").json()["info"]["title"] == "gridpatrol"
