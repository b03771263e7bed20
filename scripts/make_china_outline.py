"""Writes gis/china_outline.py: the simplified outline of mainland China where GCJ-02 applies.

Source: Natural Earth 1:110m admin-0 countries (public domain), as shipped with pyogrio's test
fixtures. China's land (with Hainan) is widened by ``COAST_DEG`` into the sea, then every other
country's land, Hong Kong and Macau (hand-drawn: they do not use GCJ-02) and the North Korean bank
of the Yalu at Dandong (110m puts Sinuiju in China) are cut out, and the result simplified.
Run: python -m gridpatrol.scripts.make_china_outline
"""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pyogrio
import shapely

COAST_DEG = 0.25  # coastal waters kept with the mainland (about 25 km)
SIMPLIFY_DEG = 0.03
# Hong Kong SAR: the Shenzhen River / Sham Chun border and Deep and Mirs Bays, with its waters.
HONG_KONG = [(113.83, 22.13), (113.83, 22.36), (113.90, 22.42), (114.00, 22.50), (114.05, 22.505),
             (114.10, 22.53), (114.16, 22.545), (114.23, 22.555), (114.30, 22.57), (114.50, 22.45),
             (114.50, 22.13)]
# Macau SAR: the peninsula (border at Gongbei, 22.215° N), Taipa and Cotai, and the sea south of it.
MACAU = [(113.525, 21.80), (113.61, 21.80), (113.61, 22.17), (113.56, 22.215), (113.535, 22.215),
         (113.525, 22.18)]
# North Korea's bank of the Yalu from its mouth to beyond Sinuiju (the river runs SW–NE at Dandong).
YALU_NK = [(124.28, 39.80), (124.33, 40.07), (124.45, 40.16), (124.60, 40.05), (124.55, 39.80)]


def outline() -> shapely.Polygon | shapely.MultiPolygon:
    """The simplified mainland outline (WGS-84 degrees)."""
    fixture = Path(pyogrio.__file__).parent / "tests" / "fixtures" / "naturalearth_lowres" / "naturalearth_lowres.shp"
    world = gpd.read_file(fixture)
    china = world.loc[world["name"] == "China"].geometry.iloc[0]
    wide = shapely.buffer(china, COAST_DEG, quad_segs=2)
    others = world.loc[(world["name"] != "China") & world.intersects(wide.buffer(1.0))].geometry
    cut = shapely.union_all([*others, shapely.Polygon(HONG_KONG), shapely.Polygon(MACAU), shapely.Polygon(YALU_NK)])
    mainland = shapely.difference(wide, cut)
    mainland = shapely.simplify(mainland, SIMPLIFY_DEG, preserve_topology=True)
    # Drop slivers of sea left between neighbours (the Tumen mouth between Russia and North Korea).
    parts = [p for p in shapely.get_parts(mainland) if p.area > 0.03]
    return shapely.MultiPolygon(parts) if len(parts) > 1 else parts[0]


def main() -> None:
    geom = outline()
    polys = list(shapely.get_parts(geom))
    lines = ['"""The simplified outline of mainland China where GCJ-02 applies (written by',
             'scripts/make_china_outline.py from Natural Earth 1:110m; Hong Kong, Macau and Taiwan are outside)."""',
             "",
             "# Polygons as exterior rings of (lon, lat) in WGS-84 degrees, coastal waters included.",
             "MAINLAND_CHINA: tuple[tuple[tuple[float, float], ...], ...] = ("]
    for p in polys:
        assert not p.interiors, "the outline has no holes"
        coords = [(round(x, 3), round(y, 3)) for x, y in p.exterior.coords]
        lines.append("    (")
        for i in range(0, len(coords), 6):
            lines.append("        " + " ".join(f"({x}, {y})," for x, y in coords[i:i + 6]))
        lines.append("    ),")
    lines.append(")")
    out = Path(__file__).resolve().parents[1] / "gis" / "china_outline.py"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{out}: {len(polys)} polygons, {sum(len(p.exterior.coords) for p in polys)} vertices")


if __name__ == "__main__":
    main()
