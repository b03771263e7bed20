"""Grid plans and grids: read, draw, check, diff, and every redraw operation (planners and admins edit)."""
from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from gridpatrol.api.auth import layer_filter, require_permission, visible_frame
from gridpatrol.api.deps import MAX_ID, StoreDep, UserDep, get_store
from gridpatrol.api.geojson import parse_features
from gridpatrol.gis.errors import InputError, PermissionDenied
from gridpatrol.layers import grids as gl
from gridpatrol.layers.plan_base import on_base
from gridpatrol.layers.plan_params import DrawParams, GridCodes, PlanParams
from pydantic import BaseModel, Field

router = APIRouter(prefix="/grids", tags=["grids"])

Codes = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(min_length=1, max_length=200)]


def _clean(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def _records(df) -> list[dict[str, Any]]:  # noqa: ANN001
    return [{k: _clean(v) for k, v in r.items() if k != "geometry"} for r in df.to_dict("records")]


def edit_out(res: gl.EditResult) -> dict[str, Any]:
    """An EditResult as JSON: the new plan version, its parent and the grids changed."""
    return {k: _clean(v) if not isinstance(v, list) else v for k, v in asdict(res).items()}


# The bodies the draw-grids and rebalance jobs take too (layers/plan_params.py): one definition.
DrawIn = DrawParams
CodesIn = GridCodes


class SplitIn(BaseModel):
    parts: int = Field(ge=2, le=50)
    force: bool = False


class MoveIn(BaseModel):
    to: str = Field(min_length=1, max_length=64)
    items: Annotated[list[Annotated[int, Field(ge=0, le=MAX_ID)] | Annotated[str, Field(min_length=1, max_length=200)]],
                     Field(min_length=1, max_length=10_000,
                                            description="block ids, or buildings as osm_type/osm_id or names")]
    force: bool = False


class LockIn(BaseModel):
    codes: Codes
    locked: bool = True


class WorkerIn(BaseModel):
    worker: Annotated[str | None, Field(max_length=100, description="worker (网格员) name; null clears")] = None
    station_lon: Annotated[float | None, Field(ge=-180, le=180)] = None
    station_lat: Annotated[float | None, Field(ge=-90, le=90)] = None


class NameIn(BaseModel):
    name: Annotated[str | None, Field(max_length=100, description="grid name (e.g. 锦官驿社区第3网格); null clears")] = None


PlanQ = Annotated[int | None, Query(ge=1, le=MAX_ID, description="plan id (default: newest)")]
BaseQ = Annotated[int | None, Query(ge=1, le=MAX_ID, description="the plan version the edit was made on: "
                                    "refused (409) unless it is still the newest")]


@router.get("/plans", summary="All grid plans (versions), newest last")
def plans(store: StoreDep, principal: UserDep) -> list[dict[str, Any]]:
    return _records(visible_frame(principal, "grid_plans", gl.list_plans(store)))


@router.get("", summary="Grids of a plan (GeoJSON)")
def grids(store: StoreDep, principal: UserDep, plan_id: PlanQ = None) -> dict[str, Any]:
    g = visible_frame(principal, "grids", gl.read_grids(store, plan_id))
    body = json.loads(g.to_json(na="null", drop_id=True))
    return body


@router.get("/check", summary="Validate a plan (coverage, contiguity, buildings, band, codes)")
async def check(store: StoreDep, principal: UserDep, plan_id: PlanQ = None) -> dict[str, Any]:
    res, pid = await run_in_threadpool(gl.check_grids, store, plan_id)
    problems = res.problems.to_crs(4326) if res.problems.crs is not None else res.problems
    return {"plan_id": pid, "valid": res.valid, "summary": {k: _clean(v) for k, v in res.summary.items()},
            "grids": gl.measure_records(res.grids) if res.grids is not None else [],
            "problems": json.loads(problems.to_json(na="null", drop_id=True)) if len(problems) else
            {"type": "FeatureCollection", "features": []}}


@router.get("/diff", summary="Buildings and households that changed grid between two plans")
def diff(store: StoreDep, principal: UserDep, a: Annotated[int, Query(ge=1, le=MAX_ID)], b: Annotated[int, Query(ge=1, le=MAX_ID)]) -> dict[str, Any]:
    changes, summary = gl.diff_plans(store, a, b)
    return {"summary": {k: _clean(v) for k, v in summary.items()}, "changes": _records(changes)}


@router.post("/draw", status_code=201, summary="Draw a new plan for every planning area (planner, admin)")
async def draw(body: DrawIn, request: Request, store: StoreDep, principal: UserDep) -> dict[str, Any]:
    require_permission(principal, "edit_grids", "draw grids")
    params = PlanParams(**body.model_dump(exclude={"name"})).checked()
    pid = await run_in_threadpool(lambda: gl.draw_grids(store, params, created_by=principal.name, name=body.name))
    request.state.audit_detail = {"plan_id": pid, "params": body.model_dump()}
    row = gl.plan_row(store, pid)
    m, stored = json.loads(row["metrics_json"]), PlanParams.from_json(row["params_json"])
    table = gl.plan_grid_measures(store, pid)
    target, low, high = stored.workload_band()
    return {"plan_id": pid, "grids": len(table),
            "balance": {"mode": stored.balance, "weights": stored.workload_weights(), "unit": stored.workload_unit(),
                        "workload_per_household": stored.band_scale(), "target": target, "band": [low, high]},
            "per_grid": gl.measure_records(table),
            "data_coverage": m.get("data_coverage", {}), "warnings": m.get("data_warnings", [])}


@router.post("/import", status_code=201, summary="Import a grid layer made elsewhere as a new plan (GeoJSON)")
async def import_plan(
    request: Request, store: StoreDep, principal: UserDep,
    body: Annotated[dict[str, Any], Body(description="GeoJSON FeatureCollection of grid polygons")],
    code_field: Annotated[str | None, Query(max_length=64)] = None,
    crs: Annotated[str, Query(pattern="^(wgs84|gcj02|bd09)$")] = "wgs84",
    mode: Annotated[str | None, Query(pattern="^(urban|rural)$", description=(
        "urban (household window) or rural (whole villages, area and travel limits of the newest rural plan); "
        "default: the mode of the newest plan"))] = None,
) -> dict[str, Any]:
    require_permission(principal, "edit_grids", "import grids")
    gdf = parse_features(body, allowed={"Polygon", "MultiPolygon"})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grids.geojson"
        path.write_text(gdf.to_json(), encoding="utf-8")
        pid = await run_in_threadpool(lambda: gl.import_grids(
            store, path, crs=None if crs == "wgs84" else crs, code_field=code_field, mode=mode,
            created_by=principal.name))
    request.state.audit_detail = {"plan_id": pid, "features": len(gdf)}
    row = gl.plan_row(store, pid)
    m = json.loads(row["metrics_json"])
    return {"plan_id": pid, "grids": len(gl.read_grids(store, pid)),
            "mode": PlanParams.from_json(row["params_json"]).mode,
            "data_coverage": m.get("data_coverage", {}), "warnings": m.get("data_warnings", [])}


async def _edit(request: Request, principal, what: str, fn, base: int | None = None, **detail) -> dict[str, Any]:  # noqa: ANN001
    require_permission(principal, "edit_grids", what)
    store = get_store(request)
    res = await run_in_threadpool(on_base, base, lambda: gl.latest_plan_id(store), fn)
    request.state.audit_detail = {**detail, "plan_id": res.plan_id, "parent_plan_id": res.parent_plan_id,
                                  "changed": res.changed_codes}
    return edit_out(res)


@router.post("/{code}/split", summary="Split a grid into n balanced contiguous parts (new plan version)")
async def split(code: str, body: SplitIn, request: Request, store: StoreDep, principal: UserDep, plan_id: PlanQ = None, base: BaseQ = None) -> dict[str, Any]:
    return await _edit(request, principal, "split grids", lambda: gl.split_grid(
        store, code, body.parts, plan_id=plan_id, force=body.force, created_by=principal.name), base, code=code, parts=body.parts)


@router.post("/merge", summary="Merge adjacent grids (new plan version)")
async def merge(body: CodesIn, request: Request, store: StoreDep, principal: UserDep, plan_id: PlanQ = None, base: BaseQ = None) -> dict[str, Any]:
    return await _edit(request, principal, "merge grids", lambda: gl.merge_grids(
        store, body.codes, plan_id=plan_id, force=body.force, created_by=principal.name), base, codes=body.codes)


@router.post("/move-blocks", summary="Move blocks or buildings to an adjacent grid (new plan version)")
async def move(body: MoveIn, request: Request, store: StoreDep, principal: UserDep, plan_id: PlanQ = None, base: BaseQ = None) -> dict[str, Any]:
    return await _edit(request, principal, "move blocks", lambda: gl.move_blocks(
        store, body.to, body.items, plan_id=plan_id, force=body.force, created_by=principal.name),
        base, to=body.to, items=[str(i) for i in body.items[:100]])


@router.post("/lock", summary="Lock or unlock grids (new plan version)")
async def lock(body: LockIn, request: Request, store: StoreDep, principal: UserDep, plan_id: PlanQ = None, base: BaseQ = None) -> dict[str, Any]:
    return await _edit(request, principal, "lock grids", lambda: gl.set_locked(
        store, body.codes, body.locked, plan_id=plan_id, created_by=principal.name), base, codes=body.codes, locked=body.locked)


@router.post("/{code}/worker", summary="Set a grid's worker (网格员) and station (new plan version)")
async def worker(code: str, body: WorkerIn, request: Request, store: StoreDep, principal: UserDep,
                 plan_id: PlanQ = None, base: BaseQ = None) -> dict[str, Any]:
    if (body.station_lon is None) != (body.station_lat is None):
        raise InputError("give both station_lon and station_lat, or neither")
    stations = {code: (body.station_lon, body.station_lat)} if body.station_lon is not None else None
    return await _edit(request, principal, "assign grid workers", lambda: gl.assign_workers(
        store, {code: body.worker}, stations=stations, plan_id=plan_id, created_by=principal.name),
        base, code=code, worker=body.worker)


@router.post("/{code}/name", summary="Name a grid, e.g. 锦官驿社区第3网格 (new plan version)")
async def name(code: str, body: NameIn, request: Request, store: StoreDep, principal: UserDep,
               plan_id: PlanQ = None, base: BaseQ = None) -> dict[str, Any]:
    return await _edit(request, principal, "name grids", lambda: gl.assign_workers(
        store, {}, names={code: body.name}, plan_id=plan_id, created_by=principal.name), base, code=code, name=body.name)


@router.get("/{code}/hot-spots", summary="Incident hot spots of a grid (GeoJSON points, most important first)")
def hot_spots(
    code: Annotated[str, PathParam(max_length=64)], store: StoreDep, principal: UserDep, plan_id: PlanQ = None,
    days: Annotated[float, Query(gt=0, le=3650, description="incidents of the last N days")] = 90,
    radius_m: Annotated[float, Query(gt=0, le=1000, description="incidents this close (m) join one spot")] = 50,
    min_incidents: Annotated[int, Query(ge=1, le=10_000, description="incidents needed for a spot")] = 2,
    top: Annotated[int | None, Query(ge=1, le=10_000, description="at most this many spots")] = None,
    at: Annotated[datetime | None, Query(description="time of interest (default now), RFC 3339")] = None,
) -> dict[str, Any]:
    """Clusters of the grid's recent incidents; importance sums 0.5^(age / 30 days) over a
    spot's incidents. Dispatchers and admins: any grid; workers: their own grids of the current
    plan. Only incidents the user may see are counted."""
    from gridpatrol.layers.hotspots import grid_hot_spots

    require_permission(principal, "read_incidents", "read incident hot spots")
    if principal.role == "worker":
        mine = gl.read_grids(store)  # the current plan decides, whatever plan_id asks for
        if not ((mine["code"] == code) & (mine["worker"] == principal.name)).any():
            raise PermissionDenied(f"grid {code} is not one of yours", hint="workers see the hot spots of their own grids")
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    spots = grid_hot_spots(store, code, plan_id=plan_id, days=days, at=at, radius_m=radius_m,
                           min_incidents=min_incidents, top=top,
                           where=layer_filter(principal, "incidents", store.table("incidents")))
    for col in ("first_at", "last_at"):
        spots[col] = [None if v is None or v != v else v.isoformat() for v in spots[col]]
    return json.loads(spots.to_json(na="null", drop_id=True))


@router.post("/rebalance", summary="Rebalance neighbouring grids with few household moves (new plan version)")
async def rebalance(body: CodesIn, request: Request, store: StoreDep, principal: UserDep, plan_id: PlanQ = None, base: BaseQ = None) -> dict[str, Any]:
    return await _edit(request, principal, "rebalance grids", lambda: gl.rebalance_grids(
        store, body.codes, plan_id=plan_id, force=body.force, created_by=principal.name), base, codes=body.codes)
