"""CLI commands for cameras and incidents: import, closed-loop transitions, overdue list, map-click queries, linking, coverage, demo data."""
from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer
from gridpatrol.gis.errors import InputError
from gridpatrol.layers.models import MAX_ID
from gridpatrol.scripts.cli_texts import t
from gridpatrol.scripts.cliutil import (
    EncodingOption,
    SkipBadOption,
    console,
    err_console,
    open_cli_store,
    print_import_problems,
    print_table,
    progress_steps,
)

if TYPE_CHECKING:
    from gridpatrol.layers.store import Store


def _parse_deadlines(spec: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise InputError(f"--deadline item {item!r} is not state=hours", hint="e.g. --deadline reported=1,assigned=48")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise InputError(f"--deadline {k}: {v!r} is not a number of hours") from None
    return out


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{value!r} is not an ISO date/time", hint="e.g. 2026-03-01T08:30 or 2026-03-01T08:30+08:00") from None


app = typer.Typer()


def _warn(res) -> None:  # noqa: ANN001
    print_import_problems(res, {"bad_rows": "bad_rows", "no_coordinates": "no_coordinates"})


def _import_file(ctx: typer.Context, path: Path, run: Callable[[Store, Callable[[str], None]], Any]) -> None:
    """Import ``path`` with ``run(store, progress)`` under a spinner; print what it counted and the rows it left out."""
    store = open_cli_store(ctx)
    with progress_steps(t("progress_import", name=path.name)) as step:
        res = run(store, step)
    print_table([{"what": k, "count": v} for k, v in res.counts.items()], title=t("imported", name=path.name))
    _warn(res)


@app.command("import-cameras")
def import_cameras_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Camera list: CSV (code,name,project,lon,lat,…), GeoJSON or GPKG")],
    crs: Annotated[str, typer.Option(help="Coordinates of the file: wgs84, gcj02, bd09 or EPSG:n")] = "wgs84",
    map_: Annotated[Optional[str], typer.Option("--map", help="Column mapping ours=theirs,… e.g. code=ID,lon=Longitude,lat=Latitude")] = None,
    code_prefix: Annotated[Optional[str], typer.Option(help="Prefix for non-GB/T codes, e.g. baltimore: (makes ID 277 → baltimore:277)")] = None,
    project: Annotated[Optional[str], typer.Option(help="Project for rows without one: skynet, sharp_eyes, other")] = None,
    skip_bad: SkipBadOption = False,
    encoding: EncodingOption = None,
) -> None:
    """Import cameras (Skynet 天网 / Sharp Eyes 雪亮 / other) into the camera registry."""
    from gridpatrol.layers.cameras import import_cameras

    _import_file(ctx, path, lambda store, step: import_cameras(
        store, path, crs=crs, mapping=map_, code_prefix=code_prefix, project=project, skip_bad=skip_bad, progress=step,
        encoding=encoding))


@app.command("import-incidents")
def import_incidents_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Incidents: CSV, JSON array of records (e.g. Open Baltimore crime) or GeoJSON")],
    crs: Annotated[str, typer.Option(help="Coordinates of the file: wgs84, gcj02, bd09 or EPSG:n")] = "wgs84",
    map_: Annotated[Optional[str], typer.Option("--map", help="Column mapping ours=theirs,… e.g. occurred_at=CrimeDate,time=CrimeTime,category=Description,lon=Longitude,lat=Latitude")] = None,
    state: Annotated[str, typer.Option(help="State of rows without one (e.g. closed for historical records)")] = "reported",
    tz: Annotated[str, typer.Option(help="Time zone of times without one, e.g. Asia/Shanghai")] = "UTC",
    skip_bad: SkipBadOption = False,
    encoding: EncodingOption = None,
) -> None:
    """Import incidents; rows without coordinates are listed, grids/workers attached, duplicates flagged."""
    from gridpatrol.layers.incidents import import_incidents

    _import_file(ctx, path, lambda store, step: import_incidents(
        store, path, crs=crs, mapping=map_, state=state, tz=tz, skip_bad=skip_bad, progress=step, encoding=encoding))


@app.command("add-incident")
def add_incident_cmd(
    ctx: typer.Context,
    lon: Annotated[float, typer.Option(help="Longitude")],
    lat: Annotated[float, typer.Option(help="Latitude")],
    category: Annotated[str, typer.Option(help="Category, e.g. 矛盾纠纷, 治安, 消防安全, 环境卫生")],
    description: Annotated[Optional[str], typer.Option(help="What happened")] = None,
    reporter: Annotated[Optional[str], typer.Option(help="Who reported it")] = None,
    source: Annotated[Optional[str], typer.Option(help="Channel: patrol, hotline 12345, app, …")] = None,
    at: Annotated[Optional[str], typer.Option(help="When (ISO; default now)")] = None,
    crs: Annotated[str, typer.Option(help="wgs84, gcj02 or bd09")] = "wgs84",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Register an incident (发现); its grid and worker are attached, duplicates flagged."""
    from gridpatrol.layers.incidents import create_incident

    store = open_cli_store(ctx)
    res = create_incident(store, lon=lon, lat=lat, category=category, description=description,
                          reporter=reporter, source=source, occurred_at=_parse_time(at), crs=crs, actor=reporter)
    out = {k: res[k] for k in ("id", "category", "state", "grid_code", "worker", "duplicate_of", "lon", "lat")}
    out["occurred_at"] = res["occurred_at"].isoformat()
    if as_json:
        print(json.dumps(out, ensure_ascii=False))
        return
    console.print(t("incident_reported", id=out["id"], grid=out["grid_code"] or t("none"),
                    worker=out["worker"] or t("none")))
    if out["duplicate_of"]:
        err_console.print(f"[yellow]{t('duplicate', id=out['duplicate_of'])}[/] " + t("duplicate_why"))


@app.command("advance-incident")
def advance_incident_cmd(
    ctx: typer.Context,
    incident_id: Annotated[int, typer.Argument(help="Incident id", min=1, max=MAX_ID)],
    to: Annotated[str, typer.Option("--to", help="New state: handled 处置, escalated 上报, assigned 交办, completed 办结, feedback 反馈, revisited 回访, closed 结案")],
    note: Annotated[Optional[str], typer.Option(help="Why / what was done")] = None,
    actor: Annotated[Optional[str], typer.Option(help="Who does it")] = None,
    version: Annotated[Optional[int], typer.Option(help="Refuse if the incident is no longer at this version", min=1, max=MAX_ID)] = None,
) -> None:
    """Move an incident through the closed loop (illegal transitions are refused)."""
    from gridpatrol.gis.incidents import STATES
    from gridpatrol.layers.incidents import advance_incident

    store = open_cli_store(ctx, create=False)
    res = advance_incident(store, incident_id, to, actor=actor, note=note, expected_version=version)
    console.print(t("incident_advanced", id=res["id"], a=res["from_state"], a_zh=STATES[res["from_state"]],
                    b=res["to_state"], b_zh=STATES[res["to_state"]], v=res["version"]))


@app.command("incident-events")
def incident_events_cmd(ctx: typer.Context, incident_id: Annotated[int, typer.Argument(help="Incident id", min=1, max=MAX_ID)]) -> None:
    """The event history of an incident."""
    from gridpatrol.layers.incidents import incident_events

    store = open_cli_store(ctx, create=False)
    df = incident_events(store, incident_id)
    print_table(df.astype(str).to_dict("records"), title=t("incident_title", id=incident_id))


@app.command("overdue-incidents")
def overdue_cmd(
    ctx: typer.Context,
    deadline: Annotated[Optional[str], typer.Option(help="Deadlines in hours, state=hours,… (defaults: reported=2, handled=24, escalated=4, assigned=72, completed=24, feedback=72, revisited=24)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Open incidents past the deadline of their current stage, most overdue first."""
    from gridpatrol.layers.incidents import overdue_incidents

    store = open_cli_store(ctx, create=False)
    df = overdue_incidents(store, deadlines=_parse_deadlines(deadline))
    cols = ["id", "category", "state", "state_zh", "grid_code", "worker", "due_at", "overdue_h"]
    df = df[cols].assign(due_at=df["due_at"].astype(str), overdue_h=df["overdue_h"].round(1))
    df = df.astype(object).where(df.notna(), None)
    if as_json:
        print(json.dumps(df.to_dict("records"), ensure_ascii=False))
        return
    print_table(df.to_dict("records"), title=t("overdue_title", n=len(df)))


@app.command("cameras-at")
def cameras_at_cmd(
    ctx: typer.Context,
    lon: Annotated[float, typer.Argument(help="Longitude")],
    lat: Annotated[float, typer.Argument(help="Latitude")],
    radius: Annotated[Optional[float], typer.Option(help="Cameras within this many metres (default: whose range reaches the point)")] = None,
    in_view: Annotated[bool, typer.Option("--in-view", help="Only cameras whose field of view contains the point")] = False,
    crs: Annotated[str, typer.Option(help="Coordinates given in wgs84, gcj02 or bd09")] = "wgs84",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list")] = False,
) -> None:
    """Cameras around a point, ranked: in view first, online first, nearest first."""
    import numpy as np
    from gridpatrol.layers.cameras import cameras_at, convert_crs

    x, y = convert_crs(np.array([lon]), np.array([lat]), crs)
    store = open_cli_store(ctx, create=False)
    df = cameras_at(store, float(x[0]), float(y[0]), radius_m=radius, in_view_only=in_view)
    rows = [{"code": r.code, "name": r.name, "project": r.project, "distance_m": round(float(r.distance_m), 1),
             "bearing_deg": round(float(r.bearing_deg), 1), "in_view": bool(r.in_view), "online": bool(r.online),
             "status": r.status, "camera_type": r.camera_type} for r in df.itertuples()]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    print_table(rows, title=t("cameras_title", n=len(rows)))


@app.command("lookup")
def lookup_cmd(
    ctx: typer.Context,
    lon: Annotated[float, typer.Argument(help="Longitude (see --crs)")],
    lat: Annotated[float, typer.Argument(help="Latitude (see --crs)")],
    at: Annotated[Optional[str], typer.Option(help="Time (ISO; default now)")] = None,
    crs: Annotated[str, typer.Option(help="Coordinates given in wgs84, gcj02 or bd09")] = "wgs84",
) -> None:
    """Map click: grid and worker, incidents within 200 m in the last 90 days, cameras in view (JSON)."""
    import numpy as np
    from gridpatrol.layers.cameras import convert_crs
    from gridpatrol.layers.incidents import lookup

    x, y = convert_crs(np.array([lon]), np.array([lat]), crs)
    store = open_cli_store(ctx, create=False)
    print(json.dumps(lookup(store, float(x[0]), float(y[0]), _parse_time(at)), ensure_ascii=False, indent=1))


@app.command("link-incidents")
def link_incidents_cmd(
    ctx: typer.Context,
    radius: Annotated[Optional[float], typer.Option(help="Pairs within this many metres (default: within each camera's range)")] = None,
    in_view: Annotated[bool, typer.Option("--in-view", help="Only pairs where the camera sees the incident")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Write the pairs to this CSV file")] = None,
) -> None:
    """Link every incident to the cameras around it (one row per incident–camera pair)."""
    from gridpatrol.layers.cameras import link_incidents

    store = open_cli_store(ctx, create=False)
    with progress_steps(t("progress_linking")) as step:
        step(t("reading_cameras"))
        df = link_incidents(store, radius_m=radius, in_view_only=in_view)
    if out is not None:
        df.to_csv(out, index=False, quoting=csv.QUOTE_MINIMAL)
        console.print(t("wrote_pairs", n=len(df), inc=df["incident_id"].nunique(), view=int(df["in_view"].sum()),
                        path=out))
        return
    print_table(df.head(50).to_dict("records"), title=t("pairs_title", n=len(df)))


@app.command("camera-coverage")
def camera_coverage_cmd(
    ctx: typer.Context,
    plan: Annotated[Optional[int], typer.Option(help="Grid plan id (default: the newest)")] = None,
    step_m: Annotated[float, typer.Option(help="Street pieces of at most this length, metres")] = 5.0,
    online_only: Annotated[bool, typer.Option(help="Count only online cameras")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Share of each grid's street length seen by at least one camera (lowest first)."""
    from gridpatrol.layers.cameras import camera_coverage

    store = open_cli_store(ctx, create=False)
    df = camera_coverage(store, plan_id=plan, step_m=step_m, online_only=online_only)
    df = df.assign(street_m=df["street_m"].round(0), seen_m=df["seen_m"].round(0), share=df["share"].round(3))
    if as_json:
        print(json.dumps(df.to_dict("records"), ensure_ascii=False))
        return
    print_table(df.to_dict("records"), title=t("coverage_title"))


@app.command("synth-demo-data")
def synth_demo_cmd(
    ctx: typer.Context,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data)")] = 0,
    county: Annotated[str, typer.Option(help="6-digit county code for device codes, e.g. 510104 (锦江区)")] = "510104",
    incidents: Annotated[int, typer.Option(help="Number of incidents over the year")] = 2000,
    year: Annotated[Optional[int], typer.Option(help="Calendar year of the incidents (default: the last 365 days)")] = None,
) -> None:
    """Generate SYNTHETIC Skynet/Sharp Eyes cameras and a year of incidents from the stored streets."""
    from gridpatrol.layers.incidents import synth_demo_data

    store = open_cli_store(ctx, create=False)
    with progress_steps(t("progress_synth")) as step:
        counts = synth_demo_data(store, seed=seed, county_code=county, n_incidents=incidents, year=year, progress=step)
    print_table([{"what": k, "count": v} for k, v in counts.items()], title=t("synth_title"))
