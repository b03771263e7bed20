"""The offline HTML map of a plan that `gridpatrol map-grids` writes (folium, every text escaped)."""
from __future__ import annotations

import geopandas as gpd
import pandas as pd
from gridpatrol.layers.store import Store


def plan_map(store: Store, plan_id: int | None = None):  # noqa: ANN201
    """A folium map of a plan: grids coloured by households (relative to the band), codes as
    labels, buildings and streets; no tile layer (works offline), OSM attribution included.

    Every text from the store (codes, names, street and building names) is HTML-escaped before
    folium sees it: folium puts tooltip and label values into the page as raw HTML.
    """
    import html

    import folium
    from gridpatrol.layers.mapdata import basemap_frames, plan_frame

    g, band = plan_frame(store, plan_id)
    minx, miny, maxx, maxy = g.total_bounds.tolist()
    roads, buildings = basemap_frames(store, (minx, miny, maxx, maxy))
    attribution = "Map data © OpenStreetMap contributors (ODbL)"
    m = folium.Map(location=[(miny + maxy) / 2, (minx + maxx) / 2], tiles=None, control_scale=True,
                   prefer_canvas=True)

    def escaped(df: gpd.GeoDataFrame, cols: list[str]) -> gpd.GeoDataFrame:
        out = df[[*cols, "geometry"]].copy()
        for col in cols:
            if not (pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col])):
                out[col] = [None if v is None or v != v else html.escape(str(v)) for v in out[col]]
        return out

    shown = ["code", "name", "households", "buildings", "street_m", "area_m2", "polsby_popper", "exempt", "locked"]
    folium.GeoJson(
        escaped(g, [*shown, "fill"]), name="grids",
        style_function=lambda f: {"fillColor": f["properties"]["fill"], "color": "#333333", "weight": 2,
                                  "fillOpacity": 0.45},
        tooltip=folium.GeoJsonTooltip(shown),
    ).add_to(m)
    if len(roads):
        folium.GeoJson(escaped(roads, ["name", "highway"]), name="streets",
                       style_function=lambda f: {"color": "#666666", "weight": 1}).add_to(m)
    if len(buildings):
        folium.GeoJson(escaped(buildings, ["name", "households"]), name="buildings",
                       style_function=lambda f: {"color": "#555555", "weight": 0.5, "fillColor": "#999999",
                                                 "fillOpacity": 0.6}).add_to(m)
    labels = folium.FeatureGroup(name="grid codes")
    for code, short, p in zip(g["code"].astype(str), g["label"], g.geometry.representative_point()):
        code, short = html.escape(code), html.escape(str(short))
        folium.Marker([p.y, p.x], icon=folium.DivIcon(
            html=f'<div title="{code}" style="font-size:10px;font-weight:bold;white-space:nowrap">{short}</div>'),
            tooltip=code).add_to(labels)
    labels.add_to(m)
    # A static legend: branca's colormap legend would pull d3 from a CDN.
    stops = ", ".join(f"{c} {int(100 * i / 4)}%" for i, c in enumerate(band["stops"]))
    m.get_root().html.add_child(folium.Element(
        '<div style="position:fixed;top:10px;left:50px;z-index:9999;background:white;padding:4px 8px;'
        'font-size:11px;border:1px solid #999">households per grid '
        f'(band {band["min_households"]:g}–{band["max_households"]:g})<div style="width:200px;height:10px;'
        f'background:linear-gradient(to right, {stops})"></div>'
        f'<span>{band["vmin"]:g}</span><span style="float:right">{band["vmax"]:g}</span></div>'))
    m.get_root().html.add_child(folium.Element(
        f'<div style="position:fixed;bottom:4px;left:120px;z-index:9999;background:white;padding:2px 6px;'
        f'font-size:11px">{attribution} · plan {band["plan_id"]}</div>'))
    folium.LayerControl().add_to(m)
    m.fit_bounds([[miny, minx], [maxy, maxx]])
    return m
