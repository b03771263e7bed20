"""Shifts judged against the patrol calendar (巡查排班), on both stores: a shift due on a day is done
when a patrol that day walked it, missed when the day passed without, pending from today on; the
calendar's day is the phone page's; the 排班 sheet and PDF section; working hours given to the report."""
from __future__ import annotations

import shutil
import subprocess
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import shapely
from gridpatrol.gis.routing.calendar import planned_on
from gridpatrol.gis.tracks import Track
from gridpatrol.gis.tracksim import simulate_walk
from gridpatrol.layers import phone_data
from gridpatrol.layers.patrols import patrol_report
from gridpatrol.layers.routes import read_routes
from gridpatrol.layers.tracks import read_tracks, save_track

from tests.layers.track_seed import CYCLE_DAYS, seed_calendar, seeded_store_fixture, walk_network

TZ = "Asia/Shanghai"
DAY1 = date(2026, 11, 2)  # --cycle-start: day 1 of the calendar


cstore = seeded_store_fixture("tracks-calendar", seed_calendar)


@pytest.fixture(scope="module")
def net(cstore):
    return walk_network(cstore)


@pytest.fixture(scope="module")
def shifts(cstore):
    """T02's shift routes: route id → (shift, calendar day)."""
    import json

    r = read_routes(cstore, "T02", mode="walk")
    out = {int(i): (int(s), json.loads(st)["cycle"]["day"]) for i, s, st in zip(r["id"], r["shift"], r["stats_json"])}
    assert {d for _, d in out.values()} == {1, 2}, out  # both days of the cycle have a shift
    return out


def _metric(net, geom):
    tf = net.transformer()
    return shapely.transform(geom, lambda xy: np.column_stack(tf.transform(xy[:, 0], xy[:, 1])))


def _walk_route(cstore, net, route_id: int, day: date, hour: float, seed: int, share: float = 1.0) -> int:
    """Store a simulated walk (σ 10 m, a fix every 5 s) of route ``route_id`` starting at ``hour`` local on ``day``."""
    r = read_routes(cstore, "T02", mode="walk")
    line = _metric(net, r[r["id"] == route_id].geometry.iloc[0])
    t0 = datetime.combine(day, time(0), ZoneInfo(TZ)).timestamp() + hour * 3600
    w = simulate_walk(line, sigma_m=10, every_s=5, share=share, t0=t0, seed=seed)
    lon, lat = net.transformer(inverse=True).transform(w.x, w.y)
    tr = Track(np.asarray(lon), np.asarray(lat), w.t, np.full(len(w.t), np.nan))
    return save_track(cstore, tr, worker="wu", source="api", raw=np.column_stack([lon, lat, w.t]).tobytes()).track_id


def _grid(rep, code: str) -> dict:
    return next(g for g in rep["grids"] if g["code"] == code)


def test_shifts_are_done_missed_or_pending_on_the_days_they_are_due(cstore, net, shifts, tmp_path):
    day_a = sorted(i for i, (_, d) in shifts.items() if d == 1)
    day_b = sorted(i for i, (_, d) in shifts.items() if d == 2)
    # 11-02 (day 1): every day-1 shift walked. 11-03 (day 2): nothing. 11-04 (day 1): a day-2 shift
    # walked on the wrong day. 11-05 (day 2) is today: not walked yet.
    done = {i: _walk_route(cstore, net, i, DAY1, 9 + 1.2 * k, seed=k) for k, i in enumerate(day_a)}
    wrong_day = _walk_route(cstore, net, day_b[0], DAY1 + timedelta(days=2), 9, seed=40)
    rep = patrol_report(cstore, "wu", DAY1, DAY1 + timedelta(days=3), tz=TZ, cycle_start=DAY1,
                        today=DAY1 + timedelta(days=3))
    got = {(r["date"], r["route_id"]): (r["status"], r["tracks"], r["walked_on"]) for r in rep["schedule"]}
    want = {}
    for i in day_a:
        want[("2026-11-02", i)] = ("done", [done[i]], [])
        want[("2026-11-04", i)] = ("missed", [], ["2026-11-02"])
    for i in day_b:
        walked = ["2026-11-04"] if i == day_b[0] else []
        want[("2026-11-03", i)] = ("missed", [], walked)
        want[("2026-11-05", i)] = ("pending", [], walked)
    assert got == want
    assert all(r["grid_code"] == "T02" and r["cycle_days"] == CYCLE_DAYS for r in rep["schedule"])
    assert [r["date"] for r in rep["schedule"]] == sorted(r["date"] for r in rep["schedule"])
    g = {x["code"]: x for x in rep["grids"]}
    assert (g["T02"]["shifts_done"], g["T02"]["shifts_missed"], g["T02"]["shifts_pending"]) == (
        len(day_a), len(day_a) + len(day_b), len(day_b))
    by_route = {s["route_id"]: s for s in g["T02"]["shifts"]}
    assert by_route[day_a[0]]["days_done"] == ["2026-11-02"] and by_route[day_a[0]]["days_missed"] == ["2026-11-04"]
    assert by_route[day_b[0]]["days_pending"] == ["2026-11-05"] and by_route[day_b[0]]["cycle_day"] == 2
    # T01 has no calendar: judged over the period as a whole, nothing pending.
    assert g["T01"]["shifts_pending"] == 0 and g["T01"]["shifts_missed"] == 1
    assert rep["cycle_start"] == "2026-11-02" and rep["today"] == "2026-11-05"
    assert wrong_day in {t["id"] for t in rep["tracks"] if t["counted"]}

    # Seen from 11-03: that day and the ones after are still to come.
    early = patrol_report(cstore, "wu", DAY1, DAY1 + timedelta(days=3), tz=TZ, cycle_start=DAY1,
                          today=DAY1 + timedelta(days=1))
    assert {(r["date"], r["status"]) for r in early["schedule"] if r["date"] >= "2026-11-03"} == {
        (d, "pending") for d in ("2026-11-03", "2026-11-04", "2026-11-05")}
    e = _grid(early, "T02")
    assert e["shifts_missed"] == 0 and e["shifts_done"] == len(day_a)

    # Another cycle start shifts the days: from 11-03 on, 11-02 is day 2 (the day-2 shifts were not walked).
    later = patrol_report(cstore, "wu", DAY1, DAY1, tz=TZ, cycle_start=DAY1 + timedelta(days=1), today=DAY1 + timedelta(days=5))
    assert {(r["route_id"], r["status"]) for r in later["schedule"]} == {(i, "missed") for i in day_b}

    # The assessment table: the 排班 sheet and the PDF's section.
    from gridpatrol.gis.assessment_sheet import write_pdf, write_xlsx
    from openpyxl import load_workbook

    wb = load_workbook(write_xlsx(rep, tmp_path / "kh.xlsx"))
    ws = wb["排班"]
    assert ws["A2"].value == "日期" and [c.value for c in ws[2]][6] == "状态"
    rows = [[c.value for c in r] for r in ws.iter_rows(min_row=3)]
    assert len(rows) == len(rep["schedule"])
    assert rows[0][:3] == ["2026-11-02", "周一", f"第 1/{CYCLE_DAYS} 天"] and rows[0][6] == "已完成"
    assert sorted(r[6] for r in rows) == sorted(["已完成"] * len(day_a) + ["未完成"] * (len(day_a) + len(day_b))
                                                + ["待巡查"] * len(day_b))
    head = [c.value for c in wb["考核表"][3]]
    assert head[-1] == "待巡班次" and [c.value for c in wb["考核表"][5]][-1] == len(day_b)
    if not shutil.which("pdftotext"):
        pytest.skip("poppler missing")
    text = subprocess.run(["pdftotext", "-layout", str(write_pdf(rep, tmp_path / "kh.pdf")), "-"], capture_output=True,
                          text=True, check=True).stdout
    for needle in ("巡查排班", "已完成", "未完成", "待巡查", "2026-11-05", "工作时间：07:00-21:00"):
        assert needle in text, needle


def test_the_report_and_the_phone_page_agree_on_the_day(cstore, shifts, monkeypatch):
    """Without --cycle-start day 1 is the day the routes were planned, for the report as for the phone page."""
    r = read_routes(cstore, "T02", mode="walk")
    planned = planned_on(pd.Timestamp(r["created_at"].iloc[0]), TZ)
    rep = patrol_report(cstore, "wu", planned, planned + timedelta(days=3), tz=TZ, today=planned)
    assert rep["cycle_start"] is None
    for k in range(4):
        day = planned + timedelta(days=k)
        phone = {s["id"] for s in phone_data.shift_rows(cstore, "wu", today=day, timezone=TZ)
                 if s["today"] and s["grid_code"] == "T02"}
        report = {x["route_id"] for x in rep["schedule"] if x["date"] == day.isoformat()}
        assert phone == report == {i for i, (_, d) in shifts.items() if d == k % CYCLE_DAYS + 1}, day


def test_working_hours_are_given_to_the_report(cstore, net, shifts):
    """A patrol from 20:45 on runs past the default hours (07:00–21:00) and counts with 07:00–22:00."""
    day = DAY1 + timedelta(days=20)
    route = min(shifts)
    tid = _walk_route(cstore, net, route, day, 20.75, seed=77)
    (row,) = [x for x in read_tracks(cstore, worker="wu") if x["id"] == tid]
    assert [f["kind"] for f in row["flags"]] == ["outside_hours"]  # stored with the default hours
    strict = patrol_report(cstore, "wu", day, day, tz=TZ, today=day)
    (t,) = strict["tracks"]
    assert not t["counted"] and t["flags"][0]["kind"] == "outside_hours" and strict["work_hours"] == "07:00-21:00"
    late = patrol_report(cstore, "wu", day, day, tz=TZ, today=day, hours=(time(7), time(22)))
    (t,) = late["tracks"]
    assert t["counted"] and t["flags"] == [] and late["work_hours"] == "07:00-22:00"
    assert _grid(late, "T02")["covered_share"] > 0.1 > _grid(strict, "T02")["covered_share"]
    # Narrower hours flag a patrol the default lets through.
    morning = _walk_route(cstore, net, route, day + timedelta(days=1), 7.5, seed=78, share=0.3)
    rep = patrol_report(cstore, "wu", day + timedelta(days=1), day + timedelta(days=1), tz=TZ,
                        hours=(time(8), time(18)))
    assert [(x["id"], x["counted"], [f["kind"] for f in x["flags"]]) for x in rep["tracks"]] == [
        (morning, False, ["outside_hours"])]
    assert "08:00–18:00" in rep["tracks"][0]["flags"][0]["detail"]
