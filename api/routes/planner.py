"""The planner's workbench API: block-move preview, undo/redo, versions and the plan's blocks (planner, admin)."""
from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from gridpatrol.api.auth import require_permission
from gridpatrol.api.deps import MAX_ID, SettingsDep, StoreDep, UserDep
from gridpatrol.api.display import display_geojson
from gridpatrol.api.routes.grids import BaseQ, PlanQ, edit_out
from gridpatrol.layers import grids as gl
from gridpatrol.layers import planner
from gridpatrol.layers.plan_base import on_base
from pydantic import BaseModel, Field

router = APIRouter(tags=["planner"])


class PreviewIn(BaseModel):
    items: Annotated[list[Annotated[int, Field(ge=0, le=MAX_ID)]], Field(min_length=1, max_length=planner.MAX_PREVIEW_BLOCKS,
                                                                        description="block ids to move")]
    to: Annotated[str | None, Field(min_length=1, max_length=64, description="target grid (default: the "
                                    "neighbour sharing the longest boundary)")] = None


@router.post("/grids/preview-move", summary="What a block move would make of the grids involved (nothing is written)")
async def preview_move(body: PreviewIn, store: StoreDep, principal: UserDep, plan_id: PlanQ = None) -> dict[str, Any]:
    """Before/after totals (households, buildings, street m, area m², blocks, band status) of the
    target and source grids, the candidate targets, and every rule the move would break."""
    require_permission(principal, "edit_grids", "preview grid edits")
    return await run_in_threadpool(planner.preview_move, store, body.items, body.to, plan_id)


async def _restore(request: Request, store, principal, base: int | None, fn) -> dict[str, Any]:  # noqa: ANN001
    require_permission(principal, "edit_grids", "undo or redo grid edits")
    res = await run_in_threadpool(on_base, base, lambda: gl.latest_plan_id(store), fn)
    request.state.audit_detail = {"plan_id": res.plan_id, "parent_plan_id": res.parent_plan_id, "note": res.message}
    return edit_out(res)


@router.post("/grids/undo", summary="Undo the newest edit: a new version equal to the one before it")
async def undo(request: Request, store: StoreDep, principal: UserDep, base: BaseQ = None) -> dict[str, Any]:
    return await _restore(request, store, principal, base, lambda: planner.undo(store, created_by=principal.name))


@router.post("/grids/redo", summary="Redo the last undo: a new version equal to the undone one")
async def redo(request: Request, store: StoreDep, principal: UserDep, base: BaseQ = None) -> dict[str, Any]:
    return await _restore(request, store, principal, base, lambda: planner.redo(store, created_by=principal.name))


@router.get("/grids/versions", summary="Plan versions, newest first: who, when, what edit (planner, admin)")
def versions(store: StoreDep, principal: UserDep) -> list[dict[str, Any]]:
    require_permission(principal, "edit_grids", "see the plan versions")
    return planner.versions(store)


@router.get("/maps/data/blocks", summary="A plan's blocks for the workbench map (planner, admin)")
async def blocks(store: StoreDep, settings: SettingsDep, principal: UserDep, plan_id: PlanQ = None) -> dict[str, Any]:
    """block_id, grid_code, households and the block polygon, in the map's display datum."""
    require_permission(principal, "edit_grids", "see a plan's blocks")
    b = await run_in_threadpool(planner.plan_blocks, store, plan_id)
    body = json.loads(b.to_json(na="null", drop_id=True)) if len(b) else {"type": "FeatureCollection", "features": []}
    return display_geojson(body, settings)
