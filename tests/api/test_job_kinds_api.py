"""The job kinds that wrap imports (an uploaded file), link-incidents and patrol reports, through the API on
both stores: queued, progress seen, result fetched; bad parameters and files refused before queueing (4xx,
nothing queued); a failing import leaves every row as it was; roles as the routes they wrap. Real data:
Chengdu's 锦江区 (streets, buildings), Nanjing's 玄武区 extract for import-osm."""
from __future__ import annotations

import csv
import io
import json
import re
import threading

import openpyxl
import pytest
import shapely
from gridpatrol.layers import job_queue
from sqlalchemy import text

from tests.api.login import bearer
from tests.cached_stores import JOB_PASSWORD, JOB_USERS
from tests.conftest import data_path

WORKER = "wu"

SERVER_WORKER = False  # tests/api/conftest.py: no worker thread in the server; tests drain the queue themselves


@pytest.fixture(scope="module")
def loaded_store_url(jinjiang_store_url):  # noqa: ANN001, ANN201
    return jinjiang_store_url


@pytest.fixture(scope="module")
def auth(client, app) -> dict[str, dict[str, str]]:  # noqa: ANN001
    from gridpatrol.layers import users

    users.create_user(app.state.store, WORKER, "worker", JOB_PASSWORD)
    return {name: bearer(client, name, JOB_PASSWORD) for name in [*JOB_USERS, WORKER]}


def _counts(store) -> tuple[int, int]:  # noqa: ANN001
    with store.engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM jobs")).scalar()
        q = n if store.is_gpkg else c.execute(text("SELECT count(*) FROM procrastinate_jobs")).scalar()
        f = c.execute(text("SELECT count(*) FROM job_files")).scalar()
    return int(n), int(q), int(f)


def _rows(store, table: str) -> list[tuple]:  # noqa: ANN001
    """Every row of ``table`` as stored (geometry as its raw bytes), in id order."""
    with store.engine.connect() as c:
        return [tuple(r) for r in c.execute(text(f"SELECT * FROM {table} ORDER BY id"))]


def _run(client, store, job: dict, h: dict) -> tuple[dict, list[dict]]:  # noqa: ANN001
    """Run the queue (as `gridpatrol worker --until-empty`) while polling the job as a page does."""
    seen: list[dict] = []
    worker = threading.Thread(target=job_queue.run_until_empty, args=(store,), kwargs={"heartbeat_s": 0.5})
    worker.start()
    while worker.is_alive():
        seen.append(client.get(f"/jobs/{job['id']}", headers=h).json())
        worker.join(0.1)
    done = client.get(f"/jobs/{job['id']}", headers=h).json()
    progress = [s["progress"]["done"] for s in seen]
    assert progress == sorted(progress)  # never goes back
    return done, seen


def _post(client, h: dict, kind: str, params: dict | None = None, file: tuple | None = None):  # noqa: ANN001, ANN202
    if file is None:
        return client.post("/jobs", headers=h, json={"kind": kind, "params": params or {}})
    return client.post("/jobs", headers=h, data={"kind": kind, "params": json.dumps(params or {})},
                       files={"file": file})


def _area(client, h: dict):  # noqa: ANN001, ANN202
    feats = client.get("/areas", headers=h).json()["features"]
    return shapely.union_all([shapely.geometry.shape(f["geometry"]) for f in feats])


def _building_points(client, h: dict, n: int) -> list[tuple[int, shapely.Point]]:  # noqa: ANN001
    area = _area(client, h)
    r = client.get("/buildings", params={"bbox": "104.05,30.64,104.10,30.68", "limit": 1000}, headers=h)
    out = []
    for f in r.json()["features"]:
        p = shapely.point_on_surface(shapely.geometry.shape(f["geometry"]))
        if f["properties"]["estimate_method"] == "footprint" and area.contains(p):
            out.append((f["id"], p))
    assert len(out) >= n
    return out[:n]


def _cameras_csv(points: list[shapely.Point], *, names: str = "机位", bad_row: int | None = None) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["code", "name", "project", "lon", "lat", "direction_deg", "fov_deg", "range_m", "secrecy_level"])
    for k, p in enumerate(points):
        lon = "" if k == bad_row else f"{p.x:.7f}"
        w.writerow([f"5101040000132{k:07d}", f"{names}{k}", "sharp_eyes", lon, f"{p.y:.7f}", 90, 360, 80, k % 2])
    return buf.getvalue().encode("utf-8")


def _register(points: list[shapely.Point], households: list) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["标准地址", "经度", "纬度", "户数"])
    for k, (p, hh) in enumerate(zip(points, households)):
        ws.append([f"锦江区任务街{k}号", p.x, p.y, hh])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_bad_parameters_and_files_refused_before_queueing(client, auth, app) -> None:  # noqa: ANN001
    store = app.state.store
    before = _counts(store)
    csv_ok = ("cams.csv", b"code,name,project,lon,lat\n", "text/csv")
    bad = [
        ("ada", "import-cameras", {"crs": "mars"}, csv_ok),                                 # unknown CRS
        ("ada", "import-cameras", {"projekt": "x"}, csv_ok),                                # misspelt parameter
        ("ada", "import-cameras", {}, None),                                                # no file
        ("ada", "import-cameras", {}, ("cams.exe", b"MZ", "application/octet-stream")),     # not a camera list
        ("ada", "import-cameras", {}, ("cams.csv", b"  \n", "text/csv")),                   # empty
        ("ada", "import-osm", {}, ("../../etc/passwd", b"root:x:0:0", "text/plain")),        # a path is a name only
        ("ada", "import-osm", {"m2_per_household": 0}, ("x.osm", b"<osm/>", "text/xml")),
        ("pia", "import-households", {"mode": "merge"}, ("r.xlsx", b"x", "application/octet-stream")),
        ("pia", "import-households", {"tolerance_m": 9999}, ("r.xlsx", b"x", "application/octet-stream")),
        ("ada", "link-incidents", {"radius_m": -5}, None),
        ("ada", "link-incidents", {}, csv_ok),                                              # takes no file
        ("ada", "patrol-report", {"from": "2026-11-09", "to": "2026-11-02", "worker": WORKER}, None),
        ("ada", "patrol-report", {"from": "2026-11-02", "to": "2026-11-31", "worker": WORKER}, None),
        ("ada", "patrol-report", {"from": "2026-11-02", "to": "2026-11-09", "worker": WORKER, "hours": "25:00-26:00"},
         None),
        ("dan", "patrol-report", {"from": "2026-11-02", "to": "2026-11-09"}, None),         # whose?
        ("ada", "patrol-report", {"from": "2026-11-02", "to": "2026-11-09", "worker": WORKER, "tz": "Mars/Olympus"},
         None),
    ]
    for user, kind, params, file in bad:
        r = _post(client, auth[user], kind, params, file)
        assert r.status_code == 422, (kind, params, r.text)
        detail = r.json()["detail"]  # Chinese first, then English
        assert re.search("[\u4e00-\u9fff]", detail) and re.search("[A-Za-z]{4,}", detail), r.text
    r = client.post("/jobs", headers=auth["ada"], data={"kind": "import-cameras", "params": "{not json"},
                    files={"file": csv_ok})
    assert r.status_code == 422 and "params" in r.json()["detail"]
    assert _counts(store) == before  # no job row, no queue entry, no stored file


def test_roles_as_the_routes(client, auth, app) -> None:  # noqa: ANN001
    store = app.state.store
    before = _counts(store)
    pts = [p for _i, p in _building_points(client, auth["ada"], 2)]
    for user, kind, params, file in [
        ("pia", "import-cameras", {}, ("c.csv", _cameras_csv(pts), "text/csv")),  # cameras: admins only
        ("dan", "import-osm", {}, ("x.osm", b"<osm/>", "text/xml")),              # planners and admins
        ("dan", "import-households", {}, ("r.xlsx", _register(pts, [1, 2]), "application/octet-stream")),
        ("pia", "link-incidents", {}, None),                                      # cameras: dispatchers, admins
        ("vic", "patrol-report", {"from": "2026-11-02", "to": "2026-11-09", "worker": WORKER}, None),
        (WORKER, "patrol-report", {"from": "2026-11-02", "to": "2026-11-09", "worker": "someone-else"}, None),
    ]:
        r = _post(client, auth[user], kind, params, file)
        assert r.status_code == 403, (user, kind, r.text)
    assert _post(client, {}, "link-incidents").status_code == 401
    assert _counts(store) == before


def test_import_cameras_job_then_a_failing_one_changes_nothing(client, auth, app) -> None:  # noqa: ANN001
    store = app.state.store
    pts = [p for _i, p in _building_points(client, auth["ada"], 12)]
    r = _post(client, auth["ada"], "import-cameras", {"project": "sharp_eyes"}, ("天网 点位.csv", _cameras_csv(pts), "text/csv"))
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] == "queued" and job["input"]["name"] == "天网_点位.csv"
    assert job["input"]["size"] == len(_cameras_csv(pts))
    done, _seen = _run(client, store, job, auth["ada"])
    assert done["state"] == "done", done
    assert done["progress"]["done"] == done["progress"]["total"] == 3 and done["progress"]["step"]
    assert done["result"]["counts"]["cameras"] == 12 and done["result"]["import"] == "cameras"
    cam = client.get("/cameras/51010400001320000003", headers=auth["ada"]).json()
    assert cam["properties"]["name"] == "机位3"
    assert cam["geometry"]["coordinates"] == pytest.approx([pts[3].x, pts[3].y], abs=1e-6)

    # The same cameras renamed, with one row without a longitude: refused, not one row changed.
    before = _rows(store, "cameras"), _rows(store, "imports")
    r = _post(client, auth["ada"], "import-cameras", {}, ("cams.csv", _cameras_csv(pts, names="改名", bad_row=7), "text/csv"))
    assert r.status_code == 202, r.text
    failed, _ = _run(client, store, r.json(), auth["ada"])
    assert failed["state"] == "failed" and failed["result"] is None
    assert "row 8" in failed["error"] and "upload cams.csv" in failed["error"], failed["error"]
    assert "gridpatrol-job-" not in failed["error"]  # the temporary copy's path is not shown
    assert (_rows(store, "cameras"), _rows(store, "imports")) == before


def test_link_incidents_job_leaves_out_secret_cameras(client, auth, app) -> None:  # noqa: ANN001
    store = app.state.store
    def listed() -> list:
        return client.get("/cameras", params={"bbox": "103,30,105,31", "limit": 100}, headers=auth["ada"]).json()["features"]

    cams = listed()
    if not cams:  # alone, or before the camera import test (any order): import the same cameras here
        pts = [p for _i, p in _building_points(client, auth["ada"], 12)]
        r = _post(client, auth["ada"], "import-cameras", {"project": "sharp_eyes"}, ("c.csv", _cameras_csv(pts), "text/csv"))
        assert r.status_code == 202, r.text
        assert _run(client, store, r.json(), auth["ada"])[0]["state"] == "done"
        cams = listed()
    assert cams
    for f in cams[:4]:
        lon, lat = f["geometry"]["coordinates"]
        r = client.post("/incidents", headers=auth["dan"], json={"lon": lon + 0.0001, "lat": lat, "category": "治安"})
        assert r.status_code == 201, r.text
    seen = {}
    for user in ("ada", "dan"):
        r = _post(client, auth[user], "link-incidents", {"radius_m": 60})
        assert r.status_code == 202, r.text
        done, _ = _run(client, store, r.json(), auth[user])
        assert done["state"] == "done", done
        assert done["progress"]["done"] == done["progress"]["total"]
        seen[user] = done["result"]
    secret = {f["properties"]["code"] for f in cams if (f["properties"].get("secrecy_level") or 0) > 0}
    ada_codes = {p["camera_code"] for p in seen["ada"]["listed"]}
    dan_codes = {p["camera_code"] for p in seen["dan"]["listed"]}
    assert seen["ada"]["pairs"] == len(seen["ada"]["listed"]) > seen["dan"]["pairs"] > 0
    assert ada_codes & secret and not dan_codes & secret  # a dispatcher at level 0 sees no level-1 camera


def test_import_households_job_then_a_failing_one_changes_nothing(client, auth, app) -> None:  # noqa: ANN001
    store = app.state.store
    found = _building_points(client, auth["pia"], 8)
    pts = [p for _i, p in found]
    bad = _register(pts, [5, 5, 5, "九", 5, 5, 5, 5])
    before = _rows(store, "buildings"), _rows(store, "imports")
    r = _post(client, auth["pia"], "import-households", {}, ("登记表.xlsx", bad, "application/octet-stream"))
    assert r.status_code == 202, r.text
    failed, _ = _run(client, store, r.json(), auth["pia"])
    assert failed["state"] == "failed" and "row 5" in failed["error"] and "'九' is not a number" in failed["error"]
    assert (_rows(store, "buildings"), _rows(store, "imports")) == before

    r = _post(client, auth["pia"], "import-households", {"mode": "replace"},
              ("登记表.xlsx", _register(pts, [7] * 8), "application/octet-stream"))
    done, _ = _run(client, store, r.json(), auth["pia"])
    assert done["state"] == "done", done
    assert done["progress"]["done"] == done["progress"]["total"] == 4
    assert done["result"]["counts"]["rows"] == 8 and done["result"]["counts"]["households"] == 56
    total = sum(client.get(f"/buildings/{i}", headers=auth["pia"]).json()["properties"]["households"]
                for i, _p in found
                if client.get(f"/buildings/{i}", headers=auth["pia"]).json()["properties"]["household_source"] == "register")
    assert total == 56


def _report(rep: dict) -> dict:
    return {k: v for k, v in rep.items() if k != "generated_at"}


def test_patrol_report_job_and_its_xlsx_for_the_owner_only(client, auth, app) -> None:  # noqa: ANN001
    from gridpatrol.layers import grids as gl

    store = app.state.store
    gl.draw_grids(store, gl.PlanParams(seed=1))
    code = gl.read_grids(store)["code"].iloc[0]
    gl.assign_workers(store, {str(code): WORKER})
    params = {"from": "2026-11-02", "to": "2026-11-08", "xlsx": True}
    r = _post(client, auth[WORKER], "patrol-report", params)  # a worker: their own report
    assert r.status_code == 202, r.text
    assert r.json()["params"]["worker"] == WORKER and r.json()["params"]["tz"] == "Asia/Shanghai"
    done, _ = _run(client, store, r.json(), auth[WORKER])
    assert done["state"] == "done", done
    assert done["progress"]["done"] == done["progress"]["total"] == 3
    direct = client.get("/patrols/report", params={"from": "2026-11-02", "to": "2026-11-08"}, headers=auth[WORKER])
    assert direct.status_code == 200, direct.text
    assert _report(done["result"]["report"]) == _report(direct.json())  # the same report as the route
    assert [g["code"] for g in done["result"]["report"]["grids"]] == [str(code)]
    assert done["output"]["href"] == f"/jobs/{done['id']}/output"
    x = client.get(done["output"]["href"], headers=auth[WORKER])
    assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = openpyxl.load_workbook(io.BytesIO(x.content)).active
    assert str(code) in {str(c.value) for row in sheet.iter_rows() for c in row}
    assert sheet.title == "考核表" and sheet["A1"].value == "网格员巡查考核表"  # Chinese unless asked
    en = _post(client, auth[WORKER], "patrol-report", {**params, "lang": "en"})
    assert en.status_code == 202 and en.json()["params"]["lang"] == "en", en.text
    done_en, _ = _run(client, store, en.json(), auth[WORKER])
    sheet_en = openpyxl.load_workbook(io.BytesIO(client.get(done_en["output"]["href"], headers=auth[WORKER]).content)).active
    assert sheet_en.title == "Assessment" and sheet_en["A1"].value == "Grid worker patrol assessment"
    assert _post(client, auth[WORKER], "patrol-report", {**params, "lang": "fr"}).status_code == 422
    for other in ("ada", "dan", "pia"):  # the file is the owner's (admins see the job, not the file)
        assert client.get(done["output"]["href"], headers=auth[other]).status_code == 404
    # A dispatcher names the worker; the report is the same.
    r = _post(client, auth["dan"], "patrol-report", {"from": "2026-11-02", "to": "2026-11-08", "worker": WORKER})
    done2, _ = _run(client, store, r.json(), auth["dan"])
    assert done2["state"] == "done" and _report(done2["result"]["report"]) == _report(direct.json()) and done2["output"] is None


def test_import_osm_job_and_a_broken_extract_changes_nothing(client, auth, app) -> None:  # noqa: ANN001
    store = app.state.store
    osm = data_path("nanjing", "xuanwu.osm").read_bytes()
    before = _rows(store, "roads"), _rows(store, "buildings"), _rows(store, "imports")
    broken = osm[: len(osm) // 2]  # cut mid-file, as an interrupted download
    r = _post(client, auth["pia"], "import-osm", {}, ("xuanwu.osm", broken, "application/xml"))
    assert r.status_code == 202, r.text
    failed, _ = _run(client, store, r.json(), auth["pia"])
    assert failed["state"] == "failed" and "upload xuanwu.osm" in failed["error"], failed
    assert (_rows(store, "roads"), _rows(store, "buildings"), _rows(store, "imports")) == before

    r = _post(client, auth["pia"], "import-osm", {"default_levels": 7}, ("xuanwu.osm", osm, "application/xml"))
    done, seen = _run(client, store, r.json(), auth["pia"])
    assert done["state"] == "done", done
    assert done["progress"]["done"] == done["progress"]["total"] == 4
    assert any(s["state"] == "running" and s["progress"]["step"] for s in seen)  # progress seen while it ran
    segments = done["result"]["counts"]["road_segments"]
    assert segments > 500 and done["result"]["counts"]["buildings"] > 100
    with store.engine.connect() as c:  # Nanjing's streets beside Chengdu's: every segment added
        assert c.execute(text("SELECT count(*) FROM roads")).scalar() == len(before[0]) + segments
