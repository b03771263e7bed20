"""Make folium maps load Leaflet and its plugins from our own vendored files, never from a CDN."""
from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import folium
from branca.element import CssLink, Element, Figure, JavascriptLink
from gridpatrol.gis.errors import GridPatrolError, InputError

VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"
# Where the service mounts VENDOR_DIR (see api/app.py).
SERVED_BASE_URL = "/static/vendor"
FETCH_HINT = "run scripts/fetch_assets.sh once (it installs them from the npm registry)"

# folium's resource names → the vendored file (relative to VENDOR_DIR) that replaces the CDN URL.
JS_ASSETS: dict[str, str] = {
    "leaflet": "leaflet/leaflet.js",
    "jquery": "jquery/jquery.min.js",
    "markerclusterjs": "leaflet.markercluster/leaflet.markercluster.js",
}
CSS_ASSETS: dict[str, str] = {
    "leaflet_css": "leaflet/leaflet.css",
    "markerclustercss": "leaflet.markercluster/MarkerCluster.css",
    "markerclusterdefaultcss": "leaflet.markercluster/MarkerCluster.Default.css",
}
# folium's defaults that our pages do not use: Bootstrap and the awesome-markers icon font
# (we draw circle markers and sectors, never icon pins), so they are dropped, not vendored.
DROPPED = {
    "bootstrap",
    "bootstrap_css",
    "glyphicons_css",
    "awesome_markers",
    "awesome_markers_css",
    "awesome_markers_font_css",
    "awesome_rotate_css",
}


class AssetsMissing(GridPatrolError):
    """The vendored front-end files are not installed."""

    exit_code = 5


def check_vendor(vendor_dir: Path = VENDOR_DIR) -> None:
    """Raise AssetsMissing unless every vendored file the maps need is present."""
    missing = [p for p in (*JS_ASSETS.values(), *CSS_ASSETS.values()) if not (vendor_dir / p).is_file()]
    if missing:
        raise AssetsMissing(
            f"map assets missing in {vendor_dir}: {', '.join(missing)}", hint=FETCH_HINT
        )


def _walk(element) -> Iterator:  # noqa: ANN001
    yield element
    for child in list(element._children.values()):
        yield from _walk(child)


def _needed_assets(m: folium.Map) -> tuple[list[str], list[str]]:
    """The vendored JS and CSS files every element of ``m`` needs, in load order."""
    js: list[str] = []
    css: list[str] = []
    for el in _walk(m.get_root()):
        for attr, table, out in (("default_js", JS_ASSETS, js), ("default_css", CSS_ASSETS, css)):
            for name, url in getattr(el, attr, None) or []:
                if name in DROPPED:
                    continue
                if name not in table:
                    raise InputError(
                        f"map element {type(el).__name__} needs {name} from {url}, which is not vendored",
                        hint="add it to scripts/fetch_assets.sh and api/static_assets.py, or use another element",
                    )
                if table[name] not in out:
                    out.append(table[name])
            if getattr(el, attr, None):
                # An instance attribute: folium's lists are class attributes shared by every map.
                setattr(el, attr, [])
    return js, css


_CSS_URL = re.compile(r"url\((['\"]?)(?!data:|#)([^)'\"]+)\1\)")


def _inline_css(rel: str, vendor_dir: Path) -> str:
    """The CSS file ``rel`` with every url(...) it references turned into a data: URI."""
    path = vendor_dir / rel
    text = path.read_text(encoding="utf-8")

    def repl(match: re.Match) -> str:
        target = (path.parent / match.group(2)).resolve()
        if not target.is_file():
            return match.group(0)
        mime = "image/png" if target.suffix == ".png" else "application/octet-stream"
        return f"url(data:{mime};base64,{base64.b64encode(target.read_bytes()).decode('ascii')})"

    return _CSS_URL.sub(repl, text)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def localize(m: folium.Map, *, base_url: str | None = SERVED_BASE_URL, vendor_dir: Path = VENDOR_DIR) -> folium.Map:
    """Point every JS/CSS resource of ``m`` at our vendored copies; call after adding all layers.

    ``base_url`` is the URL prefix under which ``vendor_dir`` is served (``/static/vendor`` by
    the service). ``base_url=None`` inlines the files instead, so the HTML is one self-contained
    file that works when opened from disk without any network.
    Raises AssetsMissing when the vendored files are not installed, InputError when an element
    needs a resource we do not vendor.
    """
    check_vendor(vendor_dir)
    js, css = _needed_assets(m)
    header = m.get_root().header
    for i, rel in enumerate(css):
        if base_url is None:
            header.add_child(Element(f"<style>\n{_inline_css(rel, vendor_dir)}\n</style>"), name=f"gp_css_{i}")
        else:
            header.add_child(CssLink(f"{base_url.rstrip('/')}/{rel}"), name=f"gp_css_{i}")
    for i, rel in enumerate(js):
        if base_url is None:
            code = (vendor_dir / rel).read_text(encoding="utf-8")
            # "</script" inside the code would end the element early.
            code = code.replace("</script", "<\\/script")
            header.add_child(Element(f"<script>\n{code}\n</script>"), name=f"gp_js_{i}")
            if rel == JS_ASSETS["leaflet"]:
                # Leaflet finds its marker images relative to leaflet.css; inlined there is no
                # such path, so give it the images directly.
                img = vendor_dir / "leaflet" / "images"
                header.add_child(
                    Element(
                        "<script>L.Icon.Default.imagePath='';L.Icon.Default.mergeOptions({"
                        f"iconUrl:'{_data_uri(img / 'marker-icon.png')}',"
                        f"iconRetinaUrl:'{_data_uri(img / 'marker-icon-2x.png')}',"
                        f"shadowUrl:'{_data_uri(img / 'marker-shadow.png')}'}});</script>"
                    ),
                    name="gp_js_icons",
                )
        else:
            header.add_child(JavascriptLink(f"{base_url.rstrip('/')}/{rel}"), name=f"gp_js_{i}")
    return m


def render_offline(m: folium.Map, *, base_url: str | None = SERVED_BASE_URL) -> str:
    """The full HTML page of ``m`` with every resource from our vendored copies (see localize)."""
    localize(m, base_url=base_url)
    root = m.get_root()
    assert isinstance(root, Figure)
    return root.render()


def save_offline(m: folium.Map, path: str | Path) -> Path:
    """Write ``m`` as one self-contained HTML file (assets inlined) that works offline from disk."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise InputError(f"directory {path.parent} does not exist", where=str(path), hint="create it first")
    html = render_offline(m, base_url=None)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)  # nothing half-written on failure
    return path
