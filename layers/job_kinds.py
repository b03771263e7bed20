"""More kinds of jobs: file imports (import-osm, import-households, import-cameras), link-incidents and
patrol-report. Their parameters are those of the routes and commands they wrap; see docs/jobs.md.

An import job reads the file uploaded with it (stored in ``job_files`` when it is queued, so a worker
on any machine reads it from the store; never a path on a server's disk) and writes in the import's one
transaction, which also ends the job (``record_write``): a refused or killed import leaves the store
as it was. link-incidents and patrol-report only read; a report's XLSX is kept for the job's owner.
"""
from __future__ import annotations

import json
import tempfile
from datetime import date
from pathlib import Path
from typing import Any, Literal

from gridpatrol.gis.errors import InputError, PermissionDenied
from gridpatrol.layers.jobs import Kind, Progress, job_context, save_output
from gridpatrol.layers.register_files import SUFFIXES as REGISTER_SUFFIXES
from gridpatrol.layers.store import Store
from gridpatrol.layers.time_zones import ZoneName
from gridpatrol.layers.users import Principal
from pydantic import BaseModel, ConfigDict, Field, model_validator

# The coordinate systems of the import routes (api/routes/_imports.py, api/routes/buildings.py).
FILE_CRS = r"^(wgs84|gcj02|bd09|WGS84|GCJ02|BD09|EPSG:\d{4,6})$"
REGISTER_CRS = r"^(wgs84|gcj02|bd09|cgcs2000|cgcs2000-gk3-(cm)?\d{2,3}|WGS84|GCJ02|BD09|CGCS2000|EPSG:\d{4,6})$"
ENCODING = r"^[A-Za-z0-9_\-]+$"
OSM_SUFFIXES = (".osm", ".osm.bz2", ".osm.pbf", ".pbf")
CAMERA_SUFFIXES = (".csv", ".txt", ".tsv", ".json", ".geojson", ".gpkg")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ImportOsmParams(BaseModel):
    """``gridpatrol import-osm``'s options (the extract is the job's uploaded file)."""

    model_config = ConfigDict(extra="forbid")
    m2_per_household: float = Field(100.0, gt=0, le=10_000, description="Gross floor area per household, m²")
    default_levels: float = Field(6.0, gt=0, le=300, description="Levels of residential buildings without building:levels")
    landuse_households_per_ha: float = Field(150.0, ge=0, le=10_000,
                                             description="Households per hectare of landuse=residential without buildings")


class ImportHouseholdsParams(BaseModel):
    """``POST /buildings/import-households``'s query parameters (the register is the uploaded file)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    crs: str | None = Field(None, pattern=REGISTER_CRS)
    sheet: str | None = Field(None, max_length=100)
    map_: str | None = Field(None, alias="map", max_length=2000)
    mode: Literal["replace", "add"] | None = None
    tolerance_m: float = Field(30.0, ge=0, le=500)
    encoding: str | None = Field(None, max_length=32, pattern=ENCODING)


class ImportCamerasParams(BaseModel):
    """``POST /cameras/import``'s query parameters (the camera list is the uploaded file)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    crs: str = Field("wgs84", pattern=FILE_CRS)
    map_: str | None = Field(None, alias="map", max_length=2000)
    code_prefix: str | None = Field(None, max_length=64)
    project: Literal["skynet", "sharp_eyes", "other"] | None = None
    encoding: str | None = Field(None, max_length=32, pattern=ENCODING)


class LinkIncidentsParams(BaseModel):
    """``gridpatrol link-incidents``'s options."""

    model_config = ConfigDict(extra="forbid")
    radius_m: float | None = Field(None, gt=0, le=5000, description="pairs within this (default: each camera's range)")
    in_view: bool = Field(False, description="only pairs where the camera sees the incident")
    limit: int = Field(1000, ge=0, le=100_000, description="pairs listed in the result (all are counted)")


class PatrolReportParams(BaseModel):
    """``GET /patrols/report``'s parameters; ``xlsx``: keep the 考核表 as an XLSX for the job's owner."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    date_from: date = Field(alias="from")
    date_to: date = Field(alias="to")
    worker: str | None = Field(None, min_length=1, max_length=100)
    cycle_start: date | None = None
    hours: str | None = Field(None, max_length=40)
    tz: ZoneName = Field("Asia/Shanghai", max_length=64)
    xlsx: bool = False
    lang: Literal["zh", "en"] = Field("zh", description="language of the XLSX (zh or en)")

    @model_validator(mode="after")
    def _order(self) -> PatrolReportParams:
        if self.date_to < self.date_from:
            raise ValueError("'to' is before 'from'")
        if (self.date_to - self.date_from).days > 366:
            raise ValueError("at most 366 days per report")
        return self

    def checked(self) -> PatrolReportParams:
        from gridpatrol.gis.tracks import parse_work_hours

        parse_work_hours(self.hours, where="hours")  # InputError in Chinese and English
        return self


def _input() -> tuple[Path, str]:
    ctx = job_context()
    if ctx.input_path is None:
        raise InputError("任务没有上传文件 / the job has no uploaded file")
    return ctx.input_path, ctx.input_label


def _import_result(res: Any, label: str) -> dict:
    return {"source": label, "sha256": res.sha256, "counts": res.counts, "warnings": list(res.warnings or []),
            "dropped": {k: (len(v) if isinstance(v, list) and len(v) > 100 else v) for k, v in res.dropped.items()}}


def _import_osm(store: Store, p: ImportOsmParams, say: Progress, _by: str | None) -> dict:
    from gridpatrol.gis.osm import OsmOptions
    from gridpatrol.layers.importing import import_osm

    path, label = _input()
    opts = OsmOptions(m2_per_household=p.m2_per_household, default_levels=p.default_levels,
                      landuse_households_per_ha=p.landuse_households_per_ha)
    res = import_osm(store, path, options=opts, progress=say)
    return _import_result(res, label)


def _import_households(store: Store, p: ImportHouseholdsParams, say: Progress, _by: str | None) -> dict:
    from gridpatrol.layers.registers import import_households

    path, label = _input()
    res = import_households(store, path, crs=p.crs, sheet=p.sheet, mapping=p.map_, mode=p.mode,
                            tolerance_m=p.tolerance_m, encoding=p.encoding, progress=say)
    return _import_result(res, label)


def _import_cameras(store: Store, p: ImportCamerasParams, say: Progress, _by: str | None) -> dict:
    from gridpatrol.layers.cameras import import_cameras

    path, label = _input()
    res = import_cameras(store, path, crs=p.crs, mapping=p.map_, code_prefix=p.code_prefix, project=p.project,
                         encoding=p.encoding, progress=say)
    return _import_result(res, label)


def _link_incidents(store: Store, p: LinkIncidentsParams, say: Progress, _by: str | None) -> dict:
    from gridpatrol.layers.cameras import link_incidents
    from sqlalchemy import text

    who = job_context().principal
    say("linking incidents to cameras")
    df = link_incidents(store, radius_m=p.radius_m, in_view_only=p.in_view)
    if who is not None and who.role != "admin" and len(df):
        # Cameras above the user's secrecy level are left out, as GET /cameras/at does.
        say("leaving out cameras above your secrecy level")
        with store.engine.connect() as c:
            ok = {r[0] for r in c.execute(text("SELECT code FROM cameras WHERE secrecy_level IS NOT NULL "
                                               "AND secrecy_level <= :m"), {"m": who.max_secrecy_level})}
        df = df[df["camera_code"].isin(ok)]
    rows = json.loads(df.head(p.limit).to_json(orient="records", force_ascii=False))
    return {"pairs": int(len(df)), "incidents": int(df["incident_id"].nunique()) if len(df) else 0,
            "in_view": int(df["in_view"].sum()) if len(df) else 0, "listed": rows}


def _report_scope(p: PatrolReportParams, who: Principal) -> PatrolReportParams:
    # As GET /patrols/report: a grid worker only their own; dispatchers and admins name the worker.
    if who.role == "worker":
        if p.worker not in (None, who.name):
            raise PermissionDenied("网格员只能查看自己的考核 / a grid worker may only see their own patrol report")
        return p.model_copy(update={"worker": who.name})
    if p.worker is None:
        raise InputError("请指定网格员 / patrol-report: parameter worker is required (name the worker)",
                         where="worker")
    return p


def _patrol_report(store: Store, p: PatrolReportParams, say: Progress, _by: str | None) -> dict:
    from gridpatrol.gis.assessment_sheet import write_xlsx
    from gridpatrol.gis.tracks import parse_work_hours
    from gridpatrol.layers.patrols import patrol_report
    from gridpatrol.layers.plan_base import record_write

    say(f"assessing the patrols of {p.worker}")
    rep = patrol_report(store, str(p.worker), p.date_from, p.date_to, tz=p.tz, cycle_start=p.cycle_start,
                        hours=parse_work_hours(p.hours, where="hours"))
    rep = json.loads(json.dumps(rep, default=str, ensure_ascii=False))
    out = {"report": rep}
    if not p.xlsx:
        return out
    say("writing the 考核表 (XLSX)")
    with tempfile.TemporaryDirectory(prefix="gridpatrol-report-") as tmp:
        path = write_xlsx(rep, Path(tmp) / "report.xlsx", p.lang)
        data = Path(path).read_bytes()
    name = f"patrol-report-{p.date_from}-{p.date_to}.xlsx"
    with store.begin() as conn:  # the file and the job's end commit together
        save_output(conn, job_context().job_id, name, XLSX, data)
        out["xlsx"] = {"name": name, "bytes": len(data)}
        record_write(conn, out)
    return out


def _no_lock(_store: Store, p: Any) -> tuple[Any, str | None]:
    return p, None


def _lock(key: str):  # noqa: ANN202
    return lambda _store, p: (p, key)


KINDS: dict[str, Kind] = {
    # Imports replace rows many readers and plans rely on: one import of a kind at a time.
    "import-osm": Kind(ImportOsmParams, "edit_grids", _import_osm, lambda _s, _p: 4, _lock("import:osm"),
                       files=OSM_SUFFIXES),
    "import-households": Kind(ImportHouseholdsParams, "edit_grids", _import_households, lambda _s, _p: 4,
                              _lock("import:households"), files=REGISTER_SUFFIXES),
    "import-cameras": Kind(ImportCamerasParams, "edit_cameras", _import_cameras, lambda _s, _p: 3,
                           _lock("import:cameras"), files=CAMERA_SUFFIXES),
    "link-incidents": Kind(LinkIncidentsParams, "read_cameras", _link_incidents, lambda _s, _p: 3, _no_lock,
                           needs_user=True),
    "patrol-report": Kind(PatrolReportParams, "read_tracks", _patrol_report,
                          lambda _s, p: 3 if p.xlsx else 2, _no_lock, scope=_report_scope, needs_user=True),
}
