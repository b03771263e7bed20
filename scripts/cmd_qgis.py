"""CLI command export-qgis: a QGIS project next to a GeoPackage copy of the layers."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from gridpatrol.scripts.cli_texts import t
from gridpatrol.scripts.cliutil import console, county_zone, open_cli_store

app = typer.Typer()


@app.command("export-qgis")
def export_qgis_cmd(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Folder to write gridpatrol.qgs and gridpatrol.gpkg into")],
    title: Annotated[str, typer.Option(help="Project title shown in QGIS")] = "gridpatrol",
    tz: Annotated[Optional[str], typer.Option(help="Time zone of the times written (default: the county's, setting "
                                                   "timezone / GRIDPATROL_TIMEZONE, else Asia/Shanghai)")] = None,
) -> None:
    """Write a QGIS project styled as the web maps (workload colours, grid codes and street
    names as labels, route arrows) and the GeoPackage it reads, so a planner opens one file."""
    from gridpatrol.layers.qgis_project import export_qgis

    zone = county_zone(tz)
    store = open_cli_store(ctx, create=False)
    try:
        qgs, gpkg, layers = export_qgis(store, folder, title=title, tz=zone)
    finally:
        store.dispose()
    console.print(t("wrote_qgis", qgs=qgs, gpkg=gpkg, layers=", ".join(layers)))
