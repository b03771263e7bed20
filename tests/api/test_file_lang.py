"""The language of generated files through the API (both stores): the 考核表 (XLSX, PDF), the route sheet (PDF) and
its GPX are Chinese by default and English on ``?lang=en`` or ``Accept-Language: en``, every title, header, status and
footnote, with only proper names (grid, street and worker names) left in Chinese; times named with their zone."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.api.test_tracks_api import auth, client  # noqa: F401 (the seeded site of the track tests, both stores)
from tests.file_text import english_only, leftover_chinese, pdf_text, xlsx_texts
from tests.layers.track_seed import GRIDS, gpx_xml

GRID_NAMES = ["测试网格一", "测试网格二", "测试网格三"]
DAY = "2026-11-24"
REPORT = f"/patrols/report?worker=wu&from={DAY}&to={DAY}"
EN_BROWSER = {"Accept-Language": "en-US,en;q=0.9"}
ZH_BROWSER = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}


@pytest.fixture(scope="module")
def tracks_on_the_day(client, auth):  # noqa: F811
    """Two walks of wu on DAY across grid T01: one in the morning, one at 23:00 (flagged: outside working hours)."""
    box = GRIDS["T01"][0]
    lat = (box[1] + box[3]) / 2
    for hour in (9, 23):
        t0 = datetime.fromisoformat(f"{DAY}T{hour:02d}:00").replace(tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
        lon = [box[0] + 1e-4 * i for i in range(40)]
        body = gpx_xml(lon, [lat] * 40, [t0 + 10 * i for i in range(40)]).encode()
        r = client.post("/tracks", content=body, headers={**auth["wu"], "Content-Type": "application/gpx+xml"})
        assert r.status_code in (200, 201), r.text
    rep = client.get(REPORT, headers=auth["wu"]).json()
    assert rep["tracks_flagged"] >= 1 and rep["tracks"], rep
    return rep


def test_the_assessment_xlsx_is_chinese_by_default_and_english_on_request(client, auth, tracks_on_the_day):  # noqa: F811
    zh = client.get(REPORT + "&format=xlsx", headers=auth["dan"])
    sheets, cells = xlsx_texts(zh.content)
    assert sheets == ["考核表", "轨迹", "排班"] and cells[0] == "网格员巡查考核表"
    assert "开始时间（Asia/Shanghai）" in cells and "非工作时间" in " ".join(cells)
    # Chinese: no English-only label (every text with a letter in it has Chinese too, or is a name, code, time or number).
    assert english_only(cells) == [], english_only(cells)

    for how in ({"q": "&lang=en"}, {"h": EN_BROWSER}):
        en = client.get(REPORT + "&format=xlsx" + how.get("q", ""), headers={**auth["dan"], **how.get("h", {})})
        assert en.status_code == 200, en.text
        sheets, cells = xlsx_texts(en.content)
        assert sheets == ["Assessment", "Tracks", "Calendar"] and cells[0] == "Grid worker patrol assessment", how
        joined = "\n".join(cells)
        for needle in ("Grid code", "Covered share", "Start (Asia/Shanghai)", "Why suspicious", "Shifts pending",
                       "Worker: wu", "Period: 24 Nov 2026 to 24 Nov 2026 (Asia/Shanghai)", "Working hours: 07:00-21:00",
                       "outside", "Generated "):
            assert needle in joined, (needle, how)
        assert leftover_chinese(joined, GRID_NAMES) == [], how
    # An explicit ?lang= wins over the browser's language.
    forced = client.get(REPORT + "&format=xlsx&lang=zh", headers={**auth["dan"], **EN_BROWSER})
    assert xlsx_texts(forced.content)[0][0] == "考核表"
    # So does the pages' remembered choice (the gp_lang cookie of ?lang= on a page).
    chosen = client.get(REPORT + "&format=xlsx", headers={**auth["dan"], **EN_BROWSER, "Cookie": "gp_lang=zh"})
    assert xlsx_texts(chosen.content)[0][0] == "考核表"
    assert client.get(REPORT + "&format=xlsx&lang=fr", headers=auth["dan"]).status_code == 422


def test_the_assessment_pdf_follows_the_language(client, auth, tracks_on_the_day, tmp_path):  # noqa: F811
    zh = pdf_text(client.get(REPORT + "&format=pdf", headers={**auth["wu"], **ZH_BROWSER}).content, tmp_path, "zh.pdf")
    flat = "".join(zh.split())
    for needle in ("网格员巡查考核表", "街道覆盖率", "测试网格一", "开始时间（Asia/Shanghai）", "考核期间：2026年11月24日至2026年11月24日",
                   "生成时间：", "考核人签字"):
        assert needle in flat, needle
    assert not re.search(r"Grid|Shift|Track|Worker|Generated|outside", zh), zh
    en = " ".join(pdf_text(client.get(REPORT + "&format=pdf&lang=en", headers=auth["wu"]).content, tmp_path,
                           "en.pdf").split())  # table cells wrap
    for needle in ("Grid worker patrol assessment", "Covered share", "Start (Asia/Shanghai)", "Tracks:", "counted",
                   "Assessor's signature", "测试网格一"):
        assert needle in en, needle
    stamp = re.search(r"Generated (\d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d) \(Asia/Shanghai\)", en)
    assert stamp, en
    made = datetime.strptime(stamp.group(1), "%d %b %Y %H:%M").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    assert abs(datetime.now(ZoneInfo("UTC")) - made) < timedelta(minutes=10)  # the county's time, not UTC
    assert leftover_chinese(en, GRID_NAMES) == [], en


def _street_names(client) -> list[str]:  # noqa: F811
    box = GRIDS["T01"][0]
    roads = client.app.state.store.read_layer("roads", bbox=(box[0] - 0.01, box[1] - 0.01, box[2] + 0.01, box[3] + 0.01))
    return sorted({str(v) for col in ("name", "name_zh") if col in roads.columns for v in roads[col].dropna()})


def test_the_route_sheet_follows_the_language(client, auth, tmp_path):  # noqa: F811
    url = "/routes/T01/sheet.pdf"
    zh = client.get(url, headers={**auth["wu"], **ZH_BROWSER})
    assert zh.status_code == 200, zh.text
    text = pdf_text(zh.content, tmp_path, "zh.pdf")
    for needle in ("巡查路线（步行）", "路线指引", "回到起点", "网格边界", "打印于", "(Asia/Shanghai)", "OpenStreetMap 贡献者"):
        assert needle in text, needle
    assert not re.search(r"Patrol|Directions|printed|contributors|grid boundary|Length|Lower bound|\d km\b", text), text
    names = _street_names(client) + GRID_NAMES + ["wu"]
    for how in ({"q": "?lang=en"}, {"h": EN_BROWSER}):
        en = client.get(url + how.get("q", ""), headers={**auth["wu"], **how.get("h", {})})
        assert en.status_code == 200, en.text
        text = pdf_text(en.content, tmp_path, "en.pdf")
        for needle in ("Patrol route (walking)", "Directions", "grid boundary", "printed", "(Asia/Shanghai)",
                       "OpenStreetMap contributors"):
            assert needle in text, (needle, how)
        assert leftover_chinese(text, names) == [], how


def test_the_route_gpx_follows_the_language(client, auth):  # noqa: F811
    """GET /routes/{code}/route.gpx: track name, description and step instructions in Chinese by default, in English
    on ?lang=en or an English browser (street names as mapped)."""
    import gpxpy

    url = "/routes/T01/route.gpx"
    zh = client.get(url, headers={**auth["wu"], **ZH_BROWSER})
    assert zh.status_code == 200, zh.text
    g = gpxpy.parse(zh.text)
    texts = [g.tracks[0].name, g.tracks[0].description] + [w.description for w in g.waypoints]
    assert texts[0].startswith("T01 步行巡查路线") and texts[1].startswith("全程 ") and "起点" in [w.name for w in g.waypoints]
    assert english_only(texts) == [], texts
    names = _street_names(client) + GRID_NAMES
    for how in ({"q": "?lang=en"}, {"h": EN_BROWSER}):
        en = client.get(url + how.get("q", ""), headers={**auth["wu"], **how.get("h", {})})
        assert en.status_code == 200, en.text
        g = gpxpy.parse(en.text)
        texts = [g.tracks[0].name, g.tracks[0].description] + [w.description for w in g.waypoints]
        assert texts[0].startswith("T01 walking patrol route") and texts[1].startswith("Length "), (texts[:2], how)
        assert leftover_chinese("\n".join(texts), names) == [], how
