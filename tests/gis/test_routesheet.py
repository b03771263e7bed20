"""Route sheet PDF (fonts, text, rendering, size), GPX and GeoJSON of a real Chengdu route."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import gpxpy
import numpy as np
import pyproj
import pytest
import shapely
from gridpatrol.gis.crs import wgs84_to_gcj02
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.osm import read_osm
from gridpatrol.gis.routesheet import (
    MAX_PDF_BYTES,
    SheetRoute,
    write_geojson,
    write_gpx,
    write_route_sheet,
)
from gridpatrol.gis.routing.coverage import plan_coverage
from gridpatrol.gis.routing.directions import directions, steps_json
from shapely.geometry import box

from tests.conftest import data_path, missing_dependency

GRID = box(104.065, 30.665, 104.072, 30.672)


@pytest.fixture(scope="module")
def sheet():
    data = read_osm(data_path("chengdu", "chengdu.osm"))
    plan = plan_coverage(data.roads, GRID, mode="walk", start=(104.068, 30.668))
    r = plan.routes[0]
    back = pyproj.Transformer.from_crs(plan.network.crs, 4326, always_xy=True)
    line = shapely.transform(r.geometry, lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1])))
    steps = steps_json(directions(plan.network, r.traversals))
    sr = SheetRoute("510104001001001", "walk", line, steps, r.length_m, r.duration_s, r.required_m,
                    r.lower_bound_m, grid=GRID, worker="张三", synthetic=True)
    return sr, data.roads


def _run(*cmd: str) -> str:
    if shutil.which(cmd[0]) is None:
        missing_dependency(f"{cmd[0]} (poppler-utils) is not installed")
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def test_pdf_embeds_the_cjk_font_and_carries_the_chinese_directions(sheet, tmp_path):
    sr, roads = sheet
    pdf = tmp_path / "route.pdf"
    write_route_sheet(pdf, sr, streets=roads)
    assert 10_000 < pdf.stat().st_size < MAX_PDF_BYTES
    fonts = _run("pdffonts", str(pdf)).splitlines()[2:]
    assert fonts, "no fonts in the PDF"
    for line in fonts:
        assert " yes " in line, f"font not embedded: {line}"
    assert any("WenQuanYi" in line for line in fonts)
    text = _run("pdftotext", "-layout", str(pdf), "-")
    streets_in_steps = {s["street"] for s in sr.steps if s["street"]}
    found = {s for s in streets_in_steps if s in text}
    assert len(found) == len(streets_in_steps), f"missing street names: {streets_in_steps - found}"
    for must in ("巡查路线", "510104001001001", "张三", "© OpenStreetMap 贡献者（ODbL）", "合成数据 / synthetic data",
                 "从起点出发", "回到起点", "网格边界", "巡查路线（箭头为方向）", "路线指引步骤", "起点 / 终点", "主干道"):
        assert must in text
    # The print time is the county's (Asia/Shanghai by default), named, never bare UTC.
    import re
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    stamp = re.search(r"打印于 (\d{4}-\d\d-\d\d \d\d:\d\d) \(Asia/Shanghai\)", text)
    assert stamp and "UTC" not in text
    printed = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    assert abs(datetime.now(ZoneInfo("UTC")) - printed) < timedelta(minutes=10)
    assert f"{sr.length_m / 1000:.1f} 公里" in text
    # Render like a reader would; the page is mostly white with a coloured map.
    _run("pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page"))
    png = next(tmp_path.glob("page*.png"))
    from matplotlib.image import imread

    img = imread(png)
    h, w = img.shape[:2]
    assert h > w  # A4 portrait
    red = (img[..., 0] > 0.7) & (img[..., 1] < 0.35) & (img[..., 2] < 0.35)
    assert red.sum() > 500, "the red route line is not drawn"
    # No temporary file is left behind.
    assert not list(tmp_path.glob("*.part"))


def test_english_sheet(sheet, tmp_path):
    sr, roads = sheet
    en_steps = [{**s, "text": s["text"].replace("从起点出发", "Start")} for s in sr.steps]
    sr_en = SheetRoute(**{**sr.__dict__, "steps": en_steps})
    pdf = write_route_sheet(tmp_path / "en.pdf", sr_en, streets=roads, lang="en")
    text = _run("pdftotext", str(pdf), "-")
    assert "Patrol route (walking)" in text and "Directions" in text and "patrol route (arrows: direction)" in text
    assert "© OpenStreetMap contributors, ODbL" in text and "synthetic data" in text and "合成数据" not in text
    other = write_route_sheet(tmp_path / "urumqi.pdf", sr_en, streets=roads, lang="en", timezone="Asia/Urumqi")
    assert "(Asia/Urumqi)" in _run("pdftotext", str(other), "-")


def test_bad_inputs_write_nothing(sheet, tmp_path):
    sr, roads = sheet
    with pytest.raises(InputError, match="does not exist"):
        write_route_sheet(tmp_path / "nodir" / "x.pdf", sr)
    with pytest.raises(InputError, match="language"):
        write_route_sheet(tmp_path / "x.pdf", sr, lang="de")
    empty = SheetRoute(**{**sr.__dict__, "line": shapely.LineString()})
    with pytest.raises(InputError, match="no geometry"):
        write_route_sheet(tmp_path / "y.pdf", empty)
    with pytest.raises(InputError, match="time zone"):
        write_route_sheet(tmp_path / "z.pdf", sr, timezone="Mars/Olympus")
    assert not list(tmp_path.iterdir())


def test_gpx_in_wgs84_and_gcj02(sheet, tmp_path):
    sr, _ = sheet
    g1 = gpxpy.parse(write_gpx(tmp_path / "a.gpx", sr).read_text())
    g2 = gpxpy.parse(write_gpx(tmp_path / "b.gpx", sr, crs="gcj02").read_text())
    p1 = np.array([(p.longitude, p.latitude) for p in g1.tracks[0].segments[0].points])
    p2 = np.array([(p.longitude, p.latitude) for p in g2.tracks[0].segments[0].points])
    assert np.allclose(p1, np.asarray(sr.line.coords), atol=1e-9)
    lon, lat = wgs84_to_gcj02(p1[:, 0], p1[:, 1])
    assert np.allclose(p2, np.column_stack([lon, lat]), atol=1e-9)
    # GCJ-02 is shifted by a few hundred metres in Chengdu.
    shift_m = np.hypot((p2[:, 0] - p1[:, 0]) * 95_800, (p2[:, 1] - p1[:, 1]) * 110_900)
    assert 100 < shift_m.mean() < 800
    with pytest.raises(InputError, match="wgs84 or gcj02"):
        write_gpx(tmp_path / "c.gpx", sr, crs="bd09")


def _gpx_texts(path) -> list[str]:
    """Every text a phone app shows of a GPX (gpxpy): track names and descriptions, waypoint names, descriptions,
    comments."""
    g = gpxpy.parse(path.read_text(encoding="utf-8"))
    return [t for t in [x for tr in g.tracks for x in (tr.name, tr.description)] +
            [x for w in g.waypoints for x in (w.name, w.description, w.comment)] if t]


def test_gpx_in_chinese_by_default_and_in_english(sheet, tmp_path):
    """Track names carry the shift (班次); names, descriptions and instructions are Chinese by default and English
    with lang="en", but for street names."""
    from tests.file_text import english_only, leftover_chinese

    sr, _ = sheet
    shifts = [SheetRoute(**{**sr.__dict__, "shift": k, "shifts": 2}) for k in (1, 2)]
    streets = sorted({str(s[k]) for s in sr.steps for k in ("street", "street_en") if s.get(k)})
    zh = _gpx_texts(write_gpx(tmp_path / "zh.gpx", shifts))
    assert zh[:2] == ["510104001001001 步行巡查路线 第 1/2 班", f"全程 {sr.length_m / 1000:.1f} 公里，用时约 "
                      f"{sr.duration_s / 60:.0f} 分钟；坐标 WGS-84；合成数据"]
    assert "510104001001001 步行巡查路线 第 2/2 班" in zh
    assert english_only(zh, tuple(streets)) == []
    assert not [t for t in zh if re.search(r"\b(m|min|coordinates|synthetic|start|shift|walk|Turn|Continue)\b", t)], zh
    assert _gpx_texts(write_gpx(tmp_path / "one.gpx", sr, crs="gcj02"))[:3] == [
        "510104001001001 步行巡查路线", zh[1].replace("WGS-84", "GCJ-02"), "起点"]
    en = _gpx_texts(write_gpx(tmp_path / "en.gpx", shifts, lang="en"))
    assert en[:2] == ["510104001001001 walking patrol route, shift 1/2",
                      f"Length {sr.length_m / 1000:.1f} km, about {sr.duration_s / 60:.0f} min; "
                      "coordinates WGS-84; synthetic data"]
    assert leftover_chinese("\n".join(en), streets) == [], en
    assert sum(len(t.split("\n")) for t in en) == sum(len(t.split("\n")) for t in zh)
    with pytest.raises(InputError, match="language"):
        write_gpx(tmp_path / "de.gpx", sr, lang="de")
    assert not (tmp_path / "de.gpx").exists()


def test_geojson_round_trip(sheet, tmp_path):
    sr, _ = sheet
    fc = json.loads(write_geojson(tmp_path / "r.geojson", sr).read_text(encoding="utf-8"))
    line = shapely.geometry.shape(fc["features"][0]["geometry"])
    assert line.equals_exact(sr.line, 1e-9)
    assert fc["features"][0]["properties"]["grid_code"] == "510104001001001"
    assert len(fc["features"]) == 1 + len(sr.steps)
    assert "从起点出发" in fc["features"][1]["properties"]["text"]


def test_step_marks_never_overlap_and_stay_near_their_step() -> None:
    """Crowded steps (a compound's many turns in a few metres) get marks that do not cover each
    other, inside the map, each at most 6 radii from its step (the leader line), or none."""
    import numpy as np
    from gridpatrol.gis.routesheet import place_marks

    rng = np.random.default_rng(3)
    box = (0.0, 0.0, 400.0, 300.0)
    # A pile of 40 steps within 12 points, a line of 30 steps 2 points apart, and scattered ones.
    pts = np.vstack([rng.normal((200, 150), 4, (40, 2)), np.c_[np.linspace(20, 80, 30), np.full(30, 20.0)],
                     rng.uniform((0, 0), (400, 300), (30, 2))])
    r = 4.2
    marks = place_marks(pts, r, box)
    placed = np.array([m for m in marks if m is not None])
    d = np.sqrt(((placed[:, None, :] - placed[None, :, :]) ** 2).sum(-1)) + np.eye(len(placed)) * 1e9
    assert d.min() >= 2 * r  # no two marks overlap
    assert ((placed >= r) & (placed <= np.array([400 - r, 300 - r]))).all()
    for (px, py), m in zip(pts, marks):
        if m is not None:
            assert np.hypot(m[0] - px, m[1] - py) <= 6 * r + 1e-9
    # The scattered steps almost all keep their place; the pile spreads around itself.
    assert sum(m is not None for m in marks) >= 0.8 * len(pts)
    assert sum(m == (float(x), float(y)) for m, (x, y) in zip(marks[-30:], pts[-30:])) >= 25
