"""The real ``gridpatrol`` command for patrols (both stores): import-track and patrol-report with working
hours (--hours, GRIDPATROL_WORK_HOURS) and the patrol calendar (--cycle-start); bad values exit 2 with a
Chinese message and change nothing."""
from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime, time
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely

from tests.e2e.test_cli_import import GRIDPATROL, run, snapshot
from tests.file_text import CJK as CJK_TEXT
from tests.layers.track_seed import chengdu_osm, gpx_xml, seed_calendar, walk_network
from tests.store_cache import cached_module_store_url


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def db(request, tmp_path_factory):
    with cached_module_store_url(request, tmp_path_factory, "tracks-calendar", seed_calendar, [chengdu_osm()]) as url:
        yield url


@pytest.fixture(scope="module")
def day1_shift(db):
    """(route id, GPX text) of a walk of T02's calendar-day-1 shift on 2026-11-02 from 20:40 local."""
    from gridpatrol.gis.tracksim import simulate_walk
    from gridpatrol.layers.routes import read_routes
    from gridpatrol.layers.store import open_store

    store = open_store(db)
    try:
        net = walk_network(store)
        r = read_routes(store, "T02", mode="walk")
    finally:
        store.dispose()
    row = r[[json.loads(s)["cycle"]["day"] == 1 for s in r["stats_json"]]].iloc[0]
    tf = net.transformer()
    line = shapely.transform(row.geometry, lambda xy: np.column_stack(tf.transform(xy[:, 0], xy[:, 1])))
    t0 = datetime(2026, 11, 2, 20, 40, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    w = simulate_walk(line, sigma_m=10, every_s=5, t0=t0, seed=3)
    lon, lat = net.transformer(inverse=True).transform(w.x, w.y)
    assert datetime.fromtimestamp(w.t[-1], ZoneInfo("Asia/Shanghai")).time() > time(21, 0)
    return int(row["id"]), gpx_xml(lon, lat, w.t)


def _cli(db: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([GRIDPATROL, "--db", db, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, env, words", [
    (["patrol-report", "--worker", "wu", "--from", "2026-11-02", "--to", "2026-11-03", "--hours", "25:00-26:00"], {},
     ["--hours", "工作时间", "不存在的时刻"]),
    (["patrol-report", "--worker", "wu", "--from", "2026-11-02", "--to", "2026-11-03", "--hours", "18:00-08:00"], {},
     ["开始须早于结束"]),
    (["patrol-report", "--worker", "wu", "--from", "2026-11-02", "--to", "2026-11-03", "--cycle-start", "2026-02-30"], {},
     ["--cycle-start", "日期", "格式不对"]),
    (["patrol-report", "--worker", "wu", "--from", "2026-11-02", "--to", "2026-11-03"], {"GRIDPATROL_WORK_HOURS": "全天"},
     ["工作时间", "格式不对", "07:00-21:00"]),
    (["import-track", "walk.gpx", "--worker", "wu", "--crs", "bd09"], {}, ["--crs", "坐标系", "不支持", "wgs84", "gcj02"]),
])
def test_bad_hours_dates_and_crs_exit_2_in_chinese(db, args, env, words):
    p = _cli(db, *args, env=env)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    for w in words:
        assert w in p.stderr, (w, p.stderr)


def test_a_bad_hours_setting_refuses_the_import_and_stores_nothing(db, day1_shift, tmp_path):
    f = tmp_path / "walk.gpx"
    f.write_text(day1_shift[1], encoding="utf-8")
    before = snapshot(db)
    p = _cli(db, "import-track", str(f), "--worker", "wu", env={"GRIDPATROL_WORK_HOURS": "7-21"})
    assert p.returncode == 2 and "工作时间" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert snapshot(db) == before


def test_hours_and_the_calendar_decide_what_the_report_counts(db, day1_shift, tmp_path):
    route_id, gpx = day1_shift
    f = tmp_path / "walk.gpx"
    f.write_text(gpx, encoding="utf-8")
    out = run(db, "import-track", str(f), "--worker", "wu", "--hours", "07:00-22:00").stdout
    assert "已保存轨迹" in out and "可疑轨迹" not in out
    common = ["patrol-report", "--worker", "wu", "--from", "2026-11-02", "--to", "2026-11-03", "--cycle-start", "2026-11-02"]
    late = json.loads(run(db, *common, "--json", "--hours", "07:00-22:00").stdout)
    assert late["work_hours"] == "07:00-22:00" and late["cycle_start"] == "2026-11-02"
    status = {(r["date"], r["route_id"]): r["status"] for r in late["schedule"]}
    assert status[("2026-11-02", route_id)] == "done"
    assert {s for (d, _), s in status.items() if d == "2026-11-03"} == {"missed"}  # a day gone by
    # The default hours (here from the environment) do not count a patrol that ran past 21:00.
    strict = _cli(db, *common, "--json", env={"GRIDPATROL_WORK_HOURS": "07:00-21:00"})
    assert strict.returncode == 0, strict.stderr
    rep = json.loads(strict.stdout)
    assert rep["tracks_counted"] == 0 and rep["schedule"] and all(r["status"] == "missed" for r in rep["schedule"])
    # Printed: the calendar table, in Chinese by default and in English with --lang en.
    table = run(db, *common, "--hours", "07:00-22:00").stdout
    assert "巡查排班" in table and "已完成" in table and "未完成" in table and "done" not in table
    table = run(db, *common, "--hours", "07:00-22:00", "--lang", "en").stdout
    assert "Patrol calendar" in table and "done" in table and "missed" in table and "已完成" not in table


def test_the_printed_report_follows_lang_with_local_times_and_the_zone_named(db, day1_shift, tmp_path):
    """The terminal report (head lines, grids, calendar, tracks) is Chinese by default and English with --lang en but
    for proper names; a track's times are local (20:40 in Chengdu, not 12:40 UTC) under a header naming the zone."""
    from tests.file_text import leftover_chinese

    f = tmp_path / "walk.gpx"
    f.write_text(day1_shift[1], encoding="utf-8")
    run(db, "import-track", str(f), "--worker", "wu", "--hours", "07:00-22:00")
    common = ["patrol-report", "--worker", "wu", "--from", "2026-11-02", "--to", "2026-11-03", "--cycle-start", "2026-11-02",
              "--hours", "07:00-22:00"]
    names = ["测试网格一", "测试网格二", "测试网格三", "wu", "Asia/Shanghai"]
    zh = run(db, *common).stdout
    for needle in ("网格员：wu", "（Asia/Shanghai）", "工作时间：07:00-22:00", "街道覆盖率", "开始时间（Asia/Shanghai）",
                   "2026-11-02 20:4", "巡查排班（今天", "已完成", "是否计入"):
        assert needle in zh, (needle, zh)
    rest = zh
    for n in names:
        rest = rest.replace(n, " ")
    assert not re.findall(r"[A-Za-z]{2,}", rest), re.findall(r"[A-Za-z]{2,}", rest)
    assert "2026-11-02 12:4" not in zh
    en = run(db, *common, "--lang", "en").stdout
    for needle in ("Worker: wu", "(Asia/Shanghai)", "Covered share", "Start (Asia/Shanghai)", "2026-11-02 20:4",
                   "Patrol calendar (today", "done", "Counted"):
        assert needle in en, (needle, en)
    assert leftover_chinese(en, names) == [], en


def test_patrol_report_and_route_sheet_files_in_chinese_and_english(db, day1_shift, tmp_path):
    """--lang en turns the 考核表 (XLSX and PDF) and the route sheet into English but for proper names; Chinese by
    default, with no English-only heading; a language it does not know exits 2 and writes nothing."""
    from tests.file_text import english_only, leftover_chinese, pdf_text, xlsx_texts

    f = tmp_path / "walk.gpx"
    f.write_text(day1_shift[1], encoding="utf-8")
    run(db, "import-track", str(f), "--worker", "wu", "--hours", "07:00-22:00")  # past 21:00: flagged by default
    common = ["patrol-report", "--worker", "wu", "--from", "2026-11-02", "--to", "2026-11-03", "--cycle-start", "2026-11-02"]
    names = ["测试网格一", "测试网格二", "测试网格三"]
    for lang in ("zh", "en"):
        flag = [] if lang == "zh" else ["--lang", "en"]
        run(db, *common, "--xlsx", str(tmp_path / f"{lang}.xlsx"), "--pdf", str(tmp_path / f"{lang}.pdf"), *flag)
        run(db, "print-route", "T02", "--out", str(tmp_path / f"route-{lang}.pdf"), "--gpx", str(tmp_path / f"{lang}.gpx"),
            *flag)
    sheets, cells = xlsx_texts(tmp_path / "zh.xlsx")
    assert sheets == ["考核表", "轨迹", "排班"] and "未完成" in cells and "第 1/2 天" in cells
    assert english_only(cells) == [], english_only(cells)
    sheets, cells = xlsx_texts(tmp_path / "en.xlsx")
    assert sheets == ["Assessment", "Tracks", "Calendar"]
    for needle in ("Patrol calendar", "Weekday", "Mon", "day 1/2", "missed", "Start (Asia/Shanghai)"):
        assert needle in "\n".join(cells), needle
    assert leftover_chinese("\n".join(cells), names) == []
    zh = pdf_text(tmp_path / "zh.pdf", tmp_path)
    assert "网格员巡查考核表" in zh and "巡查排班" in zh and not re.search(r"Grid|Shift|Track|Worker|Generated", zh)
    en = pdf_text(tmp_path / "en.pdf", tmp_path)
    assert "Grid worker patrol assessment" in en and "Patrol calendar" in en and leftover_chinese(en, names) == []
    store_names = _street_names(db) + names + ["wu"]
    route_zh = pdf_text(tmp_path / "route-zh.pdf", tmp_path)
    assert "巡查路线（步行）" in route_zh and "第 1/" in route_zh and "Patrol" not in route_zh
    route_en = pdf_text(tmp_path / "route-en.pdf", tmp_path)
    assert "Patrol route (walking)" in route_en and "shift 1/" in route_en and "patrol calendar: day" in route_en
    assert leftover_chinese(route_en, store_names) == []
    # The GPX follows --lang: each track named with its shift, described, and every step's instruction.
    import gpxpy

    gpx = {lang: gpxpy.parse((tmp_path / f"{lang}.gpx").read_text(encoding="utf-8")) for lang in ("zh", "en")}
    assert [t.name for t in gpx["zh"].tracks] == ["T02 步行巡查路线 第 1/2 班", "T02 步行巡查路线 第 2/2 班"]
    assert [t.name for t in gpx["en"].tracks] == ["T02 walking patrol route, shift 1/2", "T02 walking patrol route, shift 2/2"]
    assert all(t.description.startswith("全程 ") for t in gpx["zh"].tracks)
    assert all(t.description.startswith("Length ") for t in gpx["en"].tracks)
    assert all(re.search(CJK_TEXT, w.description) for w in gpx["zh"].waypoints)
    assert leftover_chinese("\n".join(w.description for w in gpx["en"].waypoints), store_names) == []
    before = snapshot(db)
    bad = _cli(db, *common, "--lang", "de", "--xlsx", str(tmp_path / "de.xlsx"))
    assert bad.returncode == 2 and "语言" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert not (tmp_path / "de.xlsx").exists() and snapshot(db) == before


def _street_names(db: str) -> list[str]:
    from gridpatrol.layers.store import open_store

    store = open_store(db)
    try:
        roads = store.read_layer("roads", bbox=(104.06, 30.657, 104.095, 30.687))
    finally:
        store.dispose()
    return sorted({str(v) for col in ("name", "name_zh") if col in roads.columns for v in roads[col].dropna()})
