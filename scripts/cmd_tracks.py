"""CLI commands for patrol tracks: import-track, patrol-report."""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from gridpatrol.gis.errors import InputError
from gridpatrol.scripts.cli_texts import current_lang, t
from gridpatrol.scripts.cliutil import command_lang, console, county_zone, open_cli_store, print_table


def parse_date(text: str, what: str) -> date:
    """YYYY-MM-DD → date; InputError naming the option otherwise."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"日期 {text[:40]!r} 格式不对，应为 年-月-日 ({what} must be a date YYYY-MM-DD)", where=what,
                         hint="例如 2026-11-02") from None


def read_track_file(path: Path, crs: str):  # noqa: ANN201
    """A Track from a .gpx or .geojson/.json file (the extension decides); InputError naming the file."""
    from gridpatrol.gis.tracks import read_geojson, read_gpx

    if not path.is_file():
        raise InputError("no such file", where=str(path))
    data = path.read_bytes()
    if path.suffix.lower() == ".gpx":
        return read_gpx(data, crs=crs, where=str(path)), data
    if path.suffix.lower() in (".geojson", ".json"):
        return read_geojson(data, crs=crs, where=str(path)), data
    raise InputError(f"unknown track file type {path.suffix!r}", where=str(path), hint="a .gpx or .geojson file")


WORK_HOURS_TEXT = "07:00-21:00"  # = gis.tracks.WORK_HOURS_TEXT, not imported: the CLI starts without numpy
HOURS_HELP = "Working hours, local HH:MM-HH:MM; tracks with fixes outside are flagged (not counted)"
HoursOption = Annotated[str, typer.Option("--hours", envvar="GRIDPATROL_WORK_HOURS", help=HOURS_HELP)]

app = typer.Typer()


@app.command("import-track")
def import_track_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A GPX (or GeoJSON) track recorded on a patrol")],
    worker: Annotated[Optional[str], typer.Option(help="The grid worker who walked it (default: the GPX track name)")] = None,
    crs: Annotated[str, typer.Option(help="wgs84 (GPS) or gcj02 (Chinese web maps)")] = "wgs84",
    device: Annotated[Optional[str], typer.Option(help="The device that recorded it")] = None,
    tz: Annotated[Optional[str], typer.Option(help="The county's time zone for the times printed (default: the "
                                                   "setting timezone / GRIDPATROL_TIMEZONE, else Asia/Shanghai)")] = None,
    hours: HoursOption = WORK_HOURS_TEXT,
) -> None:
    """Store a recorded patrol track for a worker (the same file twice is stored once)."""
    from gridpatrol.gis.tracks import parse_work_hours
    from gridpatrol.layers.tracks import save_track

    work_hours = parse_work_hours(hours)
    tz = county_zone(tz)
    if crs not in ("wgs84", "gcj02"):
        raise InputError(f"坐标系 {crs[:40]!r} 不支持，应为 wgs84（GPS）或 gcj02（国内网络地图）"
                         f"(--crs {crs[:40]!r}: use wgs84 or gcj02)", where="--crs")
    track, raw = read_track_file(file, crs)
    name = worker or track.name
    if not name:
        raise InputError("no --worker given and the file names no track", where=str(file), hint="pass --worker NAME")
    store = open_cli_store(ctx)
    out = save_track(store, track, worker=name, source="gpx" if file.suffix.lower() == ".gpx" else "api",
                     device=device, raw=raw, hours=work_hours)
    verb = t("track_stored" if out.created else "track_already")
    from zoneinfo import ZoneInfo

    z = ZoneInfo(tz)
    console.print(t("track_line", verb=verb, id=out.track_id, name=name, n=out.n_points, tz=tz,
                    span=f"{track.start.astimezone(z):%Y-%m-%d %H:%M}–{track.end.astimezone(z):%H:%M}"))
    from gridpatrol.gis.assessment_sheet import flag_text
    from rich.markup import escape

    for f in out.flags:
        console.print(f"[yellow]{t('suspicious')}[/] {escape(flag_text(f, current_lang()))}", markup=True, highlight=False)


@app.command("patrol-report")
def patrol_report_cmd(
    ctx: typer.Context,
    worker: Annotated[str, typer.Option(help="The grid worker")],
    date_from: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (local time)")],
    date_to: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (local time)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    xlsx: Annotated[Optional[Path], typer.Option(help="Write the assessment table (考核表) as XLSX")] = None,
    pdf: Annotated[Optional[Path], typer.Option(help="Write the assessment table (考核表) as PDF")] = None,
    tz: Annotated[Optional[str], typer.Option(help="The county's time zone (default: the setting timezone / "
                                                   "GRIDPATROL_TIMEZONE, else Asia/Shanghai)")] = None,
    cycle_start: Annotated[Optional[str], typer.Option(
        "--cycle-start", help="Day 1 of the patrol calendar, YYYY-MM-DD (default: the day the routes were planned)")] = None,
    hours: HoursOption = WORK_HOURS_TEXT,
    lang: Annotated[Optional[str], typer.Option(help="Language of the printed report and the XLSX/PDF: zh or en "
                                                     "(default: gridpatrol --lang)")] = None,
) -> None:
    """Per grid and shift: streets covered by the worker's tracks, distance, time, stops, shifts done,
    missed and pending (per day on the patrol calendar)."""
    from gridpatrol.gis.assessment_sheet import TEXTS, check_lang, report_text, write_pdf, write_xlsx
    from gridpatrol.gis.tracks import parse_work_hours
    from gridpatrol.layers.patrols import patrol_report

    lang = check_lang(lang) if lang is not None else None  # the report's own message for an unknown language
    lang = command_lang(ctx, lang)
    d0, d1 = parse_date(date_from, "--from"), parse_date(date_to, "--to")
    start = parse_date(cycle_start, "--cycle-start") if cycle_start is not None else None
    work_hours = parse_work_hours(hours)
    tz = county_zone(tz)
    store = open_cli_store(ctx, create=False)
    rep = patrol_report(store, worker, d0, d1, tz=tz, cycle_start=start, hours=work_hours)
    if xlsx:
        write_xlsx(rep, xlsx, lang)
    if pdf:
        write_pdf(rep, pdf, lang)
    if as_json:
        print(json.dumps(rep, ensure_ascii=False, default=str))
        return
    from rich.markup import escape

    lines, tables = report_text(rep, lang)
    for line in lines:
        console.print(line, markup=False, highlight=False)
    for title, headers, rows in tables:
        if rows:
            print_table([{escape(h): escape(str(v)) for h, v in zip(headers, r)} for r in rows], title=escape(title),
                        translate=False)
    for f in (xlsx, pdf):
        if f:
            console.print(TEXTS["wrote"][lang == "en"].format(path=f), markup=False, highlight=False)
