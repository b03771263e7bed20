"""CLI commands for patrol routes: plan-routes, plan-visit, print-route, route-map."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from gridpatrol.gis.errors import InputError
from gridpatrol.scripts.cli_texts import heading, t
from gridpatrol.scripts.cliutil import command_lang, console, err_console, open_cli_store, print_table, progress_steps

CRS_HELP = "Coordinates typed or in files without a CRS: wgs84, gcj02 (高德/腾讯), bd09 (百度) or EPSG:n"


def parse_lonlat(text: str | None, what: str = "--start", crs: str | None = None) -> tuple[float, float] | None:
    """"LON,LAT" in ``crs`` (default WGS-84 degrees) → WGS-84 (lon, lat); InputError for anything else."""
    if text is None:
        return None
    try:
        lon, lat = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{what} must be LON,LAT in degrees, not {text!r}", hint="e.g. --start 104.0668,30.6598") from None
    if crs is not None:
        import numpy as np
        from gridpatrol.layers.cameras import convert_crs

        with np.errstate(all="ignore"):
            x, y = convert_crs(np.array([lon]), np.array([lat]), crs)
        lon, lat = float(x[0]), float(y[0])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InputError(f"{what} {text} is not a longitude,latitude pair", hint="longitude first, WGS-84 degrees")
    return lon, lat


def area_pieces(store, code: str, pieces: int):  # noqa: ANN001, ANN201
    """Targets from an administrative area cut into about ``pieces`` rectangles (before grids exist)."""
    import numpy as np
    from gridpatrol.gis.vector import cut_into_cells
    from gridpatrol.layers.models import Area
    from gridpatrol.layers.routes import Target

    areas = store.read_layer("areas", where=Area.__table__.c.code == code)
    if not len(areas):
        raise InputError(f"area {code} is not in the store", hint="import it with gridpatrol import-areas")
    n = max(1, int(np.ceil(np.sqrt(pieces))))
    cells = cut_into_cells(areas.geometry.iloc[0], n)
    out = [Target(f"{code}-{k + 1:02d}", part) for k, (_i, _j, part) in enumerate(cells)]
    return out


app = typer.Typer()


def _queue_routes(ctx: typer.Context, grid: list[str] | None, all_grids: bool, *, here_only: dict,
                  **values: object) -> None:
    """plan-routes --jobs: the job's parameters are the route's (POST /routes/plan); --all: one job per area."""
    from gridpatrol.scripts.cmd_jobs import queue_jobs

    given = [k for k, v in here_only.items() if v is not None]
    if given:
        raise InputError(f"{', '.join(given)} cannot be queued as a job", hint="plan those routes here (without --jobs)")
    store = open_cli_store(ctx, create=False)
    queue_jobs(store, "plan-routes", {**values, "grids": None if all_grids else grid}, all_grids)


@app.command("plan-routes")
def plan_routes_cmd(
    ctx: typer.Context,
    grid: Annotated[Optional[list[str]], typer.Option("--grid", help="Grid code (repeat for several)")] = None,
    all_grids: Annotated[bool, typer.Option("--all", help="Every grid of the newest plan")] = False,
    polygon: Annotated[Optional[Path], typer.Option(help="Cover the polygon(s) of this file instead of grids")] = None,
    area: Annotated[Optional[str], typer.Option(help="Cover an administrative area cut into --pieces rectangles")] = None,
    pieces: Annotated[int, typer.Option(help="With --area: number of pieces")] = 4,
    mode: Annotated[str, typer.Option(help="walk (every street, either way) or drive (one-way streets respected)")] = "walk",
    workers: Annotated[int, typer.Option(help="Split each grid's patrol into this many closed routes")] = 1,
    start: Annotated[Optional[str], typer.Option(help="Start LON,LAT (WGS-84); default: the grid's station")] = None,
    time_limit: Annotated[float, typer.Option(help="Seconds per grid for the driving optimisation")] = 60.0,
    plan: Annotated[Optional[int], typer.Option(help="Grid plan id (default: the newest)")] = None,
    max_minutes: Annotated[Optional[float], typer.Option("--max-minutes", help="Cut a grid whose patrol takes longer into shifts of at most this many minutes")] = None,
    speed_kmh: Annotated[Optional[float], typer.Option("--speed-kmh", help="Pace for the times (default: walking 4.5, driving by road class)")] = None,
    cycle_days: Annotated[Optional[int], typer.Option("--cycle-days", help="Lay each worker's shifts out as a patrol calendar (巡查排班) over this many days, the busiest day as light as possible")] = None,
    crs: Annotated[Optional[str], typer.Option(help=CRS_HELP)] = None,
    jobs: Annotated[bool, typer.Option("--jobs", help="Queue the planning for `gridpatrol worker` instead of "
                                                      "planning here (--all: one job per planning area)")] = False,
) -> None:
    """Plan street-coverage patrol routes and store them in the routes layer."""
    from gridpatrol.layers.routes import (
        grid_targets,
        plan_routes,
        read_polygon_file,
    )

    if mode not in ("walk", "drive"):
        raise InputError(f"--mode must be walk or drive, not {mode!r}")
    chosen = sum(bool(x) for x in (grid, all_grids, polygon, area))
    if chosen != 1:
        raise InputError("say what to cover: exactly one of --grid CODE, --all, --polygon FILE, --area CODE")
    start_ll = parse_lonlat(start, crs=crs)
    if jobs:
        _queue_routes(ctx, grid, all_grids, mode=mode, workers=workers, start=start_ll, time_limit_s=time_limit,
                      plan_id=plan, here_only={"--polygon": polygon, "--area": area, "--max-minutes": max_minutes,
                                               "--speed-kmh": speed_kmh, "--cycle-days": cycle_days})
        return
    store = open_cli_store(ctx, create=False)
    if polygon is not None:
        targets = read_polygon_file(polygon)
    elif area is not None:
        targets = area_pieces(store, area, pieces)
    else:
        targets = grid_targets(store, None if all_grids else grid, plan)
    with progress_steps(t("progress_routes", mode=heading(mode))) as step:
        outcomes = plan_routes(store, targets, mode=mode, workers=workers, start=start_ll,
                               time_limit_s=time_limit, skip_failures=all_grids or area is not None, progress=step,
                               max_minutes=max_minutes, speed_kmh=speed_kmh, cycle_days=cycle_days)
    rows = []
    for o in outcomes:
        if not o.ok:
            rows.append({"grid": o.code, "routes": "-", "length_m": "-", "required_m": "-", "lower_bound_m": "-",
                         "gap": "-", "turns/km": "-", "uturns": "-", "dead_end": "-", "uturns_min": "-",
                         "uturns/km": "-", "note": o.error})
            continue
        s = o.summary
        note = "; ".join(s["warnings"]) if s["warnings"] else t("optimal" if s["exact"] else "bounded")
        if s.get("balance"):
            note += "; " + t("longest_mean", v=s["balance"])
        rows.append({"grid": o.code, "routes": s["routes"], "length_m": f"{s['length_m']:.0f}",
                     "required_m": f"{s['required_m']:.0f}", "lower_bound_m": f"{s['lower_bound_m']:.0f}",
                     "gap": f"{s['gap'] * 100:.2f}%", "turns/km": f"{s['turns_per_km']:.1f}", "uturns": s["uturns"],
                     "dead_end": s["uturns_dead_end"], "uturns_min": s["uturn_bound"],
                     "uturns/km": f"{s['uturns_per_km']:.2f}", "note": note})
    print_table(rows, title=t("routes_title", mode=heading(mode)))
    shift_rows = [{"grid": o.code, "shifts": o.summary["shifts"]["shifts"],
                   "minutes": " / ".join(f"{t / 60:.0f}" for t in o.summary["shifts"]["shift_s"]),
                   "whole_min": f"{o.summary['shifts']['whole_s'] / 60:.0f}",
                   "at_least": o.summary["shifts"]["lower_bound_shifts"],
                   "farthest_round_trip_min": f"{o.summary['shifts']['farthest_round_trip_s'] / 60:.0f}"}
                  for o in outcomes if o.ok and o.summary.get("shifts")]
    if shift_rows:
        print_table(shift_rows, title=t("shifts_title", m=max_minutes))
    calendars = {o.summary["calendar"]["worker"]: o.summary["calendar"] for o in outcomes
                 if o.ok and o.summary.get("calendar")}
    cal_rows = [{"worker": w, "day": d + 1, "shifts (grid#shift)": ", ".join(c["days"][d]) or "—",
                 "minutes": f"{c['day_s'][d] / 60:.0f}",
                 "busiest_day_at_least_min": f"{c['lower_bound_s'] / 60:.0f}" if d == 0 else "",
                 "proven_lightest": t("yes" if c["optimal"] else "no") if d == 0 else ""}
                for w, c in calendars.items() for d in range(c["cycle_days"])]
    if cal_rows:
        print_table(cal_rows, title=t("calendar_title", days=cycle_days))
    fixes = [(o.code, i) for o in outcomes if o.ok for i in o.summary.get("island_fixes", [])]
    if fixes:
        err_console.print(f"[yellow]{t('islands', n=len(fixes))}[/]")
        for code_, i in fixes[:20]:
            err_console.print(f"  {code_} {i['at'][0]:.5f},{i['at'][1]:.5f} ({i['length_m']:.0f} m): "
                              f"{i.get('why', '')}；建议：{i.get('fix', '')}", markup=False, highlight=False)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        err_console.print(f"[yellow]{t('no_route', n=len(failed))}[/]")
    console.print(t("stored_routes", n=sum(o.summary.get("routes", 0) for o in outcomes if o.ok)))


@app.command("plan-visit")
def plan_visit_cmd(
    ctx: typer.Context,
    points: Annotated[Optional[Path], typer.Option("--points", help="GeoJSON/GPKG or CSV (lon,lat[,name,importance]) of key points")] = None,
    hot_spots: Annotated[Optional[str], typer.Option("--hot-spots", help="Also visit the incident hot spots of this grid (code)")] = None,
    days: Annotated[float, typer.Option(help="With --hot-spots: incidents of the last N days")] = 90.0,
    top: Annotated[Optional[int], typer.Option(help="With --hot-spots: at most this many spots, most important first")] = None,
    radius_m: Annotated[float, typer.Option(help="With --hot-spots: incidents this close (m) form one spot")] = 50.0,
    min_incidents: Annotated[int, typer.Option(help="With --hot-spots: incidents needed for a spot")] = 2,
    budget_min: Annotated[Optional[float], typer.Option(help="Time budget in minutes: drop the least important points that do not fit")] = None,
    dwell_min: Annotated[float, typer.Option(help="Minutes spent at each point")] = 0.0,
    mode: Annotated[str, typer.Option(help="walk or drive")] = "walk",
    start: Annotated[Optional[str], typer.Option(help="Start LON,LAT; default: the grid's station with --hot-spots, else the first point")] = None,
    open_route: Annotated[bool, typer.Option("--open", help="End at the last point instead of returning")] = False,
    code: Annotated[Optional[str], typer.Option(help="Name to store the route under (default: visit, or GRID-hotspots)")] = None,
    time_limit: Annotated[float, typer.Option(help="Seconds for the optimisation")] = 10.0,
    crs: Annotated[Optional[str], typer.Option(help=CRS_HELP)] = None,
) -> None:
    """Plan a route visiting key points (schools, markets, hazards) and/or a grid's incident
    hot spots (importance grows with recent incidents), and store it."""
    import geopandas as gpd
    import pandas as pd
    from gridpatrol.layers.routes import (
        grid_targets,
        plan_visit_route,
        read_points_file,
    )

    if mode not in ("walk", "drive"):
        raise InputError(f"--mode must be walk or drive, not {mode!r}")
    if points is None and hot_spots is None:
        raise InputError("nothing to visit", hint="give --points FILE and/or --hot-spots GRID")
    store = open_cli_store(ctx, create=False)
    where = parse_lonlat(start, crs=crs)
    frames = []
    if points is not None:
        frames.append(read_points_file(points, crs=crs))
        if "raw_lonlat" in frames[0].attrs:
            from gridpatrol.layers.cameras import gcj_shift_warning

            warn = gcj_shift_warning(store, *frames[0].attrs["raw_lonlat"], crs)
            if warn:
                err_console.print(f"[yellow]{t('warning:')}{points.name}: {warn}[/]")
    if hot_spots is not None:
        from gridpatrol.layers.hotspots import grid_hot_spots

        spots = grid_hot_spots(store, hot_spots, days=days, radius_m=radius_m, min_incidents=min_incidents, top=top)
        if not len(spots):
            msg = (f"grid {hot_spots} has no hot spot: no {min_incidents} incidents within {radius_m:g} m "
                   f"of each other in the last {days:g} days")
            if points is None:
                raise InputError(msg, hint="lower --min-incidents, widen --radius-m or --days")
            err_console.print(f"[yellow]{t('no_hot_spot', grid=hot_spots, n=min_incidents, r=radius_m, days=days)}[/]")
        else:
            print_table([{"#": k + 1, "hot spot": r["name"], "importance": f"{r['importance']:.2f}",
                          "categories": r["categories"]} for k, r in spots.iterrows()],
                        title=t("hot_spots_title", grid=hot_spots, days=days))
            frames.append(spots[["name", "importance", "synthetic", "geometry"]])
        station = grid_targets(store, [hot_spots])[0].station
        if where is None and station is not None:
            where = station
    pts = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=4326)
    code = code or (f"{hot_spots}-hotspots" if hot_spots else "visit")
    with progress_steps(t("progress_visit")):
        plan, pts = plan_visit_route(store, pts, code=code, mode=mode, start=where,
                                     closed=not open_route, budget_min=budget_min, dwell_min=dwell_min,
                                     time_limit_s=time_limit)
    names = pts["name"].astype(str).tolist() if "name" in pts.columns else [f"#{i + 1}" for i in range(len(pts))]
    print_table([{"#": k + 1, "point": names[i]} for k, i in enumerate(plan.order)], title=t("visit_title", code=code))
    console.print(t("visit_length", m=plan.length_m, min=plan.duration_s / 60, lb=plan.lower_bound_m, gap=plan.gap * 100,
                    bound=plan.stats["bound"]))
    if "selection" in plan.stats:
        console.print(t("visit_budget", sel=plan.stats["selection"], got=plan.stats["importance_visited"],
                        total=plan.stats["importance_total"]))
    if plan.dropped:
        err_console.print("[yellow]" + t("not_visited") + ", ".join(names[i] for i in plan.dropped) + "[/]")


@app.command("print-route")
def print_route_cmd(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="Grid code (or the name a route was stored under)")],
    out: Annotated[Path, typer.Option("--out", help="PDF file to write (A4 route sheet)")],
    gpx: Annotated[Optional[Path], typer.Option(help="Also write a GPX track")] = None,
    gpx_crs: Annotated[str, typer.Option(help="GPX coordinates: wgs84, or gcj02 for Chinese phone map apps")] = "wgs84",
    geojson: Annotated[Optional[Path], typer.Option(help="Also write the route as GeoJSON")] = None,
    html: Annotated[Optional[Path], typer.Option(help="Also write an offline HTML map")] = None,
    lang: Annotated[Optional[str], typer.Option(help="zh or en: the route sheet's and this command's language "
                                                     "(default: gridpatrol --lang)")] = None,
    mode: Annotated[Optional[str], typer.Option(help="walk or drive when both are stored")] = None,
    worker: Annotated[int, typer.Option(help="Which of several routes (1 = first)")] = 1,
    shift: Annotated[Optional[int], typer.Option(help="Only this shift (1 = first); default: every shift, one per page")] = None,
) -> None:
    """Print a stored route: A4 PDF route sheet, and GPX/GeoJSON/HTML on request."""
    from gridpatrol.layers.routes import print_route, route_folium_map

    lang = command_lang(ctx, lang)
    if gpx_crs not in ("wgs84", "gcj02"):
        raise InputError(f"--gpx-crs must be wgs84 or gcj02, not {gpx_crs!r}")
    store = open_cli_store(ctx, create=False)
    sr = print_route(store, code, out, mode=mode, worker_index=worker - 1, lang=lang, gpx=gpx, gpx_crs=gpx_crs,
                     geojson=geojson, shift=shift)
    written = [str(out)] + [str(p) for p in (gpx, geojson) if p]
    if html:
        from gridpatrol.api.static_assets import save_offline

        save_offline(route_folium_map(store, code, mode=mode, worker_index=worker - 1), html)
        written.append(str(html))
    console.print(t("route_printed", code=code, m=sr.length_m, n=len(sr.steps)) + ", ".join(written))
