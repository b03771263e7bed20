"""The monthly grid worker assessment table (网格员考核表) as XLSX (openpyxl) and PDF (reportlab, CJK font embedded),
in Chinese (default) or English."""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from gridpatrol.gis.errors import InputError
from gridpatrol.gis.routesheet import CJK_FONT, CJK_FONT_PATH

LANGS = ("zh", "en")
# key → (Chinese, English); {tz} is the county's zone, named wherever a time is shown.
TEXTS: dict[str, tuple[str, str]] = {
    "title": ("网格员巡查考核表", "Grid worker patrol assessment"),
    "sheet_main": ("考核表", "Assessment"),
    "sheet_tracks": ("轨迹", "Tracks"),
    "sheet_schedule": ("排班", "Calendar"),
    "subtitle": ("网格员：{worker}    考核期间：{d0} 至 {d1}（{tz}）    总覆盖率：{share}",
                 "Worker: {worker}    Period: {d0} to {d1} ({tz})    Streets covered overall: {share}"),
    "work_hours": ("    工作时间：{hours}（{tz}）", "    Working hours: {hours} ({tz})"),
    "shifts_title": ("班次明细", "Shifts"),
    "shifts_note": ("班次明细（一次巡查走完班次街道的 80% 即为完成）",
                    "Shifts (a shift is done when one patrol walks 80% of its streets)"),
    "schedule_title": ("巡查排班（按排班日判定：当天走完班次街道的 80% 为已完成）",
                       "Patrol calendar (judged per day: a shift is done when 80% of its streets are walked that day)"),
    "no_schedule": ("（无巡查排班：用 plan-routes --cycle-days 排班后，按天判定班次）",
                    "(no patrol calendar: lay one out with plan-routes --cycle-days to judge shifts per day)"),
    "tracks_line": ("轨迹：计入 {counted} 条，可疑未计入 {flagged} 条",
                    "Tracks: {counted} counted, {flagged} suspicious and not counted"),
    "footer": ("生成时间：{at}（{tz}）    考核人签字：__________", "Generated {at} ({tz})    Assessor's signature: __________"),
    "day_of_cycle": ("第 {day}/{days} 天", "day {day}/{days}"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "grids_title": ("各网格巡查情况", "Grids"),
    "schedule_today": ("巡查排班（今天 {today}，{tz}）", "Patrol calendar (today {today}, {tz})"),
    "wrote": ("已写入 {path}", "wrote {path}"),
    "list_sep": ("、", ", "),
    "flag_sep": ("；", "; "),
}
GRID_HEADERS = (["网格编码", "网格名称", "应巡街道(米)", "已巡街道(米)", "街道覆盖率", "巡查里程(米)",
                 "在网格时长(分钟)", "停留次数", "完成班次", "未完成班次", "待巡班次"],
                ["Grid code", "Grid name", "Streets to cover (m)", "Streets covered (m)", "Covered share",
                 "Distance walked (m)", "Time in grid (min)", "Stops", "Shifts done", "Shifts missed", "Shifts pending"])
SHIFT_HEADERS = (["网格编码", "班次", "路线编号", "应巡街道(米)", "最佳覆盖率", "完成次数"],
                 ["Grid code", "Shift", "Route id", "Streets to cover (m)", "Best covered share", "Times done"])
TRACK_HEADERS = (["轨迹编号", "开始时间（{tz}）", "结束时间（{tz}）", "定位点数", "里程(米)", "是否计入", "可疑原因"],
                 ["Track id", "Start ({tz})", "End ({tz})", "Fixes", "Distance (m)", "Counted", "Why suspicious"])
SCHEDULE_HEADERS = (["日期", "星期", "排班日", "网格编码", "班次", "路线编号", "状态", "当天轨迹", "其他日期走过"],
                    ["Date", "Weekday", "Day of cycle", "Grid code", "Shift", "Route id", "Status", "Tracks that day",
                     "Walked on other days"])
STATUS = {"done": ("已完成", "done"), "missed": ("未完成", "missed"), "pending": ("待巡查", "pending")}
WEEKDAYS = (["周一", "周二", "周三", "周四", "周五", "周六", "周日"], ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
FLAG_ZH = {"speed": "速度超出步行", "jump": "位置跳变", "duplicate": "与早前轨迹相同", "outside_hours": "非工作时间",
           "time_order": "时间顺序错乱"}


def check_lang(lang: str) -> str:
    """``lang`` if it is ``zh`` or ``en``, else InputError."""
    if lang not in LANGS:
        raise InputError(f"语言 {str(lang)[:20]!r} 不支持，应为 zh 或 en (unknown language {str(lang)[:20]!r}: use zh or en)",
                         where="lang")
    return lang


def _t(lang: str, key: str, **values: Any) -> str:
    text = TEXTS[key][lang == "en"]
    return text.format(**values) if values else text


def _pick(pair: tuple[list[str], list[str]], lang: str, tz: str = "") -> list[str]:
    return [h.format(tz=tz) for h in pair[lang == "en"]]


def _grid_cells(g: dict[str, Any]) -> list[Any]:
    return [g["code"], g.get("name") or "", g["required_m"], g["covered_m"], f"{g['covered_share'] * 100:.1f}%",
            g["distance_m"], round(g["time_in_grid_s"] / 60.0, 1), g["stops"], g["shifts_done"], g["shifts_missed"],
            g.get("shifts_pending", 0)]


def _shift_rows(rep: dict[str, Any]) -> list[list[Any]]:
    return [[g["code"], s["shift"], s["route_id"], s["required_m"], f"{s['best_share'] * 100:.1f}%", s["done"]]
            for g in rep["grids"] for s in g["shifts"]]


def _schedule_cells(r: dict[str, Any], lang: str) -> list[Any]:
    sep = _t(lang, "list_sep")
    status = STATUS.get(r["status"])
    return [r["date"], WEEKDAYS[lang == "en"][date.fromisoformat(r["date"]).weekday()],
            _t(lang, "day_of_cycle", day=r["cycle_day"], days=r["cycle_days"]), r["grid_code"], r["shift"], r["route_id"],
            status[lang == "en"] if status else r["status"], sep.join(str(t) for t in r["tracks"]),
            sep.join(r.get("walked_on", []))]


def flag_text(f: dict[str, Any], lang: str = "zh") -> str:
    """A suspicious-track flag as the reader's sentence: Chinese with its numbers, or ``lang="en"`` the
    flag's English ``detail``."""
    if lang == "en":
        return str(f.get("detail") or f["kind"])
    kind, name = f["kind"], FLAG_ZH.get(f["kind"], str(f["kind"]))
    if kind == "jump" and "count" in f:
        return f"{name}：{f['count']} 次，最大 {float(f['max_m']):.0f} 米"
    if kind == "speed" and "max_mps" in f:
        return f"{name}：一分钟内最快约 {float(f['max_mps']) * 3.6:.0f} 公里/时"
    if kind == "outside_hours" and "hours" in f:
        return f"{name}：{float(f.get('share', 0)) * 100:.0f}% 的定位点在工作时间 {f['hours']} 之外"
    if kind == "duplicate" and "of" in f:
        return f"{name}：与轨迹 {f['of']} 的定位点相同"
    if kind == "time_order" and "count" in f:
        return f"{name}：{f['count']} 处时间倒退"
    return name


def long_date(d: date | str, lang: str) -> str:
    """A day as the reader writes it: 2026年11月2日 / 2 Nov 2026."""
    d = date.fromisoformat(str(d)[:10])
    return f"{d.year}年{d.month}月{d.day}日" if lang == "zh" else f"{d.day} {d:%b} {d.year}"


def _flags_text(flags: list[dict[str, Any]], lang: str) -> str:
    return _t(lang, "flag_sep").join(flag_text(f, lang) for f in flags)


def _track_cells(t: dict[str, Any], lang: str) -> list[Any]:
    return [t["id"], t["start"].replace("T", " ")[:16], t["end"].replace("T", " ")[:16], t["points"], t["distance_m"],
            _t(lang, "yes" if t["counted"] else "no"), _flags_text(t["flags"], lang)]


def _subtitle(rep: dict[str, Any], lang: str) -> str:
    hours = _t(lang, "work_hours", hours=rep["work_hours"], tz=rep["tz"]) if rep.get("work_hours") else ""
    return _t(lang, "subtitle", worker=rep["worker"], d0=long_date(rep["from"], lang), d1=long_date(rep["to"], lang),
              tz=rep["tz"], share=f"{rep['covered_share'] * 100:.1f}%") + hours


def _footer(rep: dict[str, Any], lang: str) -> str:
    # patrol_report's local time in the county's zone; a report made elsewhere without one: now, in that zone.
    at = datetime.fromisoformat(str(rep["generated_at"])) if rep.get("generated_at") else datetime.now(ZoneInfo(rep["tz"]))
    return _t(lang, "footer", at=f"{long_date(at.date(), lang)} {at:%H:%M}", tz=rep["tz"])


def report_text(rep: dict[str, Any], lang: str = "zh") -> tuple[list[str], list[tuple[str, list[str], list[list[Any]]]]]:
    """The report ``rep`` as the terminal prints it in ``lang`` (zh or en): (head lines, [(title, headers, rows)])
    for the grids, the patrol calendar (when there is one) and the tracks; times local in the report's zone,
    which is named in the head line and the headers."""
    check_lang(lang)
    tz = rep["tz"]
    lines = [_subtitle(rep, lang), _t(lang, "tracks_line", counted=rep["tracks_counted"], flagged=rep["tracks_flagged"])]
    tables = [(_t(lang, "grids_title"), _pick(GRID_HEADERS, lang), [_grid_cells(g) for g in rep["grids"]])]
    if rep.get("schedule"):
        tables.append((_t(lang, "schedule_today", today=rep["today"], tz=tz), _pick(SCHEDULE_HEADERS, lang),
                       [_schedule_cells(r, lang) for r in rep["schedule"]]))
    tables.append((_t(lang, "sheet_tracks"), _pick(TRACK_HEADERS, lang, tz), [_track_cells(t, lang) for t in rep["tracks"]]))
    return lines, tables


def write_xlsx(rep: dict[str, Any], path: str | Path, lang: str = "zh") -> Path:
    """The assessment table of report ``rep`` (layers.patrols.patrol_report) as an XLSX workbook in ``lang``
    (zh or en): sheets, headers, statuses and reasons; times local in the report's zone, which is named."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    check_lang(lang)
    tz = rep["tz"]
    grid_headers = _pick(GRID_HEADERS, lang)
    wb = Workbook()
    ws = wb.active
    ws.title = _t(lang, "sheet_main")
    ws.append([_t(lang, "title")])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(grid_headers))
    ws["A1"].font = Font(bold=True, size=14)
    ws["A1"].alignment = Alignment(horizontal="center")
    ws.append([_subtitle(rep, lang)])
    ws.append(grid_headers)
    for g in rep["grids"]:
        ws.append(_grid_cells(g))
    ws.append([])
    ws.append([_t(lang, "shifts_title")])
    ws.append(_pick(SHIFT_HEADERS, lang))
    for row in _shift_rows(rep):
        ws.append(row)
    ws.append([])
    ws.append([_footer(rep, lang)])
    tw = wb.create_sheet(_t(lang, "sheet_tracks"))
    tw.append(_pick(TRACK_HEADERS, lang, tz))
    for t in rep["tracks"]:
        tw.append(_track_cells(t, lang))
    sw = wb.create_sheet(_t(lang, "sheet_schedule"))
    sw.append([_t(lang, "schedule_title")])
    sw.append(_pick(SCHEDULE_HEADERS, lang))
    for r in rep.get("schedule", []):
        sw.append(_schedule_cells(r, lang))
    if not rep.get("schedule"):
        sw.append([_t(lang, "no_schedule")])
    for sheet in (ws, tw, sw):
        for i in range(1, sheet.max_column + 1):
            sheet.column_dimensions[get_column_letter(i)].width = 16
    for sheet in wb.worksheets:  # no formulas are written: a name such as "=HYPERLINK(…)" stays text
        for row in sheet.iter_rows():
            for cell in row:
                if cell.data_type == "f":
                    cell.data_type = "s"
    out = Path(path)
    try:
        wb.save(out)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}", where=str(out)) from None
    return out


def write_pdf(rep: dict[str, Any], path: str | Path, lang: str = "zh") -> Path:
    """The assessment table of report ``rep`` as an A4 landscape PDF in ``lang`` (zh or en; WenQuanYi Zen Hei
    embedded, so the Chinese names in an English table print too)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import (
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    check_lang(lang)
    if CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        if not CJK_FONT_PATH.exists():
            raise InputError(f"CJK font {CJK_FONT_PATH} is missing", hint="install fonts-wqy-zenhei (apt)")
        pdfmetrics.registerFont(TTFont(CJK_FONT, str(CJK_FONT_PATH), subfontIndex=0))
    title = ParagraphStyle("t", fontName=CJK_FONT, fontSize=16, leading=20, alignment=1)
    body = ParagraphStyle("b", fontName=CJK_FONT, fontSize=9, leading=12)
    cell = ParagraphStyle("c", fontName=CJK_FONT, fontSize=8, leading=10)

    def table(headers: list[str], rows: list[list[Any]], widths: list[float]) -> Table:
        # Paragraph reads markup: every value (grid names, worker names) is escaped.
        data = [[Paragraph(escape(str(h)), cell) for h in headers]] + [[Paragraph(escape(str(v)), cell) for v in r] for r in rows]
        tb = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
        tb.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef7")),
                                ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
        return tb

    def para(text: str) -> Paragraph:
        return Paragraph(escape(text), body)

    story = [Paragraph(escape(_t(lang, "title")), title), Spacer(1, 4 * mm), para(_subtitle(rep, lang)), Spacer(1, 3 * mm),
             table(_pick(GRID_HEADERS, lang), [_grid_cells(g) for g in rep["grids"]],
                   [28, 28, 22, 22, 20, 22, 24, 16, 18, 20, 18])]
    shift_rows = _shift_rows(rep)
    if shift_rows:
        story += [Spacer(1, 4 * mm), para(_t(lang, "shifts_note")), Spacer(1, 2 * mm),
                  table(_pick(SHIFT_HEADERS, lang), shift_rows, [34, 16, 20, 28, 24, 20])]
    if rep.get("schedule"):
        story += [Spacer(1, 4 * mm), para(_t(lang, "schedule_title")), Spacer(1, 2 * mm),
                  table(_pick(SCHEDULE_HEADERS, lang), [_schedule_cells(r, lang) for r in rep["schedule"]],
                        [24, 12, 20, 30, 12, 18, 18, 40, 60])]
    story += [Spacer(1, 4 * mm), para(_t(lang, "tracks_line", counted=rep["tracks_counted"], flagged=rep["tracks_flagged"])),
              Spacer(1, 2 * mm), table(_pick(TRACK_HEADERS, lang, rep["tz"]), [_track_cells(t, lang) for t in rep["tracks"]],
                                       [18, 32, 32, 20, 22, 16, 90]),
              Spacer(1, 6 * mm), para(_footer(rep, lang))]
    out = Path(path)
    try:
        SimpleDocTemplate(str(out), pagesize=landscape(A4), leftMargin=12 * mm, rightMargin=12 * mm, topMargin=12 * mm,
                          bottomMargin=12 * mm, title=_t(lang, "title")).build(story)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}", where=str(out)) from None
    return out
