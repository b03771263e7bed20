"""Route outputs: the printed A4 route sheet (PDF, own map, CJK font embedded), GPX, GeoJSON, folium map."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import folium
import geopandas as gpd
import gpxpy
import gpxpy.gpx
import numpy as np
import pyproj
import shapely
from gridpatrol.gis.crs import local_metric_crs, wgs84_to_gcj02
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.routing.directions import format_distance
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

CJK_FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
CJK_FONT = "WenQuanYiZenHei"
OSM_ATTRIBUTION = "© OpenStreetMap contributors, ODbL"
MAX_PDF_BYTES = 2 * 1024 * 1024
MAJOR = {"motorway", "trunk", "primary", "secondary", "motorway_link", "trunk_link", "primary_link"}
ROUTE_RED = colors.Color(0.85, 0.1, 0.1, alpha=0.75)
STEP_MARK_R = 4.2  # radius of a numbered step's mark on the sheet's map, points


@dataclass
class SheetRoute:
    """What a route sheet shows; everything in WGS-84, lengths in metres, durations in seconds."""

    grid_code: str
    mode: str  # walk | drive
    line: LineString
    steps: list[dict[str, Any]]  # as gis.routing.directions.steps_json
    length_m: float
    duration_s: float
    required_m: float | None = None
    lower_bound_m: float | None = None
    grid: BaseGeometry | None = None
    worker: str | None = None
    worker_index: int = 0
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)
    shift: int = 0  # 1…shifts when the grid's coverage is cut into shifts, else 0
    shifts: int = 0
    uturns: int | None = None  # U-turns along the route (None: not known)
    uturns_dead_end: int | None = None  # of them, at dead ends


def _font() -> str:
    if CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        if not CJK_FONT_PATH.exists():
            raise InputError(f"CJK font {CJK_FONT_PATH} is missing", hint="install fonts-wqy-zenhei (apt)")
        # reportlab embeds TrueType subsets only; WenQuanYi's TTC is TrueType, Noto CJK is OTF/CFF.
        pdfmetrics.registerFont(TTFont(CJK_FONT, str(CJK_FONT_PATH), subfontIndex=0))
    return CJK_FONT


def _check_lang(lang: str) -> None:
    if lang not in ("zh", "en"):
        raise InputError(f"unknown language {str(lang)[:20]!r}", hint="use zh or en")


def _labels(lang: str) -> dict[str, str]:
    if lang == "zh":
        return {"title": "巡查路线", "grid": "网格", "worker": "网格员", "length": "全程", "time": "用时约",
                "streets": "应巡街道", "lower": "理论最短", "gap": "差距", "mode_walk": "步行", "mode_drive": "驾车",
                "start": "起", "end": "终", "directions": "路线指引", "synthetic": "合成数据 / synthetic data",
                "min": "分钟", "page": "第 {} 页", "route": "路线", "printed": "打印于 {} ({})",
                "legend_grid": "网格边界", "legend_route": "巡查路线（箭头为方向）", "legend_step": "路线指引步骤",
                "legend_start": "起点 / 终点", "legend_major": "主干道", "legend_minor": "其他道路",
                "north": "北", "km": "{} 公里", "attribution": "地图数据 © OpenStreetMap 贡献者（ODbL）"}
    return {"title": "Patrol route", "grid": "Grid", "worker": "Worker", "length": "Length", "time": "Time approx.",
            "streets": "Streets to cover", "lower": "Lower bound", "gap": "gap", "mode_walk": "walking",
            "mode_drive": "driving", "start": "S", "end": "E", "directions": "Directions",
            "synthetic": "synthetic data", "min": "min", "page": "page {}", "route": "route",
            "printed": "printed {} ({})", "legend_grid": "grid boundary", "legend_route": "patrol route (arrows: direction)",
            "legend_step": "direction step", "legend_start": "start / end", "legend_major": "main road",
            "legend_minor": "other road", "north": "N", "km": "{} km", "attribution": OSM_ATTRIBUTION}


class _MapFrame:
    """Metric projection of the map area into a box on the page (points)."""

    def __init__(self, geoms: Sequence[BaseGeometry], box: tuple[float, float, float, float]):
        allg = shapely.union_all([g for g in geoms if g is not None and not g.is_empty])
        c = allg.centroid
        self.crs = local_metric_crs(c.x, c.y)
        self.tf = pyproj.Transformer.from_crs(4326, self.crs, always_xy=True)
        minx, miny, maxx, maxy = self.project(allg).bounds
        pad = 0.05 * max(maxx - minx, maxy - miny, 50.0)
        minx, miny, maxx, maxy = minx - pad, miny - pad, maxx + pad, maxy + pad
        x0, y0, w, h = box
        self.scale = min(w / (maxx - minx), h / (maxy - miny))
        # Centre the drawing in the box.
        self.ox = x0 + (w - (maxx - minx) * self.scale) / 2 - minx * self.scale
        self.oy = y0 + (h - (maxy - miny) * self.scale) / 2 - miny * self.scale
        self.box = box
        self.m_bounds = (minx, miny, maxx, maxy)

    def project(self, g: BaseGeometry) -> BaseGeometry:
        return shapely.transform(g, lambda xy: np.column_stack(self.tf.transform(xy[:, 0], xy[:, 1])))

    def page(self, xy: np.ndarray) -> np.ndarray:
        return np.column_stack([self.ox + xy[:, 0] * self.scale, self.oy + xy[:, 1] * self.scale])

    def point(self, lon: float, lat: float) -> tuple[float, float]:
        x, y = self.tf.transform(lon, lat)
        return self.ox + x * self.scale, self.oy + y * self.scale


def _draw_line(c: canvas.Canvas, pts: np.ndarray) -> None:
    if len(pts) < 2:
        return
    p = c.beginPath()
    p.moveTo(*pts[0])
    for x, y in pts[1:]:
        p.lineTo(x, y)
    c.drawPath(p, stroke=1, fill=0)


def _draw_polygon(c: canvas.Canvas, frame: _MapFrame, poly: BaseGeometry) -> None:
    for part in getattr(frame.project(poly), "geoms", [frame.project(poly)]):
        ring = frame.page(np.asarray(part.exterior.coords))
        p = c.beginPath()
        p.moveTo(*ring[0])
        for x, y in ring[1:]:
            p.lineTo(x, y)
        p.close()
        c.drawPath(p, stroke=1, fill=1)


def _arrow(c: canvas.Canvas, x: float, y: float, heading_deg: float, size: float) -> None:
    """A filled arrow head at (x, y) pointing along the compass heading."""
    a = math.radians(heading_deg)
    dx, dy = math.sin(a), math.cos(a)
    px, py = -dy, dx
    tip = (x + dx * size, y + dy * size)
    left = (x - dx * size * 0.6 + px * size * 0.6, y - dy * size * 0.6 + py * size * 0.6)
    right = (x - dx * size * 0.6 - px * size * 0.6, y - dy * size * 0.6 - py * size * 0.6)
    p = c.beginPath()
    p.moveTo(*tip)
    p.lineTo(*left)
    p.lineTo(*right)
    p.close()
    c.drawPath(p, stroke=0, fill=1)


def _draw_map(c: canvas.Canvas, frame: _MapFrame, route: SheetRoute, streets: gpd.GeoDataFrame | None,
              lang: str, font: str) -> None:
    L = _labels(lang)
    x0, y0, w, h = frame.box
    c.saveState()
    clip = c.beginPath()
    clip.rect(x0, y0, w, h)
    c.clipPath(clip, stroke=0, fill=0)
    c.setFillColor(colors.Color(0.98, 0.98, 0.96))
    c.rect(x0, y0, w, h, stroke=0, fill=1)
    if route.grid is not None:
        c.setFillColor(colors.Color(0.85, 0.92, 1.0))
        c.setStrokeColor(colors.Color(0.1, 0.3, 0.8))
        c.setLineWidth(1.2)
        c.setDash(4, 2)
        _draw_polygon(c, frame, route.grid)
        c.setDash()
    if streets is not None and len(streets):
        minx, miny, maxx, maxy = frame.m_bounds
        sm = streets.to_crs(frame.crs)
        sm = sm[sm.intersects(shapely.box(minx, miny, maxx, maxy))]
        for major in (False, True):
            sel = sm[sm["highway"].isin(MAJOR) == major]
            c.setStrokeColor(colors.Color(0.55, 0.55, 0.55) if major else colors.Color(0.7, 0.7, 0.7))
            c.setLineWidth(1.6 if major else 0.7)
            for g in sel.geometry:
                for part in getattr(g, "geoms", [g]):
                    _draw_line(c, frame.page(np.asarray(part.coords)))
        _street_labels(c, frame, sm, font)
    # The route.
    line_m = frame.project(route.line)
    pts = frame.page(np.asarray(line_m.coords))
    c.setStrokeColor(ROUTE_RED)
    c.setLineWidth(2.2)
    c.setLineJoin(1)
    _draw_line(c, pts)
    # Direction arrows every ~1/40 of the route, so the travel direction can be read anywhere.
    c.setFillColor(colors.Color(0.6, 0.0, 0.0))
    n_arrows = 40
    for k in range(1, n_arrows):
        d = line_m.length * k / n_arrows
        a, b = line_m.interpolate(d), line_m.interpolate(min(d + 3.0, line_m.length))
        hd = math.degrees(math.atan2(b.x - a.x, b.y - a.y))
        px, py = frame.page(np.array([[a.x, a.y]]))[0]
        _arrow(c, px, py, hd, 3.2)
    # Numbered steps: thinned when there are very many, moved off each other with a leader line.
    steps = [s for s in route.steps if s["action"] not in ("arrive",)]
    every = max(1, math.ceil(len(steps) / 80))
    shown = steps[1::every]
    at = np.array([frame.point(s["lon"], s["lat"]) for s in shown]).reshape(-1, 2)
    marks = place_marks(at, STEP_MARK_R, frame.box)
    c.setFont(font, 5.5)
    for s, (px, py), mark in zip(shown, at, marks):
        if mark is None:
            continue
        mx, my = mark
        c.setStrokeColor(colors.Color(0.6, 0.0, 0.0))
        c.setLineWidth(0.5)
        if (mx, my) != (px, py):
            c.line(px, py, mx, my)
            c.setFillColor(colors.Color(0.6, 0.0, 0.0))
            c.circle(px, py, 0.9, stroke=0, fill=1)
        c.setFillColor(colors.white)
        c.circle(mx, my, STEP_MARK_R, stroke=1, fill=1)
        c.setFillColor(colors.black)
        c.drawCentredString(mx, my - 2.0, str(s["index"]))
    # Start and end.
    start = route.steps[0]
    end = route.steps[-1]
    sx, sy = frame.point(start["lon"], start["lat"])
    ex, ey = frame.point(end["lon"], end["lat"])
    if abs(sx - ex) < 1 and abs(sy - ey) < 1:
        ex += 12  # a closed route ends where it starts: put the end mark beside the start
    c.setFont(font, 8)
    for (x, y), label, col in (((sx, sy), L["start"], colors.Color(0.0, 0.55, 0.2)),
                               ((ex, ey), L["end"], colors.Color(0.75, 0.0, 0.0))):
        c.setFillColor(col)
        c.setStrokeColor(colors.white)
        c.circle(x, y, 6.5, stroke=1, fill=1)
        c.setFillColor(colors.white)
        c.drawCentredString(x, y - 3, label)
    c.restoreState()
    c.setStrokeColor(colors.black)
    c.setLineWidth(0.6)
    c.rect(x0, y0, w, h, stroke=1, fill=0)
    _scale_bar(c, frame, lang, font)
    _north_arrow(c, x0 + w - 16, y0 + h - 30, font, lang)
    _legend(c, frame, route, lang, font)


def place_marks(points: np.ndarray, r: float, box: tuple[float, float, float, float],
                rings: Sequence[float] = (0.0, 3.0, 4.5, 6.0)) -> list[tuple[float, float] | None]:
    """Centres for round marks of radius ``r`` at ``points`` (page points) that overlap no other mark
    and stay in ``box`` (x, y, w, h): at the point, else the nearest free place on rings of
    ``rings`` × r around it (reached by a leader line), else None (the mark is left out)."""
    x0, y0, w, h = box
    placed: list[tuple[float, float]] = []
    out: list[tuple[float, float] | None] = []
    gap = 2 * r + 0.5
    angles = np.radians(np.arange(0, 360, 30))
    for px, py in np.asarray(points, dtype=float).reshape(-1, 2):
        spot = None
        for ring in rings:
            cands = [(px, py)] if ring == 0 else [(px + ring * r * np.cos(a), py + ring * r * np.sin(a)) for a in angles]
            for cx, cy in cands:
                if not (x0 + r <= cx <= x0 + w - r and y0 + r <= cy <= y0 + h - r):
                    continue
                if all((cx - qx) ** 2 + (cy - qy) ** 2 >= gap * gap for qx, qy in placed):
                    spot = (float(cx), float(cy))
                    break
            if spot is not None:
                break
        if spot is not None:
            placed.append(spot)
        out.append(spot)
    return out


def _legend(c: canvas.Canvas, frame: _MapFrame, route: SheetRoute, lang: str, font: str) -> None:
    """The map's key, bottom right: grid, route, step, start/end, streets."""
    L = _labels(lang)
    x0, y0, w, _ = frame.box
    rows = ([("grid", L["legend_grid"])] if route.grid is not None else []) + [
        ("route", L["legend_route"]), ("step", L["legend_step"]), ("start", L["legend_start"]),
        ("major", L["legend_major"]), ("minor", L["legend_minor"])]
    c.setFont(font, 6.5)
    text_w = max(c.stringWidth(label, font, 6.5) for _, label in rows)
    bw, bh = text_w + 34, 9 * len(rows) + 6
    bx, by = x0 + w - bw - 4, y0 + 4
    c.setFillColor(colors.Color(1, 1, 1, alpha=0.9))
    c.setStrokeColor(colors.Color(0.5, 0.5, 0.5))
    c.setLineWidth(0.4)
    c.rect(bx, by, bw, bh, stroke=1, fill=1)
    for k, (kind, label) in enumerate(rows):
        y = by + bh - 8 - 9 * k
        sx = bx + 5
        if kind == "grid":
            c.setStrokeColor(colors.Color(0.1, 0.3, 0.8))
            c.setFillColor(colors.Color(0.85, 0.92, 1.0))
            c.setDash(4, 2)
            c.rect(sx, y - 1.5, 18, 5, stroke=1, fill=1)
            c.setDash()
        elif kind == "route":
            c.setStrokeColor(ROUTE_RED)
            c.setLineWidth(2.2)
            c.line(sx, y + 1, sx + 18, y + 1)
            c.setFillColor(colors.Color(0.6, 0.0, 0.0))
            _arrow(c, sx + 9, y + 1, 90.0, 3.2)
        elif kind == "step":
            c.setStrokeColor(colors.Color(0.6, 0.0, 0.0))
            c.setLineWidth(0.5)
            c.setFillColor(colors.white)
            c.circle(sx + 9, y + 1, STEP_MARK_R * 0.8, stroke=1, fill=1)
        elif kind == "start":
            for dx, col in ((4, colors.Color(0.0, 0.55, 0.2)), (14, colors.Color(0.75, 0.0, 0.0))):
                c.setFillColor(col)
                c.circle(sx + dx, y + 1, 3.5, stroke=0, fill=1)
        else:
            c.setStrokeColor(colors.Color(0.55, 0.55, 0.55) if kind == "major" else colors.Color(0.7, 0.7, 0.7))
            c.setLineWidth(1.6 if kind == "major" else 0.7)
            c.line(sx, y + 1, sx + 18, y + 1)
        c.setFillColor(colors.black)
        c.drawString(sx + 24, y - 1, label)


def _street_labels(c: canvas.Canvas, frame: _MapFrame, sm: gpd.GeoDataFrame, font: str, most: int = 30) -> None:
    """Names of the longest streets on the map, written along them."""
    name_col = "name_zh" if "name_zh" in sm.columns else "name"
    named = sm[sm[name_col].notna()]
    if not len(named):
        return
    minx, miny, maxx, maxy = frame.m_bounds
    view = shapely.box(minx, miny, maxx, maxy)
    merged = named.geometry.intersection(view).groupby(named[name_col].to_numpy()).agg(lambda g: shapely.line_merge(shapely.union_all(g.to_numpy())))
    lengths = merged.apply(lambda g: g.length).sort_values(ascending=False)
    c.setFillColor(colors.Color(0.25, 0.25, 0.25))
    c.setFont(font, 6)
    for name in lengths.index[:most]:
        g = merged[name]
        parts = sorted(getattr(g, "geoms", [g]), key=lambda p: -p.length)
        part = parts[0]
        if part.length * frame.scale < c.stringWidth(name, font, 6) + 6:
            continue
        mid = part.interpolate(0.5, normalized=True)
        a = part.interpolate(max(0.0, part.length / 2 - 5))
        b = part.interpolate(min(part.length, part.length / 2 + 5))
        ang = math.degrees(math.atan2(b.y - a.y, b.x - a.x))
        if ang > 90 or ang < -90:
            ang += 180  # keep text upright
        x, y = frame.page(np.array([[mid.x, mid.y]]))[0]
        c.saveState()
        c.translate(x, y)
        c.rotate(ang)
        c.drawCentredString(0, 2, str(name))
        c.restoreState()


def _scale_bar(c: canvas.Canvas, frame: _MapFrame, lang: str, font: str) -> None:
    x0, y0, w, _ = frame.box
    target = 80 / frame.scale  # metres for ~80 pt
    nice = [50, 100, 200, 250, 500, 1000, 2000, 5000]
    metres = min(nice, key=lambda v: abs(v - target))
    length_pt = metres * frame.scale
    c.setFillColor(colors.black)
    c.setStrokeColor(colors.black)
    c.setLineWidth(1.5)
    c.line(x0 + 10, y0 + 10, x0 + 10 + length_pt, y0 + 10)
    c.setFont(font, 7)
    c.drawString(x0 + 12 + length_pt, y0 + 8, format_distance(metres, lang) if metres < 1000 else _labels(lang)["km"].format(metres // 1000))


def _north_arrow(c: canvas.Canvas, x: float, y: float, font: str, lang: str) -> None:
    c.setFillColor(colors.black)
    _arrow(c, x, y, 0.0, 8)
    c.setFont(font, 8)
    c.drawCentredString(x, y + 10, _labels(lang)["north"])


def _footer(c: canvas.Canvas, route: SheetRoute, lang: str, font: str, page_no: int, tz: str) -> None:
    L = _labels(lang)
    width, _ = A4
    c.setFont(font, 7)
    c.setFillColor(colors.Color(0.3, 0.3, 0.3))
    parts = [L["attribution"]]
    if route.synthetic:
        parts.append(L["synthetic"])
    parts.append(L["printed"].format(datetime.now(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M"), tz))
    c.drawString(15 * mm, 8 * mm, "   ".join(parts))
    c.drawRightString(width - 15 * mm, 8 * mm, L["page"].format(page_no))


def write_route_sheet(
    path: str | Path,
    route: SheetRoute | Sequence[SheetRoute],
    *,
    streets: gpd.GeoDataFrame | None = None,
    lang: str = "zh",
    timezone: str = "Asia/Shanghai",
) -> Path:
    """Write the A4 PDF route sheet of ``route`` to ``path``: map, totals, numbered directions.

    Several routes (a grid's shifts) are printed one after the other, each from a new page. The
    map is drawn from our own layers (``streets``, EPSG:4326, with highway and name or
    name_zh) with no online tiles. Chinese text uses the embedded WenQuanYi Zen Hei font. The
    file is written to a temporary name first, so a failure leaves nothing half-written.
    Raises InputError when the route is empty or the PDF would exceed 2 MB.
    """
    routes = [route] if isinstance(route, SheetRoute) else list(route)
    _check_lang(lang)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"unknown time zone {timezone!r}", hint="an IANA name such as Asia/Shanghai") from exc
    if not routes:
        raise InputError("no route to print")
    for r in routes:
        if r.line is None or r.line.is_empty:
            raise InputError("the route has no geometry", where=r.grid_code)
    path = Path(path)
    if not path.parent.exists():
        raise InputError(f"directory {path.parent} does not exist", where=str(path), hint="create it first")
    font = _font()
    tmp = path.with_name(path.name + ".part")
    c = canvas.Canvas(str(tmp), pagesize=A4, pageCompression=1, initialFontName=font)
    c.setTitle(f"{_labels(lang)['title']} {routes[0].grid_code}")
    c.setAuthor("gridpatrol")
    for r in routes:
        _draw_sheet(c, r, streets, lang, font, timezone)
    c.save()
    size = tmp.stat().st_size
    if size > MAX_PDF_BYTES:
        tmp.unlink()
        raise InputError(f"the route sheet would be {size / 1e6:.1f} MB, over the 2 MB limit", where=routes[0].grid_code,
                         hint="split the grid's route with --workers or --max-minutes")
    tmp.replace(path)
    return path


def uturn_text(uturns: int, dead_end: int | None, lang: str) -> str:
    """The sheet header's U-turn count: 掉头 N 次（其中断头路 D 次） / U-turns N (D at dead ends)."""
    if lang == "zh":
        return f"掉头 {uturns} 次" + (f"（其中断头路 {dead_end} 次）" if uturns and dead_end is not None else "")
    return f"U-turns {uturns}" + (f" ({dead_end} at dead ends)" if uturns and dead_end is not None else "")


def _draw_sheet(c: canvas.Canvas, route: SheetRoute, streets: gpd.GeoDataFrame | None, lang: str, font: str,
                tz: str) -> None:
    """Draw one route's sheet (its map page and as many direction pages as it takes)."""
    L = _labels(lang)
    width, height = A4
    margin = 15 * mm
    # Header.
    c.setFont(font, 15)
    c.setFillColor(colors.black)
    mode = L["mode_walk"] if route.mode == "walk" else L["mode_drive"]
    title = f"{L['title']}（{mode}）  {L['grid']} {route.grid_code}" if lang == "zh" else \
        f"{L['title']} ({mode})  {L['grid']} {route.grid_code}"
    if route.worker_index:
        title += f"  #{route.worker_index + 1}"
    if route.shifts:
        title += f"  第 {route.shift}/{route.shifts} 班" if lang == "zh" else f"  shift {route.shift}/{route.shifts}"
    c.drawString(margin, height - margin - 8, title)
    c.setFont(font, 9)
    info = []
    if route.worker:
        info.append(f"{L['worker']}: {route.worker}")
    info.append(f"{L['length']} {format_distance(route.length_m, lang)}")
    info.append(f"{L['time']} {route.duration_s / 60:.0f} {L['min']}")
    if route.required_m:
        info.append(f"{L['streets']} {format_distance(route.required_m, lang)}")
    if route.lower_bound_m:
        gap = (route.length_m - route.lower_bound_m) / route.lower_bound_m if route.lower_bound_m else 0.0
        info.append(f"{L['lower']} {format_distance(route.lower_bound_m, lang)} ({L['gap']} {gap * 100:.1f}%)")
    if route.uturns is not None:
        info.append(uturn_text(route.uturns, route.uturns_dead_end, lang))
    line = "   ".join(info)
    # A long header (worker, bound and U-turns) shrinks to the page's width instead of running off it.
    c.setFont(font, max(6.5, min(9.0, 9.0 * (width - 2 * margin) / pdfmetrics.stringWidth(line, font, 9))))
    c.drawString(margin, height - margin - 24, line)
    c.setFont(font, 9)
    if route.synthetic:
        c.setFillColor(colors.Color(0.8, 0.0, 0.0))
        c.drawRightString(width - margin, height - margin - 8, L["synthetic"])
        c.setFillColor(colors.black)
    # Map.
    map_box = (margin, height - margin - 32 - 420, width - 2 * margin, 420)
    frame = _MapFrame([route.line] + ([route.grid] if route.grid is not None else []), map_box)
    _draw_map(c, frame, route, streets, lang, font)
    # Directions, two columns, continuing on further pages.
    y_top = map_box[1] - 16
    c.setFont(font, 10)
    c.drawString(margin, y_top, L["directions"])
    col_w = (width - 2 * margin) / 2
    line_h = 10.5
    y = y_top - 14
    col = 0
    page = 1
    c.setFont(font, 7.5)
    for note in route.notes:
        c.drawString(margin, y, note)
        y -= line_h
    for s in route.steps:
        text = f"{s['index']}. {s['text']}"
        # Wrap long lines at the column width.
        chunks = _wrap(c, text, font, 7.5, col_w - 8)
        if y - line_h * len(chunks) < 16 * mm:
            if col == 0:
                col, y = 1, y_top - 14
            else:
                _footer(c, route, lang, font, page, tz)
                c.showPage()
                page += 1
                col, y_top = 0, height - margin - 10
                y = y_top
            c.setFont(font, 7.5)
        for k, chunk in enumerate(chunks):
            c.drawString(margin + col * col_w + (8 if k else 0), y, chunk)
            y -= line_h
    _footer(c, route, lang, font, page, tz)
    c.showPage()


def _wrap(c: canvas.Canvas, text: str, font: str, size: float, width: float) -> list[str]:
    out, cur = [], ""
    for ch in text:
        if c.stringWidth(cur + ch, font, size) > width and cur:
            out.append(cur)
            cur = ch
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def _to_crs(xy: np.ndarray, crs: str) -> np.ndarray:
    if crs == "wgs84":
        return xy
    if crs == "gcj02":
        lon, lat = wgs84_to_gcj02(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])
    raise InputError(f"unknown GPX coordinate system {crs!r}", hint="use wgs84 or gcj02")


def gpx_track_name(route: SheetRoute, lang: str = "zh") -> str:
    """A GPX track's name: grid code, mode, worker number and shift (班次) in ``lang`` (zh or en)."""
    L = _labels(lang)
    mode = L["mode_walk"] if route.mode == "walk" else L["mode_drive"]
    worker = f" #{route.worker_index + 1}" if route.worker_index else ""
    if lang == "zh":
        return f"{route.grid_code} {mode}{L['title']}{worker}" + (f" 第 {route.shift}/{route.shifts} 班" if route.shifts else "")
    return f"{route.grid_code} {mode} {L['title'].lower()}{worker}" + (f", shift {route.shift}/{route.shifts}" if route.shifts else "")


def _gpx_description(route: SheetRoute, crs: str, lang: str) -> str:
    L = _labels(lang)
    crs_name = {"wgs84": "WGS-84", "gcj02": "GCJ-02"}[crs]
    minutes = f"{route.duration_s / 60:.0f}"
    if lang == "zh":
        return f"{L['length']} {format_distance(route.length_m, lang)}，{L['time']} {minutes} {L['min']}；坐标 {crs_name}" + \
            ("；合成数据" if route.synthetic else "")
    return f"{L['length']} {format_distance(route.length_m, lang)}, about {minutes} min; coordinates {crs_name}" + \
        ("; synthetic data" if route.synthetic else "")


def write_gpx(path: str | Path, route: SheetRoute | Sequence[SheetRoute], *, crs: str = "wgs84",
              lang: str = "zh") -> Path:
    """Write the route as a GPX track (one track per shift, named with its shift), the start and every turn as
    waypoints with the instruction; names, descriptions and instructions in ``lang`` (zh default, or en; street
    names stay as mapped); ``crs`` wgs84 or gcj02.

    GCJ-02 is for Chinese phone map apps (Amap, Tencent), which expect shifted coordinates. A waypoint's
    ``type`` is the turn's code (``left``, ``uturn`` …) for programs, not for reading.
    """
    _check_lang(lang)
    routes = [route] if isinstance(route, SheetRoute) else list(route)
    gpx = gpxpy.gpx.GPX()
    gpx.creator = "gridpatrol"
    for r in routes:
        xy = _to_crs(np.asarray(r.line.coords), crs)
        track = gpxpy.gpx.GPXTrack(name=gpx_track_name(r, lang))
        track.description = _gpx_description(r, crs, lang)
        seg = gpxpy.gpx.GPXTrackSegment()
        seg.points.extend(gpxpy.gpx.GPXTrackPoint(latitude=float(la), longitude=float(lo)) for lo, la in xy)
        track.segments.append(seg)
        gpx.tracks.append(track)
        pts = _to_crs(np.array([[st["lon"], st["lat"]] for st in r.steps]), crs)
        start = "起点" if lang == "zh" else "start"
        for k, (st, (lo, la)) in enumerate(zip(r.steps, pts)):
            name = start if k == 0 and len(routes) == 1 else f"{r.shift or 1}-{st['index']}" if r.shifts else str(st["index"])
            wp = gpxpy.gpx.GPXWaypoint(latitude=float(la), longitude=float(lo), name=name)
            # Steps carry both languages (text, text_en) unless sheet_route already picked one.
            wp.description = (st.get("text_en") or st.get("text")) if lang == "en" else st.get("text")
            wp.comment = (st.get("street_en") or st.get("street")) if lang == "en" else st.get("street")
            wp.type = st.get("action")
            gpx.waypoints.append(wp)
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(gpx.to_xml(), encoding="utf-8")
    tmp.replace(path)
    return path


def route_geojson(route: SheetRoute | Sequence[SheetRoute]) -> dict[str, Any]:
    """The route (LineString) and its direction steps (Points) as a GeoJSON FeatureCollection
    (WGS-84); several routes (shifts) each with their ``shift`` number."""
    if not isinstance(route, SheetRoute):
        feats = []
        for r in route:
            for f in route_geojson(r)["features"]:
                f["properties"]["shift"] = r.shift or 1
                feats.append(f)
        return {"type": "FeatureCollection", "features": feats}
    feats = [{
        "type": "Feature",
        "geometry": shapely.geometry.mapping(route.line),
        "properties": {"grid_code": route.grid_code, "mode": route.mode, "length_m": route.length_m,
                       "duration_s": route.duration_s, "required_m": route.required_m,
                       "lower_bound_m": route.lower_bound_m, "worker": route.worker,
                       "worker_index": route.worker_index, "synthetic": route.synthetic,
                       "attribution": OSM_ATTRIBUTION},
    }]
    for s in route.steps:
        feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [s["lon"], s["lat"]]},
                      "properties": {k: s[k] for k in ("index", "action", "street", "distance_m", "text")}})
    return {"type": "FeatureCollection", "features": feats}


def write_geojson(path: str | Path, route: SheetRoute | Sequence[SheetRoute]) -> Path:
    """Write route_geojson(route) to ``path`` (UTF-8, Chinese kept readable)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(route_geojson(route), ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    return path


def route_map(route: SheetRoute, *, streets: gpd.GeoDataFrame | None = None) -> folium.Map:
    """A folium map of the route with no tile layer (works offline; save with api.static_assets).

    Layers: streets (grey), the grid (blue), the route (red) and the numbered steps. Texts (grid
    code, street names in the steps) are HTML-escaped: folium inserts tooltips as raw HTML.
    """
    from html import escape

    minx, miny, maxx, maxy = route.line.bounds
    m = folium.Map(location=[(miny + maxy) / 2, (minx + maxx) / 2], tiles=None, zoom_start=16,
                   attribution_control=True)
    m.fit_bounds([[miny, minx], [maxy, maxx]])
    if streets is not None and len(streets):
        s = streets[streets.intersects(shapely.box(minx - 0.005, miny - 0.005, maxx + 0.005, maxy + 0.005))]
        folium.GeoJson(s[["geometry"]].to_json(), name="streets",
                       style_function=lambda _f: {"color": "#999999", "weight": 2}).add_to(m)
    if route.grid is not None:
        folium.GeoJson(shapely.geometry.mapping(route.grid), name=f"grid {escape(str(route.grid_code))}",
                       style_function=lambda _f: {"color": "#1f4fcc", "weight": 2, "dashArray": "6 3",
                                                  "fillColor": "#d8e8ff", "fillOpacity": 0.3}).add_to(m)
    folium.PolyLine([(la, lo) for lo, la in route.line.coords], color="#d61a1a", weight=4, opacity=0.75,
                    tooltip=f"{escape(str(route.grid_code))} {route.length_m:.0f} m").add_to(m)
    for s in route.steps:
        folium.CircleMarker([s["lat"], s["lon"]], radius=5, color="#990000", fill=True, fill_color="#ffffff",
                            fill_opacity=1, tooltip=f"{s['index']}. {escape(str(s['text']))}").add_to(m)
    folium.map.CustomPane("attribution").add_to(m)
    m.get_root().html.add_child(folium.Element(
        f'<div style="position:fixed;bottom:4px;left:4px;z-index:9999;background:#fff;font-size:11px;padding:2px">'
        f'{OSM_ATTRIBUTION}{" · 合成数据 / synthetic data" if route.synthetic else ""}</div>'))
    return m
