"""Household registers over the API: planners and admins upload an office's Excel sheet; bad rows are
named with their Excel row numbers and nothing is stored; other roles are refused (both stores)."""
from __future__ import annotations

import io

import openpyxl
import shapely


def _xlsx(rows: list[list]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["锦江区XX社区实有人口登记表"])
    ws.merge_cells("A1:E1")
    ws.append(["标准地址", "经度", "纬度", "户数", "实有人口"])
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _buildings(client, tokens, n: int) -> list[dict]:  # noqa: ANN001
    r = client.get("/buildings", params={"bbox": "104.05,30.64,104.10,30.68", "limit": 400}, headers=tokens["pia"])
    assert r.status_code == 200, r.text
    feats = [f for f in r.json()["features"] if f["properties"]["estimate_method"] == "footprint"]
    return feats[:n]


def _rows(feats: list[dict], hh: int) -> list[list]:
    out = []
    for k, f in enumerate(feats):
        p = shapely.point_on_surface(shapely.geometry.shape(f["geometry"]))
        out.append([f"锦江区接口街{k}号", p.x, p.y, hh, None])
    return out


def test_a_planner_imports_an_office_sheet_and_bad_rows_are_named(client, tokens):  # noqa: ANN001
    feats = _buildings(client, tokens, 10)
    assert len(feats) == 10
    bad = _rows(feats, 9)
    bad[2][3] = "九"          # Excel row 5: households not a number
    bad[4][1] = bad[4][2] = None  # Excel row 7: no coordinates
    files = {"file": ("登记表.xlsx", _xlsx(bad), "application/octet-stream")}
    r = client.post("/buildings/import-households", headers=tokens["pia"], files=files)
    assert r.status_code == 422, r.text
    problems = r.json()["problems"]
    assert [p["row"] for p in problems] == [5, 7]
    assert "'九' is not a number" in problems[0]["problem"] and "no coordinates" in problems[1]["problem"]
    for f in feats:  # nothing stored
        got = client.get(f"/buildings/{f['id']}", headers=tokens["pia"]).json()["properties"]
        assert got["households"] == f["properties"]["households"] and got["household_source"] != "register"
    for user in ("dan", "wu", "vic"):  # dispatcher, worker, viewer
        r = client.post("/buildings/import-households", headers=tokens[user],
                        files={"file": ("登记表.xlsx", _xlsx(_rows(feats, 9)), "application/octet-stream")})
        assert r.status_code == 403, (user, r.text)
    r = client.post("/buildings/import-households", headers=tokens["pia"], params={"mode": "replace"},
                    files={"file": ("登记表.xlsx", _xlsx(_rows(feats, 9)), "application/octet-stream")})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["counts"]["rows"] == 10 and body["counts"]["households"] == 90
    assert body["counts"]["buildings_by_source"]["register"] >= 1
    total = 0.0
    for f in feats:
        got = client.get(f"/buildings/{f['id']}", headers=tokens["pia"]).json()["properties"]
        if got["household_source"] == "register":
            total += got["households"]
    assert total == 90  # every household of the sheet is on a building of the sheet's points
