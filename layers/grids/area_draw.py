"""Redraw one planning area: a new plan that is the newest one with that area's grids and blocks drawn anew."""
from __future__ import annotations

from gridpatrol.gis.errors import InputError, NotFoundError
from gridpatrol.layers.empty_bounds import StoredBounds, save_bounds
from gridpatrol.layers.grids.core import (
    Progress,
    area_blocks,
    area_label,
    insert_plan,
    insert_rows,
    locked_grids,
    partition_area,
    plan_metrics,
    planning_areas,
    with_workload_scale,
)
from gridpatrol.layers.models import Block, Grid, GridPlan
from gridpatrol.layers.plan_params import PlanParams
from gridpatrol.layers.store import Store
from sqlalchemy import Connection, func, select, text, update

# pg_advisory_xact_lock key serialising the writes of area drawings (74201 migrations, 74202 users,
# audit and login counters have theirs): each one's base is the plan the previous one wrote.
_AREA_WRITE_LOCK = 74210


def area_codes(store: Store) -> list[str]:
    """Codes of the planning areas (see planning_areas), in their order."""
    return [str(c) for c in planning_areas(store)["code"]]


def area_params(store: Store, params: PlanParams | None) -> PlanParams:
    """The rules an area redraw draws by: ``params`` when the request chose the mode, else the newest
    plan's mode. A rural redraw (asked for, or of a rural plan) takes the limits of the newest rural
    plan (area, travel, settlement gap, …: ``import_params``), overridden by what the request set."""
    from gridpatrol.layers.grids.imports import import_params

    given = params if params is not None else PlanParams()
    asked = {k: getattr(given, k) for k in given.model_fields_set if k in PlanParams.model_fields}
    mode = asked.get("mode") or import_params(store, None).mode
    if mode != "rural":
        return given
    return PlanParams.parse({**import_params(store, "rural").model_dump(), **asked, "mode": "rural"})


def _lock_plans(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_advisory_xact_lock({_AREA_WRITE_LOCK})"))
    else:  # SQLite: take the write lock first (a write matching no row), so the newest plan is read inside it
        t = GridPlan.__table__
        conn.execute(update(t).where(text("1 = 0")).values(note=t.c.note))


def _copy_others(conn: Connection, base: int, pid: int, area_code: str) -> int:
    """Copy the grids and blocks of plan ``base`` outside ``area_code`` into plan ``pid`` (in SQL, geometry
    as stored); returns the largest block id copied (0: none)."""
    for table, area_col in ((Grid.__table__, "parent_code"), (Block.__table__, "area_code")):
        cols = [c.name for c in table.columns if c.name not in ("id", "plan_id")]
        names = ", ".join(f'"{c}"' for c in cols)
        conn.execute(text(
            f'INSERT INTO "{table.name}" ("plan_id", {names}) SELECT :pid, {names} FROM "{table.name}" '
            f'WHERE "plan_id" = :base AND ("{area_col}" IS NULL OR "{area_col}" <> :area)'),
            {"pid": pid, "base": base, "area": area_code})
    b = Block.__table__
    return int(conn.execute(select(func.coalesce(func.max(b.c.block_id), 0)).where(b.c.plan_id == pid)).scalar())


def draw_area(store: Store, area_code: str, params: PlanParams | None = None, *, progress: Progress | None = None,
              created_by: str | None = None, name: str | None = None) -> int:
    """Redraw planning area ``area_code`` alone; returns the new plan id.

    The new plan is the newest plan *at the time of writing* with this area's grids and blocks
    replaced (the others copied as they are; no plan yet: this area only), so drawings of
    different areas may run at once on different workers and the last plan holds them all.
    Locked grids of the area are kept as draw_grids keeps them. The rules are ``area_params``: a
    rural plan's area is redrawn rurally with its limits unless the request chose the mode. The plan's metrics are those of
    this area (``metrics["areas"]`` names it). Nothing is written unless the area was drawn."""
    from gridpatrol.layers.grids.sanity import data_checks, refuse_sparse, summary_of

    params = area_params(store, params).checked()
    say = progress or (lambda _m: None)
    areas = planning_areas(store)
    areas = areas[areas["code"].astype(str) == str(area_code)]
    if not len(areas):
        raise NotFoundError(f"no planning area {area_code!r}",
                            hint="planning areas: " + ", ".join(area_codes(store)[:50]))
    area = areas.iloc[0]
    say(f"area {area_code}: checking data coverage")
    checks = data_checks(store, areas)
    if not params.allow_sparse:
        refuse_sparse(checks)
    one = area_blocks(store, area, params, 1, say)
    if one is None:
        raise InputError(f"no blocks could be built in planning area {area_label(area)}",
                         hint="are streets imported inside the area? check gridpatrol info")
    # A weighted workload's household band is scaled by this area's blocks (the whole drawing scales
    # by all areas': give workload_per_household to draw every area on one scale).
    params = with_workload_scale(params, [one[2]])
    rural = None
    if params.mode == "rural":  # whole settlements under the area and travel limits, as draw_grids (docs/rural.md)
        from gridpatrol.layers.grids.rural_draw import partition_area_rural

        blocks, grids, adj, rural = partition_area_rural(store, *one, params, locked_grids(store), say)
    else:
        meter = None
        if params.max_route_min is not None:
            from gridpatrol.layers.grids.route_cap import RouteMeter

            meter = RouteMeter.around(store, area.geometry)
        blocks, grids, adj = partition_area(*one, params, locked_grids(store), say, meter, bounds=StoredBounds(store))
    metrics = plan_metrics(grids, params, adj, dict(zip(blocks["block_id"].astype(int), blocks["grid_code"])))
    metrics["areas"] = [str(area_code)]
    if rural is not None:
        metrics["rural"] = {str(area_code): rural}
    if "empty_grids_lower_bound" in grids.attrs:
        metrics["empty_grids_lower_bound"] = int(grids.attrs["empty_grids_lower_bound"])
    metrics["data_coverage"] = summary_of(checks)
    metrics["data_warnings"] = [w for c in checks for w in c["warnings"]]
    say(f"area {area_code}: writing the plan")
    t = GridPlan.__table__
    with store.begin() as conn:
        _lock_plans(conn)
        base = conn.execute(select(func.max(t.c.id))).scalar()
        pid = insert_plan(conn, method="draw", parent=base, params=params, metrics=metrics, created_by=created_by,
                          name=name, note=f"area {area_label(area)} redrawn" + (f" on plan {base}" if base else ""))
        offset = _copy_others(conn, int(base), pid, str(area_code)) if base is not None else 0
        blocks = blocks.copy()
        blocks["block_id"] = blocks["block_id"].astype(int) + offset
        insert_rows(store, conn, pid, grids, blocks)
    save_bounds(store, grids.attrs.get("empty_bounds_solved", {}))  # after the plan, as draw_grids
    return pid
