"""CLI commands for grid plans: draw, check, diff, redraw (split/merge/move/lock/rebalance), import, map."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from gridpatrol.gis.errors import InputError
from gridpatrol.layers.plan_params import PlanParams
from gridpatrol.scripts.cli_texts import heading, t
from gridpatrol.scripts.cliutil import (
    command_lang,
    console,
    err_console,
    model_options,
    open_cli_store,
    print_table,
    progress_steps,
)
from gridpatrol.scripts.cmd_jobs import queue_jobs

app = typer.Typer()


def _edit_report(res) -> None:  # noqa: ANN001
    if res.plan_id == res.parent_plan_id:  # nothing changed, no version written
        console.print(t("plan_edit_same", pid=res.plan_id, msg=res.message))
        return
    console.print(t("plan_edit", pid=res.plan_id, parent=res.parent_plan_id, msg=res.message))
    if res.changed_codes:
        console.print(t("changed_grids") + ", ".join(res.changed_codes))
    if res.removed_codes:
        console.print(t("removed_grids") + ", ".join(res.removed_codes))


@app.command("draw-grids")
@model_options(PlanParams)
def draw_grids_cmd(
    ctx: typer.Context,
    params: PlanParams,
    jobs: Annotated[bool, typer.Option("--jobs", help="Queue the drawing as a job for `gridpatrol worker` "
                                                      "instead of drawing here")] = False,
    all_areas: Annotated[bool, typer.Option("--all-areas", help="With --jobs: one job per planning area "
                                                                "(W workers draw W areas at once)")] = False,
    lang: Annotated[Optional[str], typer.Option(help="zh or en: the language of this command's output, the note on "
                                                     "grids without households included (default: gridpatrol --lang)")
                    ] = None,
) -> None:
    """Draw a new grid plan for every finest loaded area (community, else district); locked grids are kept."""
    from gridpatrol.layers.grids import draw_grids, plan_grid_measures, plan_row

    lang = command_lang(ctx, lang)
    if all_areas and not jobs:
        raise InputError("--all-areas queues one job per area: give --jobs too",
                         hint="without --jobs, draw-grids draws every area here, in one plan")
    store = open_cli_store(ctx, create=False)
    if jobs:
        values = params.model_dump()
        if all_areas:  # an area's job follows the newest plan's mode (a rural plan: its limits) unless --mode is given
            values = {k: v for k, v in values.items()
                      if getattr(ctx.get_parameter_source(k), "name", None) != "DEFAULT"}  # typer's own click
        queue_jobs(store, "draw-grids", values, all_areas)
        return
    with progress_steps(t("progress_draw")) as step:
        pid = draw_grids(store, params, progress=step)
    m = json.loads(plan_row(store, pid)["metrics_json"])
    console.print(t("plan_summary", pid=pid, grids=m["grids"], households=m["households"]))
    _measure_table(plan_grid_measures(store, pid), t("plan_measures", pid=pid))
    print_table([{"metric": heading(k), "value": _fmt(v)} for k, v in m.items()
                 if k not in ("areas", "data_coverage", "data_warnings")], title=t("plan_title", pid=pid))
    _data_report(m.get("data_coverage", {}), m.get("data_warnings", []))
    capped = any(getattr(params, f, None) is not None for f in ("max_street_m", "max_area_m2", "max_route_min",
                                                                  "max_travel_min"))
    _empty_note(m.get("empty_grids", 0), None, None, lang, m.get("empty_grids_lower_bound"), capped=capped)


# the note on grids of 0 households: (Chinese, English)
_EMPTY_NOTE = {
    "drawn": ("{n} 个网格没有住户：硬上限（--max-street-m、--max-area-m2、--max-route-min）优先于“网格不得无住户”，"
              "这些网格由上限所迫；check-grids 逐个列出原因和证明。",
              "{n} grids hold no households: the hard caps (--max-street-m, --max-area-m2, --max-route-min) win over "
              "\"no grid of 0 households\", and these are forced by them; check-grids lists each with its reason and proof."),
    # a draw without caps: the only grids of 0 households it can leave are pieces of an area without households
    "drawn_uncapped": ("{n} 个网格没有住户：它们所在的区划片块（被区划边界或单街区网格隔开）本无住户，无法并入有住户的网格；"
                       "check-grids 逐个列出原因。",
                       "{n} grids hold no households: their pieces of the area (cut off by the area boundary or by "
                       "single-block grids) hold none, and no grid with households can take them in; check-grids "
                       "lists each with its reason."),
    "checked": ("{n} 个网格没有住户，其中 {e} 个豁免（由硬上限所迫，或为区划中被隔开、本无住户的片块；{p} 个有全局证明："
                "离最近有住户的街区超过上限），原因见问题列表；未豁免的为错误。",
                "{n} grids hold no households, {e} of them exempt (forced by a hard cap, or a cut-off piece of the area "
                "without households; {p} with a global proof: farther than the cap from every block with households); "
                "the reasons are in the problems, the others are errors."),
    # the proven lower bound (gis.partition.empty_bound): equal to the count, or below it
    "bound_met": ("任何满足硬上限的方案都至少有 {b} 个无住户网格（已证明的下界），本方案正是 {n} 个：这些无住户网格作为整体不可避免。",
                  "every plan within the caps has at least {b} grids of 0 households (a proven lower bound), and this "
                  "plan has {n}: as a set they are unavoidable."),
    "bound_gap": ("已证明任何满足硬上限的方案至少有 {b} 个无住户网格；本方案有 {n} 个，其余 {g} 个未证明不可避免。",
                  "every plan within the caps has at least {b} grids of 0 households (a proven lower bound); this plan "
                  "has {n}: that the other {g} are unavoidable is not proven."),
}


def _empty_note(n: int, exempt: int | None, proven: int | None, lang: str, bound: int | None = None,
                capped: bool = True) -> None:
    """Say how many grids hold no households and why (Chinese unless ``lang`` is en), and how many any plan
    within the caps must have (``bound``, when known). A draw (``exempt`` None) without caps (``capped``
    False) blames no cap."""
    if not n:
        return
    kind = "checked" if exempt is not None else "drawn" if capped else "drawn_uncapped"
    text = _EMPTY_NOTE[kind][lang == "en"]
    err_console.print(f"[yellow]{text.format(n=n, e=exempt, p=proven)}[/]")
    if bound is not None:
        text = _EMPTY_NOTE["bound_met" if bound >= n else "bound_gap"][lang == "en"]
        err_console.print(f"[yellow]{text.format(n=n, b=bound, g=n - bound)}[/]")


def _measure_table(table, title: str) -> None:  # noqa: ANN001
    """Every measure of every grid, its workload and whether it lies in the plan's band."""
    from gridpatrol.layers.grids import measure_records

    heads = {"code": "grid", "households": "households", "population": "population", "street_km": "street km",
             "area_km2": "area km²", "buildings": "buildings", "workload": "workload", "in_band": "in band",
             "exempt": "exempt"}
    rows = [{heads.get(k, k): (t("yes") if v is True else "" if v is False else _fmt(v) if v is not None else "—")
             for k, v in r.items() if k != "parent_code"} for r in measure_records(table)]
    print_table(rows, title=title)


def _data_report(coverage: dict, warnings: list[dict]) -> None:
    if coverage:
        print_table([{"area": a, "data coverage": f"{100 * c['share']:.0f} %", "km²": f"{c['area_km2']:.2f}",
                      "households/km²": f"{c['households_per_km2']:.0f}"} for a, c in coverage.items()],
                    title=t("data_coverage_title"))
    for w in warnings:
        err_console.print(f"[yellow]{t('warning_kind', kind=w['kind'])}{w['detail']}[/]")


@app.command("check-grids")
def check_grids_cmd(
    ctx: typer.Context,
    plan: Annotated[Optional[int], typer.Option(help="Plan id (default: the newest)")] = None,
    geojson: Annotated[Optional[Path], typer.Option(help="Write the problem locations to this GeoJSON")] = None,
    lang: Annotated[Optional[str], typer.Option(help="zh or en: the language of this command's output, the note on "
                                                     "grids without households included (default: gridpatrol --lang)")
                    ] = None,
) -> None:
    """Validate a plan: coverage, overlaps, nesting, contiguity, buildings, workload, codes (exit 0 = valid)."""
    from gridpatrol.layers.grids import check_grids

    lang = command_lang(ctx, lang)
    store = open_cli_store(ctx, create=False)
    with progress_steps(t("progress_check")):
        res, pid = check_grids(store, plan)
    p = res.problems
    if len(p):
        print_table([{"kind": r.kind, "severity": r.severity, "grid": r.grid_code or "",
                      "detail": r.detail} for r in p.itertuples()][:200],
                    title=t("plan_problems", pid=pid, n=len(p)) + (t("first_n", n=200) if len(p) > 200 else ""))
    s = res.summary
    if res.grids is not None:
        _measure_table(res.grids, t("plan_measures", pid=pid))
    print_table([{"check": heading(k), "value": _fmt(v)} for k, v in s.items() if k != "data_coverage"],
                title=t("plan_summary_title", pid=pid))
    _data_report(s.get("data_coverage", {}), [])
    _empty_note(s.get("empty_grids", 0), s.get("empty_grids_exempt", 0), s.get("empty_grids_proven", 0), lang,
                s.get("empty_grids_lower_bound"))
    if geojson is not None:
        from gridpatrol.layers.export import export_layer

        export_layer(store, "grid_problems", geojson, gdf=p)
        console.print(t("wrote_problems", n=len(p), path=geojson))
    if not res.valid:
        err_console.print(f"[red]{t('plan_invalid', pid=pid, n=s['errors'])}[/]")
        raise typer.Exit(1)
    console.print(f"[green]{t('plan_valid', pid=pid)}[/]")


@app.command("diff-grids")
def diff_grids_cmd(
    ctx: typer.Context,
    plan_a: Annotated[int, typer.Argument(help="Plan id A")],
    plan_b: Annotated[int, typer.Argument(help="Plan id B")],
    limit: Annotated[int, typer.Option(help="Rows of changed buildings to print")] = 50,
) -> None:
    """List buildings and households that changed grid between plans A and B."""
    from gridpatrol.layers.grids import diff_plans

    store = open_cli_store(ctx, create=False)
    changes, summary = diff_plans(store, plan_a, plan_b)
    if len(changes):
        print_table(changes.head(limit).to_dict("records"),
                    title=t("buildings_changed_title", n=len(changes)) + (t("first_n", n=limit) if len(changes) > limit else ""))
    print_table([{"item": heading(k), "value": _fmt(v)} for k, v in summary.items()], title=t("plan_diff", a=plan_a, b=plan_b))


@app.command("split-grid")
def split_grid_cmd(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="Grid code")],
    parts: Annotated[int, typer.Option(help="Number of parts")] = 2,
    force: Annotated[bool, typer.Option(help="Accept parts outside the household band")] = False,
) -> None:
    """Split a grid into N contiguous parts with balanced households (new plan version)."""
    from gridpatrol.layers.grids import split_grid

    _edit_report(split_grid(open_cli_store(ctx, create=False), code, parts, force=force))


@app.command("merge-grids")
def merge_grids_cmd(
    ctx: typer.Context,
    codes: Annotated[list[str], typer.Argument(help="Codes of adjacent grids of one area")],
    force: Annotated[bool, typer.Option(help="Accept a merged grid outside the household band")] = False,
) -> None:
    """Merge adjacent grids of one area into one (new plan version)."""
    from gridpatrol.layers.grids import merge_grids

    _edit_report(merge_grids(open_cli_store(ctx, create=False), codes, force=force))


@app.command("move-blocks")
def move_blocks_cmd(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="Code of the grid that receives the blocks")],
    items: Annotated[list[str], typer.Argument(help="Block ids, building names or way/<osm id>")],
    force: Annotated[bool, typer.Option(help="Accept grids outside the household band")] = False,
) -> None:
    """Move blocks (or the blocks of named buildings) into an adjacent grid (new plan version)."""
    from gridpatrol.layers.grids import move_blocks

    _edit_report(move_blocks(open_cli_store(ctx, create=False), to, items, force=force))


@app.command("lock-grid")
def lock_grid_cmd(ctx: typer.Context, codes: Annotated[list[str], typer.Argument(help="Grid codes")]) -> None:
    """Lock grids: edits touching them are refused (new plan version)."""
    from gridpatrol.layers.grids import set_locked

    _edit_report(set_locked(open_cli_store(ctx, create=False), codes, True))


@app.command("unlock-grid")
def unlock_grid_cmd(ctx: typer.Context, codes: Annotated[list[str], typer.Argument(help="Grid codes")]) -> None:
    """Unlock grids (new plan version)."""
    from gridpatrol.layers.grids import set_locked

    _edit_report(set_locked(open_cli_store(ctx, create=False), codes, False))


@app.command("assign-worker")
def assign_worker_cmd(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="Grid code")],
    worker: Annotated[Optional[str], typer.Argument(help="Worker (网格员) name; the service matches it to a user name. Omit to clear")] = None,
    station: Annotated[Optional[str], typer.Option(help="The grid's station (route start) as LON,LAT (see --crs)")] = None,
    crs: Annotated[Optional[str], typer.Option(help="Coordinates of --station: wgs84 (default), gcj02, bd09 or EPSG:n")] = None,
) -> None:
    """Set the responsible grid worker (网格员) and station of a grid (new plan version)."""
    from gridpatrol.layers.grids import assign_workers
    from gridpatrol.scripts.cmd_routes import parse_lonlat

    stations = {code: parse_lonlat(station, "--station", crs=crs)} if station else None
    _edit_report(assign_workers(open_cli_store(ctx, create=False), {code: worker}, stations=stations))


@app.command("assign-workers")
def assign_workers_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CSV with columns code, worker and optionally station_lon, station_lat")],
) -> None:
    """Set the workers (and stations) of many grids from a CSV file, in one new plan version."""
    import csv

    from gridpatrol.layers.grids import assign_workers

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read as CSV: {exc}") from None
    if not rows or "code" not in rows[0] or "worker" not in rows[0]:
        raise InputError(f"{path}: needs a header with the columns code and worker")
    workers, stations = {}, {}
    for line, r in enumerate(rows, start=2):
        code = (r.get("code") or "").strip()
        if not code:
            raise InputError(f"{path}, line {line}: empty code")
        workers[code] = r.get("worker")
        lon, lat = (r.get("station_lon") or "").strip(), (r.get("station_lat") or "").strip()
        if lon or lat:
            try:
                stations[code] = (float(lon), float(lat))
            except ValueError:
                raise InputError(f"{path}, line {line}: station_lon/station_lat must be numbers") from None
    _edit_report(assign_workers(open_cli_store(ctx, create=False), workers, stations=stations))


@app.command("rebalance")
def rebalance_cmd(
    ctx: typer.Context,
    codes: Annotated[list[str], typer.Argument(help="Codes of neighbouring grids of one area")],
    force: Annotated[bool, typer.Option(help="Accept grids outside the household band")] = False,
) -> None:
    """Rebalance households among neighbouring grids with few block moves (new plan version)."""
    from gridpatrol.layers.grids import rebalance_grids

    _edit_report(rebalance_grids(open_cli_store(ctx, create=False), codes, force=force))


@app.command("import-grids")
def import_grids_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Grid polygons: GeoJSON, GPKG or Shapefile")],
    crs: Annotated[Optional[str], typer.Option(help="Coordinates of the file: wgs84, gcj02, bd09 or EPSG:n")] = None,
    code_field: Annotated[Optional[str], typer.Option(help="Field with the grid code (default: 'code')")] = None,
    parent_field: Annotated[Optional[str], typer.Option(help="Field with the parent area code")] = None,
    mode: Annotated[Optional[str], typer.Option(
        help="urban (household window) or rural (whole villages, area and travel limits of the newest rural plan); "
             "default: the mode of the newest plan")] = None,
) -> None:
    """Import an existing grid layer as a new plan."""
    from gridpatrol.layers.grids import import_grids, plan_row

    store = open_cli_store(ctx, create=False)
    pid = import_grids(store, path, crs=crs, code_field=code_field, parent_field=parent_field, mode=mode)
    stored = json.loads(plan_row(store, pid)["params_json"] or "{}")
    console.print(t("plan_imported", pid=pid, path=path, mode=stored.get("mode", "urban")))
    slivers = json.loads(plan_row(store, pid)["metrics_json"] or "{}").get("slivers_absorbed", [])
    if slivers:
        moves = ", ".join(f"{s['from']}→{s['to']} {s['area_m2']:g} m²" for s in slivers[:10])
        console.print(t("slivers", n=len(slivers), moves=moves) + (" …" if len(slivers) > 10 else ""))


@app.command("map-grids")
def map_grids_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="HTML file to write")],
    plan: Annotated[Optional[int], typer.Option(help="Plan id (default: the newest)")] = None,
) -> None:
    """Write an offline HTML map of a plan (no CDN, no online tiles)."""
    from gridpatrol.layers.grids import plan_map

    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out {out} must end in .html")
    if not out.parent.exists():
        raise InputError(f"folder {out.parent} does not exist")
    store = open_cli_store(ctx, create=False)
    m = plan_map(store, plan)
    from gridpatrol.api.static_assets import save_offline

    save_offline(m, out)
    console.print(t("wrote", path=out))


@app.command("plans")
def plans_cmd(ctx: typer.Context) -> None:
    """List grid plans (versions) with their parent and share of grids in band."""
    from gridpatrol.layers.grids import list_plans

    df = list_plans(open_cli_store(ctx, create=False))
    print_table(df.to_dict("records"), title=t("grid plans"))


def _fmt(v: object) -> str:
    if isinstance(v, bool):
        return t(str(v))
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items()) or "—"
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v[:8]) + (" …" if len(v) > 8 else "")
    return str(v)


