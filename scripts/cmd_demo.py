"""`gridpatrol demo`: build the Chengdu demo store (import, grids, routes, synthetic data) and serve it."""
from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Annotated

import typer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "chengdu"
# GB/T 2260 codes of the five central districts of 成都市 (510100) bundled with the data.
CHENGDU_DISTRICTS = {
    "510104": "锦江区",
    "510105": "青羊区",
    "510106": "金牛区",
    "510107": "武侯区",
    "510108": "成华区",
}


app = typer.Typer()


@app.command("demo")
def demo_cmd(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="Folder with chengdu.osm and the 5101xx.geojson district files (GCJ-02)")] = DEFAULT_DATA,
    out: Annotated[Path, typer.Option(help="Folder for the demo store, map and sample route sheet")] = Path("demo-out"),
    seed: Annotated[int, typer.Option(help="Seed of the grid drawing and of the synthetic cameras/incidents")] = 1,
    incidents: Annotated[int, typer.Option(help="Synthetic incidents over a year")] = 3000,
    serve: Annotated[bool, typer.Option(help="Serve the result at http://HOST:PORT when done")] = True,
    host: Annotated[str, typer.Option(help="Address to serve on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on")] = 8000,
    route_time_limit_s: Annotated[float, typer.Option(help="Time limit per grid for the driving/mixed solver")] = 10.0,
) -> None:
    """Build the Chengdu demo (import, GCJ-02 district boundaries, grids, patrol routes, synthetic
    cameras and incidents, a demo admin) into a fresh store and serve it locally."""
    from gridpatrol.api.static_assets import save_offline
    from gridpatrol.gis.errors import InputError
    from gridpatrol.layers.grids import (
        PlanParams,
        assign_workers,
        check_grids,
        draw_grids,
        plan_map,
        read_grids,
    )
    from gridpatrol.layers.importing import import_areas, import_osm, prepare_osm
    from gridpatrol.layers.incidents import synth_demo_data
    from gridpatrol.layers.routes import grid_targets, plan_routes, print_route
    from gridpatrol.layers.store import open_store
    from gridpatrol.layers.users import create_user
    from gridpatrol.scripts.cli_texts import t
    from gridpatrol.scripts.cliutil import (
        cli_options,
        console,
        err_console,
        print_table,
        progress_steps,
    )

    osm = data / "chengdu.osm"
    boundaries = [data / f"{code}.geojson" for code in CHENGDU_DISTRICTS]
    for f in [osm, *boundaries]:
        if not f.exists():
            raise InputError(f"demo data missing: {f}", hint="pass --data with the folder of the Chengdu extract")
    out.mkdir(parents=True, exist_ok=True)
    url = cli_options(ctx).db
    if not url:
        gpkg = out / "chengdu-demo.gpkg"
        gpkg.unlink(missing_ok=True)  # the demo always starts from a fresh store
        url = f"gpkg:///{gpkg.resolve()}"
    timings: list[dict] = []

    def timed(label: str, fn):  # noqa: ANN001, ANN202
        with progress_steps(label) as step:
            t = time.perf_counter()
            result = fn(step)
            timings.append({"step": label, "seconds": f"{time.perf_counter() - t:.1f}"})
        err_console.print(f"[green]✓[/] {label} ({timings[-1]['seconds']} s)")
        return result

    prepared = timed(t("demo_read"), lambda step: prepare_osm(osm, progress=step))
    store = open_store(url)
    res = timed(t("demo_import"), lambda step: import_osm(store, prepared, progress=step))

    def areas(step):  # noqa: ANN001, ANN202
        for f in boundaries:
            step(f.name)
            import_areas(store, f, crs="gcj02", level="district", code=f.stem,
                         name=CHENGDU_DISTRICTS[f.stem], parent_code="510100")

    timed(t("demo_areas"), areas)
    plan_id = timed(t("progress_draw"), lambda step: draw_grids(store, PlanParams(seed=seed), progress=step,
                                                           created_by="demo", name="demo plan"))
    # Synthetic grid workers, one per grid, named after the district (marked 合成 = synthetic).
    drawn = read_grids(store, plan_id)
    plan_id = assign_workers(store, {
        code: f"{CHENGDU_DISTRICTS.get(code[:6], '')}网格员{code[-3:]}（合成）" for code in drawn["code"]
    }, created_by="demo").plan_id
    check, _ = check_grids(store, plan_id)
    targets = grid_targets(store, plan_id=plan_id)
    outcomes = timed(t("demo_routes", n=len(targets)),
                     lambda step: plan_routes(store, targets, mode="walk", skip_failures=True,
                                              time_limit_s=route_time_limit_s, progress=step))
    synth = timed(t("demo_synth"),
                  lambda step: synth_demo_data(store, seed=seed, county_code="510104",
                                               n_incidents=incidents, progress=step))
    password = secrets.token_urlsafe(12)
    create_user(store, "demo-admin", "admin", password, actor="demo")

    def outputs(step):  # noqa: ANN001, ANN202
        step("grid map")
        save_offline(plan_map(store, plan_id), out / "grids.html")
        ok = [o for o in outcomes if o.ok]
        if ok:
            step("route sheet")
            code = ok[0].summary["grid"]
            print_route(store, code, out / f"route-{code}.pdf", gpx=out / f"route-{code}.gpx")

    timed(t("demo_outputs"), outputs)
    routed = sum(1 for o in outcomes if o.ok)
    verdict = t("verdict_valid") if check.valid else t("n_problems", n=check.summary.get("errors", "?"))
    print_table([
        {"what": t("demo_roads"), "value": f"{res.counts['road_segments']} / "
                                          f"{res.counts['buildings'] + res.counts['landuse_estimates']}"},
        {"what": t("demo_grids", pid=plan_id), "value": t("demo_check", n=len(targets), check=verdict)},
        {"what": t("routes"), "value": t("demo_routes_row", ok=routed, n=len(targets))},
        *({"what": k, "value": v} for k, v in synth.items()),
    ], title=t("demo_title"))
    print_table(timings, title=t("timings"))
    failed = [o for o in outcomes if not o.ok]
    if failed:
        reasons: dict[str, list[str]] = {}
        for o in failed:
            reasons.setdefault((o.error or "").split(": ", 1)[-1], []).append(o.code)
        for why, codes in reasons.items():
            codes_text = ", ".join(codes[:6]) + (" …" if len(codes) > 6 else "")
            err_console.print(f"[yellow]{t('demo_no_route', n=len(codes), codes=codes_text, why=why)}[/]")
    console.print(t("demo_files", out=out))
    console.print(t("demo_admin", pw=password))
    store.dispose()
    if not serve:
        return
    import os

    import uvicorn
    from gridpatrol.api.app import create_app

    os.environ.setdefault("GRIDPATROL_SECRET_KEY", secrets.token_urlsafe(32))
    console.print(t("demo_serving", host=host, port=port))
    uvicorn.run(create_app(url), host=host, port=port, log_level="warning")
