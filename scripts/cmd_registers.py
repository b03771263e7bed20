"""CLI command for household registers: import-households."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from gridpatrol.gis.errors import InputError
from gridpatrol.scripts.cli_texts import t
from gridpatrol.scripts.cliutil import (
    EncodingOption,
    SkipBadOption,
    console,
    open_cli_store,
    print_import_problems,
    print_table,
    progress_steps,
)

app = typer.Typer()


@app.command("import-households")
def import_households_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Register: .xlsx/.xls, CSV (UTF-8 or GB18030), GeoJSON, GeoPackage or zipped Shapefile")],
    crs: Annotated[Optional[str], typer.Option(help="Coordinates: wgs84, gcj02, bd09, cgcs2000, cgcs2000-gk3-35, cgcs2000-gk3-cm105 or EPSG:n (default: the file's own, else wgs84)")] = None,
    sheet: Annotated[Optional[str], typer.Option(help="Excel sheet (default: the first with a header row)")] = None,
    map_: Annotated[Optional[str], typer.Option("--map", help="Column mapping ours=theirs,… e.g. households=住户,address=门牌 (ours: address, lon, lat, households, population, building_code, use, levels)")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace the register data imported before")] = False,
    add: Annotated[bool, typer.Option("--add", help="Add this file to the register data imported before")] = False,
    skip_bad: SkipBadOption = False,
    tolerance_m: Annotated[float, typer.Option(help="A point outside every building joins the nearest one within this distance (m)")] = 30.0,
    encoding: EncodingOption = None,
) -> None:
    """Import a household register (实有人口/房屋登记表): buildings take their households from it."""
    from gridpatrol.layers.registers import import_households

    if replace and add:
        raise InputError("--replace and --add exclude each other")
    store = open_cli_store(ctx)
    with progress_steps(t("progress_import", name=path.name)) as step:
        res = import_households(store, path, crs=crs, sheet=sheet, mapping=map_,
                                mode="replace" if replace else "add" if add else None, skip_bad=skip_bad,
                                tolerance_m=tolerance_m, encoding=encoding, progress=step)
    counts = dict(res.counts)
    by_source = counts.pop("buildings_by_source", {})
    print_table([{"what": k, "count": v} for k, v in counts.items()], title=t("imported", name=path.name))
    print_table([{"household source": k, "buildings": v} for k, v in by_source.items()],
                title=t("buildings by household source"))
    print_import_problems(res, {"bad_rows": "bad_rows", "unmatched": "unmatched"})
    console.print(t("register_rows", rows=counts["rows"], households=counts["households"]))
