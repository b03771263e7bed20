"""The ``gridpatrol`` command line: parse arguments, show progress, call layers/gis functions."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from gridpatrol.gis.errors import GridPatrolError
from gridpatrol.scripts import (
    cmd_cameras,
    cmd_demo,
    cmd_grids,
    cmd_jobs,
    cmd_qgis,
    cmd_registers,
    cmd_routes,
    cmd_service,
    cmd_tracks,
    cmd_trust,
)
from gridpatrol.scripts.cli_texts import LANG_ENV, check_lang, heading, set_lang, t
from gridpatrol.scripts.cliutil import (
    CliOptions,
    console,
    county_zone,
    err_console,
    open_cli_store,
    print_table,
    progress_steps,
)

app = typer.Typer(
    name="gridpatrol",
    help="Grid-based community governance GIS: grids (网格), patrol routes, cameras and incidents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    ctx: typer.Context,
    db: Annotated[
        Optional[str],
        typer.Option("--db", help="Store URL: a .gpkg path (default ./gridpatrol.gpkg) or postgresql+psycopg://…",
                     envvar="GRIDPATROL_DB"),
    ] = None,
    lang: Annotated[
        str,
        typer.Option("--lang", help="Language of what the commands print: zh (default) or en; a command's own "
                                    "--lang wins. Machine-readable output (--json, files) is the same in both",
                     envvar=LANG_ENV),
    ] = "zh",
) -> None:
    set_lang(check_lang(lang, where=f"--lang / {LANG_ENV}"))
    ctx.obj = CliOptions(db=db, lang=lang)


@app.command("import-osm")
def import_osm_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="OSM extract: .osm, .osm.bz2 or .osm.pbf")],
    boundary: Annotated[Optional[Path], typer.Option(help="Clip everything to the polygon(s) of this file")] = None,
    boundary_crs: Annotated[
        Optional[str], typer.Option(help="CRS of --boundary: wgs84, gcj02, bd09 or EPSG:n (default: as declared)")
    ] = None,
    m2_per_household: Annotated[float, typer.Option(help="Gross floor area per household, m²")] = 100.0,
    default_levels: Annotated[float, typer.Option(help="Levels of residential buildings without building:levels")] = 6.0,
    landuse_households_per_ha: Annotated[
        float, typer.Option(help="Households per hectare of landuse=residential without mapped buildings")
    ] = 150.0,
) -> None:
    """Import streets, buildings, barriers, admin areas and cameras from an OSM extract."""
    from gridpatrol.gis.osm import OsmOptions
    from gridpatrol.layers.importing import import_osm, prepare_osm

    opts = OsmOptions(m2_per_household=m2_per_household, default_levels=default_levels,
                      landuse_households_per_ha=landuse_households_per_ha)
    # Read and check the input before the store is opened, so a broken file never creates
    # or touches a store.
    with progress_steps(t("progress_import", name=path.name)) as step:
        prepared = prepare_osm(path, boundary=boundary, boundary_crs=boundary_crs, options=opts, progress=step)
        store = open_cli_store(ctx)
        res = import_osm(store, prepared, progress=step)
    print_table([{"layer": k, "count": v} for k, v in res.counts.items()], title=t("imported", name=path.name))
    dropped = {k: v for k, v in res.dropped.items() if v}
    for k, ids in dropped.items():
        sample = ", ".join(str(i) for i in ids[:10]) + (" …" if len(ids) > 10 else "")
        err_console.print(f"[yellow]{t('dropped_cut', n=len(ids), what=k.replace('_', ' '), sample=sample)}[/]")


@app.command("import-areas")
def import_areas_cmd(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Vector files (GeoJSON, GPKG, Shapefile) of area polygons")],
    crs: Annotated[Optional[str], typer.Option(help="Coordinates of the files: wgs84, gcj02, bd09 or EPSG:n")] = None,
    level: Annotated[str, typer.Option(help="county, district, street or community")] = "district",
    code_field: Annotated[Optional[str], typer.Option(help="Field with the administrative code")] = None,
    name_field: Annotated[Optional[str], typer.Option(help="Field with the name")] = None,
    code: Annotated[Optional[str], typer.Option(help="Code for a single-area file (default: the file name)")] = None,
    name: Annotated[Optional[str], typer.Option(help="Name for a single-area file")] = None,
    parent_code: Annotated[Optional[str], typer.Option(help="Code of the parent area")] = None,
) -> None:
    """Import administrative areas (county/district/street/community boundaries)."""
    from gridpatrol.layers.importing import import_area_files

    store = open_cli_store(ctx)
    # Every file is read and checked before anything is written: all or nothing.
    results = import_area_files(store, files, crs=crs, level=level, code_field=code_field, name_field=name_field,
                                code=code, name=name, parent_code=parent_code)
    rows = [{"file": Path(r.source).name, "areas": r.counts["areas"]} for r in results]
    print_table(rows, title=t("imported_areas", level=heading(level)))
    for w in (w for r in results for w in r.warnings):
        err_console.print(f"[yellow]{t('warning:')}{w}[/]")


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    layer: Annotated[str, typer.Argument(help="Layer: areas, roads, buildings, barriers, cameras, grids, routes, incidents, …")],
    path: Annotated[Path, typer.Argument(help="Output file: .geojson, .gpkg, .shp.zip (ArcGIS), .csv (Excel), .kml or .kmz")],
    encoding: Annotated[str, typer.Option(help="Shapefile text encoding: utf-8 or gbk")] = "utf-8",
    crs: Annotated[str, typer.Option(help="KML/KMZ coordinates: wgs84 or gcj02 (Chinese web and phone maps)")] = "wgs84",
    plan: Annotated[Optional[int], typer.Option(help="Grid plan id for grids, blocks, buildings' grid_code, routes "
                                                     "(default: the newest plan; routes: all)")] = None,
    tz: Annotated[Optional[str], typer.Option(help="Time zone of the times written, e.g. Asia/Urumqi (default: the "
                                                   "county's, setting timezone / GRIDPATROL_TIMEZONE, else Asia/Shanghai)")
                  ] = None,
) -> None:
    """Export a layer (every attribute) for GIS tools: GeoJSON, GeoPackage, zipped Shapefile, CSV with WKT, KML/KMZ.
    Times are written in the county's zone with the offset (2026-12-07T12:34:56.123456+08:00)."""
    from gridpatrol.layers.export import export_layer

    zone = county_zone(tz)
    store = open_cli_store(ctx, create=False)
    n = export_layer(store, layer, path, encoding=encoding, crs=crs, plan_id=plan, tz=zone)
    console.print(t("wrote_n", n=n, layer=layer, path=path))


@app.command("info")
def info_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """Show the store URL, schema version, and rows and extent per layer."""
    from gridpatrol.layers import migrations
    from gridpatrol.layers.importing import layer_summary

    store = open_cli_store(ctx, create=False)
    df = layer_summary(store)
    with store.engine.connect() as c:
        version = migrations.current_version(c)
    if as_json:
        print(json.dumps({"store": store.display_url(), "schema_version": version,
                          "layers": df.to_dict("records")}, ensure_ascii=False))
        return
    console.print(t("store_line", url=store.display_url(), version=version))
    print_table(df.to_dict("records"))


# Each topic module's nameless Typer app: its commands join the top level, in this order
# (the order of `gridpatrol --help`; docs/architecture.md "Adding a command").
app.add_typer(cmd_grids.app)
app.add_typer(cmd_routes.app)
app.add_typer(cmd_cameras.app)
app.add_typer(cmd_service.app)
app.add_typer(cmd_demo.app)
app.add_typer(cmd_trust.app)
app.add_typer(cmd_registers.app)
app.add_typer(cmd_qgis.app)
app.add_typer(cmd_jobs.app)
app.add_typer(cmd_tracks.app)


def _error_text(exc: GridPatrolError) -> str:
    """The error's line: its own message (shared with the API, not translated) with the hint labelled in the
    CLI's language; in English exactly ``str(exc)``."""
    if t("hint") == "hint" or not exc.hint:
        return str(exc)
    text = f"{exc.where}: {exc.message}" if exc.where else exc.message
    return f"{text}（{t('hint')}：{exc.hint}）"


def main() -> None:
    """Entry point: run the app; GridPatrolError → one clear line on stderr and its exit code."""
    try:
        app()  # standalone mode: usage errors print themselves and exit 2
    except GridPatrolError as exc:
        err_console.print(f"[red]{t('error:')}[/]{_error_text(exc)}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
