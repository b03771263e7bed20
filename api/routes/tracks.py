"""Patrol tracks: phone chunk uploads (idempotent), GPX/GeoJSON uploads, listing; the patrol report (JSON, XLSX, PDF)."""
from __future__ import annotations

import json
import re
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from gridpatrol.api.auth import require_permission
from gridpatrol.api.deps import StoreDep, UserDep
from gridpatrol.api.i18n import LANG_HELP, file_lang
from gridpatrol.gis.errors import InputError, NotFoundError, PermissionDenied
from gridpatrol.gis.tracks import parse_work_hours, read_geojson, read_gpx
from gridpatrol.layers import tracks as tl
from gridpatrol.layers.users import Principal
from pydantic import BaseModel, Field, ValidationError

router = APIRouter(tags=["tracks"])
TRACK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")
GPX_TYPES = ("application/gpx+xml", "application/xml", "text/xml")
GEOJSON_TYPES = ("application/geo+json", "application/json")


class ChunkIn(BaseModel):
    """A chunk of a track recorded on the phone page."""

    track_id: str = Field(min_length=1, max_length=64, pattern=TRACK_ID.pattern)
    seq: int = Field(ge=0, lt=tl.MAX_CHUNKS)
    device: str | None = Field(default=None, max_length=200)
    route_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    points: list[dict[str, Any]] = Field(min_length=1)


def _owner(principal: Principal, worker: str | None) -> str:
    """Whose tracks a request is about: workers only their own; dispatchers and admins anyone's."""
    if principal.role == "worker":
        if worker not in (None, principal.name):
            raise PermissionDenied("a grid worker may only see and send their own tracks")
        return principal.name
    if worker is None:
        raise InputError("name the worker", where="worker", hint="?worker=NAME")
    return worker


def _chunk(store: StoreDep, principal: Principal, doc: dict[str, Any], hours: str) -> tl.ChunkOutcome:
    try:
        body = ChunkIn.model_validate(doc)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise InputError(e["msg"], where=".".join(str(p) for p in e["loc"])) from None
    return tl.add_chunk(store, worker=principal.name, client_id=body.track_id, seq=body.seq, points=body.points,
                        device=body.device, route_id=body.route_id, source="phone",
                        hours=parse_work_hours(hours, where="work_hours"))


@router.post("/tracks", status_code=201, summary="Upload a track: a phone chunk (JSON), a GPX file or GeoJSON",
             responses={200: {"description": "this chunk (track_id, seq) or file was stored before: nothing changed"},
                        413: {"description": "body over max_body_bytes"}})
async def post_track(request: Request, store: StoreDep, principal: UserDep,
                     worker: Annotated[str | None, Query(max_length=100, description="dispatcher/admin: whose track")] = None,
                     crs: Annotated[str, Query(pattern="^(wgs84|gcj02)$")] = "wgs84",
                     device: Annotated[str | None, Query(max_length=200)] = None) -> JSONResponse:
    require_permission(principal, "record_tracks", "upload patrol tracks")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=10)
        f = form.get("file")
        if f is None or isinstance(f, str):
            raise InputError("the multipart upload has no file field named 'file'", hint="curl -F file=@track.gpx …")
        data, name = await f.read(), (f.filename or "upload")
        kind = "gpx" if name.lower().endswith(".gpx") else "geojson" if name.lower().endswith((".geojson", ".json")) else None
        if kind is None:
            raise InputError(f"upload {name[:100]!r}: unknown file kind", hint="a .gpx or .geojson file")
    elif ctype in GPX_TYPES:
        data, kind, name = await request.body(), "gpx", "request body"
    elif ctype in GEOJSON_TYPES:
        data, kind, name = await request.body(), "json", "request body"
    else:
        raise InputError(f"cannot read a track from Content-Type {ctype or '(none)'!r}",
                         hint="application/json (a chunk or GeoJSON), application/gpx+xml or multipart/form-data")
    if not data.strip():
        raise InputError(f"{name} is empty")
    if kind == "json":
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InputError(f"{name} is not valid JSON: {str(exc)[:200]}") from None
        if isinstance(doc, dict) and "track_id" in doc:
            if worker not in (None, principal.name):
                raise PermissionDenied("phone chunks are stored for the signed-in worker only")
            out = await run_in_threadpool(_chunk, store, principal, doc, request.app.state.settings.work_hours)
            request.state.audit_detail = {"track": out.track_id, "seq": doc.get("seq"), "new": out.created}
            return JSONResponse({"id": out.track_id, "track_id": doc["track_id"], "seq": doc["seq"], "created": out.created,
                                 "points": out.n_points, "flags": out.flags}, status_code=201 if out.created else 200)
        kind = "geojson"
    owner = _owner(principal, worker) if principal.role == "worker" or worker else principal.name
    track = read_gpx(data, crs=crs, where=name) if kind == "gpx" else read_geojson(data, crs=crs, where=name)
    hours = parse_work_hours(request.app.state.settings.work_hours, where="work_hours")
    out = await run_in_threadpool(lambda: tl.save_track(store, track, worker=owner, source="gpx" if kind == "gpx" else "api",
                                                        device=device, raw=data, hours=hours))
    request.state.audit_detail = {"track": out.track_id, "worker": owner, "new": out.created}
    return JSONResponse({"id": out.track_id, "created": out.created, "points": out.n_points, "flags": out.flags},
                        status_code=201 if out.created else 200)


@router.get("/tracks", summary="Stored tracks (no fixes): workers see their own, dispatchers and admins anyone's")
def list_tracks(store: StoreDep, principal: UserDep,
                worker: Annotated[str | None, Query(max_length=100)] = None) -> list[dict[str, Any]]:
    require_permission(principal, "read_tracks", "see patrol tracks")
    who = principal.name if principal.role == "worker" else worker
    if principal.role == "worker" and worker not in (None, principal.name):
        raise PermissionDenied("a grid worker may only see their own tracks")
    rows = tl.read_tracks(store, worker=who)
    return [tl.track_summary(store, int(r["id"])) for r in rows[-1000:]]


@router.get("/tracks/{track_id}", summary="One track as a GeoJSON feature with its times")
def get_track(track_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)], store: StoreDep, principal: UserDep) -> dict[str, Any]:
    require_permission(principal, "read_tracks", "see patrol tracks")
    rows = tl.read_tracks(store, ids=[track_id])
    if not rows or (principal.role == "worker" and rows[0]["worker"] != principal.name):
        raise NotFoundError(f"no track {track_id} that you may see")
    r = rows[0]
    props = tl.track_summary(store, track_id)
    props["times"] = r["t"].tolist()
    return {"type": "Feature", "id": track_id, "properties": props,
            "geometry": {"type": "LineString", "coordinates": [[float(a), float(b)] for a, b in zip(r["lon"], r["lat"])]}}


def _date(text: str, where: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"日期 {text[:40]!r} 格式不对，应为 年-月-日 ({text[:40]!r} is not a date YYYY-MM-DD)",
                         where=where, hint="例如 2026-11-02") from None


@router.get("/patrols/report", summary="Patrol assessment per grid and shift (JSON, or the 考核表 as XLSX/PDF)")
async def patrol_report(request: Request, store: StoreDep, principal: UserDep,
                        date_from: Annotated[str, Query(alias="from", max_length=10)],
                        date_to: Annotated[str, Query(alias="to", max_length=10)],
                        worker: Annotated[str | None, Query(max_length=100)] = None,
                        format: Annotated[str, Query(pattern="^(json|xlsx|pdf)$")] = "json",
                        cycle_start: Annotated[str | None, Query(
                            max_length=10, description="day 1 of the patrol calendar, YYYY-MM-DD (default: the day "
                                                       "the routes were planned)")] = None,
                        hours: Annotated[str | None, Query(
                            max_length=40, description="working hours HH:MM-HH:MM, local (default: the setting "
                                                       "work_hours, 07:00-21:00)")] = None,
                        lang: Annotated[str | None, Query(pattern="^(zh|en)$", description=LANG_HELP)] = None) -> Response:
    from gridpatrol.gis.assessment_sheet import write_pdf, write_xlsx
    from gridpatrol.layers.patrols import patrol_report as build

    require_permission(principal, "read_tracks", "see patrol reports")
    who = _owner(principal, worker)
    d0, d1 = _date(date_from, "from"), _date(date_to, "to")
    start = _date(cycle_start, "cycle_start") if cycle_start is not None else None
    settings = request.app.state.settings
    work_hours = parse_work_hours(settings.work_hours if hours is None else hours,
                                  where="work_hours" if hours is None else "hours")
    rep = await run_in_threadpool(lambda: build(store, who, d0, d1, tz=settings.timezone, cycle_start=start,
                                                hours=work_hours))
    if format == "json":
        return JSONResponse(json.loads(json.dumps(rep, default=str)))
    with tempfile.TemporaryDirectory(prefix="gridpatrol-report-") as tmp:
        path = Path(tmp) / f"report.{format}"
        await run_in_threadpool(write_xlsx if format == "xlsx" else write_pdf, rep, path, file_lang(request))
        data = path.read_bytes()
    media = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" if format == "xlsx"
             else "application/pdf")
    fname = f"patrol-report-{d0}-{d1}.{format}"
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{fname}"'})
