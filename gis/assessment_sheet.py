"""The monthly grid worker assessment table (网格员考核表) as XLSX (openpyxl) and PDF (reportlab, CJK font embedded)."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from gridpatrol.gis.errors import InputError
from gridpatrol.gis.routesheet import CJK_FONT, CJK_FONT_PATH

TITLE = "网格员巡查考核表"
GRID_HEADERS = ["网格编码", "网格名称", "应巡街道(米)", "已巡街道(米)", "街道覆盖率", "巡查里程(米)",
                "在网格时长(分钟)", "停留次数", "完成班次", "未完成班次", "待巡班次"]
TRACK_HEADERS = ["轨迹编号", "开始时间", "结束时间", "定位点数", "里程(米)", "是否计入", "可疑原因"]
SCHEDULE_TITLE = "巡查排班（按排班日判定：当天走完班次街道的 80% 为已完成）"
SCHEDULE_HEADERS = ["日期", "星期", "排班日", "网格编码", "班次", "路线编号", "状态", "当天轨迹", "其他日期走过"]
STATUS_ZH = {"done": "已完成", "missed": "未完成", "pending": "待巡查"}
WEEKDAY_ZH = "一二三四五六日"
FLAG_ZH = {"speed": "速度超出步行", "jump": "位置跳变", "duplicate": "与早前轨迹相同", "outside_hours": "非工作时间",
           "time_order": "时间顺序错乱"}


def _grid_cells(g: dict[str, Any]) -> list[Any]:
    return [g["code"], g.get("name") or "", g["required_m"], g["covered_m"], f"{g['covered_share'] * 100:.1f}%",
            g["distance_m"], round(g["time_in_grid_s"] / 60.0, 1), g["stops"], g["shifts_done"], g["shifts_missed"],
            g.get("shifts_pending", 0)]


def _schedule_cells(r: dict[str, Any]) -> list[Any]:
    return [r["date"], "周" + WEEKDAY_ZH[date.fromisoformat(r["date"]).weekday()], f"第 {r['cycle_day']}/{r['cycle_days']} 天",
            r["grid_code"], r["shift"], r["route_id"], STATUS_ZH.get(r["status"], r["status"]),
            "、".join(str(t) for t in r["tracks"]), "、".join(r.get("walked_on", []))]


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


def _flags_text(flags: list[dict[str, Any]]) -> str:
    return "；".join(flag_text(f) for f in flags)


def _track_cells(t: dict[str, Any]) -> list[Any]:
    return [t["id"], t["start"].replace("T", " ")[:16], t["end"].replace("T", " ")[:16], t["points"], t["distance_m"],
            "是" if t["counted"] else "否", _flags_text(t["flags"])]


def _subtitle(rep: dict[str, Any]) -> str:
    hours = f"    工作时间：{rep['work_hours']}" if rep.get("work_hours") else ""
    return (f"网格员：{rep['worker']}    考核期间：{rep['from']} 至 {rep['to']}（{rep['tz']}）    "
            f"总覆盖率：{rep['covered_share'] * 100:.1f}%{hours}")


def write_xlsx(rep: dict[str, Any], path: str | Path) -> Path:
    """The assessment table of report ``rep`` (layers.patrols.patrol_report) as an XLSX workbook."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    ws = wb.active
    ws.title = "考核表"
    ws.append([TITLE])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(GRID_HEADERS))
    ws["A1"].font = Font(bold=True, size=14)
    ws["A1"].alignment = Alignment(horizontal="center")
    ws.append([_subtitle(rep)])
    ws.append(GRID_HEADERS)
    for g in rep["grids"]:
        ws.append(_grid_cells(g))
    ws.append([])
    ws.append(["班次明细"])
    ws.append(["网格编码", "班次", "路线编号", "应巡街道(米)", "最佳覆盖率", "完成次数"])
    for g in rep["grids"]:
        for s in g["shifts"]:
            ws.append([g["code"], s["shift"], s["route_id"], s["required_m"], f"{s['best_share'] * 100:.1f}%", s["done"]])
    tw = wb.create_sheet("轨迹")
    tw.append(TRACK_HEADERS)
    for t in rep["tracks"]:
        tw.append(_track_cells(t))
    sw = wb.create_sheet("排班")
    sw.append([SCHEDULE_TITLE])
    sw.append(SCHEDULE_HEADERS)
    for r in rep.get("schedule", []):
        sw.append(_schedule_cells(r))
    if not rep.get("schedule"):
        sw.append(["（无巡查排班：用 plan-routes --cycle-days 排班后，按天判定班次）"])
    for sheet in (ws, tw, sw):
        from openpyxl.utils import get_column_letter

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


def write_pdf(rep: dict[str, Any], path: str | Path) -> Path:
    """The assessment table of report ``rep`` as an A4 landscape PDF in Chinese (WenQuanYi Zen Hei embedded)."""
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

    story = [Paragraph(TITLE, title), Spacer(1, 4 * mm), Paragraph(escape(_subtitle(rep)), body), Spacer(1, 3 * mm),
             table(GRID_HEADERS, [_grid_cells(g) for g in rep["grids"]], [28, 28, 22, 22, 20, 22, 24, 16, 18, 20, 18])]
    shift_rows = [[g["code"], s["shift"], s["route_id"], s["required_m"], f"{s['best_share'] * 100:.1f}%", s["done"]]
                  for g in rep["grids"] for s in g["shifts"]]
    if shift_rows:
        story += [Spacer(1, 4 * mm), Paragraph("班次明细（一次巡查走完班次街道的 80% 即为完成）", body), Spacer(1, 2 * mm),
                  table(["网格编码", "班次", "路线编号", "应巡街道(米)", "最佳覆盖率", "完成次数"], shift_rows, [34, 16, 20, 28, 24, 20])]
    if rep.get("schedule"):
        story += [Spacer(1, 4 * mm), Paragraph(escape(SCHEDULE_TITLE), body), Spacer(1, 2 * mm),
                  table(SCHEDULE_HEADERS, [_schedule_cells(r) for r in rep["schedule"]],
                        [24, 12, 20, 30, 12, 18, 18, 40, 60])]
    story += [Spacer(1, 4 * mm), Paragraph(f"轨迹：计入 {rep['tracks_counted']} 条，可疑未计入 {rep['tracks_flagged']} 条", body),
              Spacer(1, 2 * mm), table(TRACK_HEADERS, [_track_cells(t) for t in rep["tracks"]], [18, 32, 32, 20, 22, 16, 90]),
              Spacer(1, 6 * mm), Paragraph(f"生成时间：{rep['generated_at'].replace('T', ' ')}    考核人签字：__________", body)]
    out = Path(path)
    try:
        SimpleDocTemplate(str(out), pagesize=landscape(A4), leftMargin=12 * mm, rightMargin=12 * mm, topMargin=12 * mm,
                          bottomMargin=12 * mm, title=TITLE).build(story)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}", where=str(out)) from None
    return out
