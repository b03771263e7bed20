"""Read household register files (Excel, CSV, GeoJSON, GeoPackage, zipped Shapefile) into one table with the row numbers a clerk sees."""
from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.registers import HEADER_SYNONYMS, REGISTER_COLUMNS, column_names, find_header_row
from gridpatrol.layers.csvtext import decode_text

EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
CSV_SUFFIXES = (".csv", ".txt")
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".zip", ".shp")
SUFFIXES = EXCEL_SUFFIXES + CSV_SUFFIXES + VECTOR_SUFFIXES


@dataclass
class RegisterTable:
    """A register as read: our columns (text cells), the clerk's row numbers, geometries if any.

    ``rows``: the row number shown where the clerk looks (Excel/CSV: the sheet row, title rows
    included; vector files: the feature number from 1). ``geoms``: shapely geometries in
    ``file_crs`` (None for tables whose coordinates are in lon/lat columns).
    """

    df: pd.DataFrame
    rows: np.ndarray
    row_word: str  # "row" (sheet/CSV) or "feature"
    geoms: np.ndarray | None = None
    file_crs: str | None = None
    sheet: str | None = None


def _table_from_rows(rows: list[list[object]], mapping: dict[str, str], where: str) -> RegisterTable:
    """Our columns from a sheet's rows: find the header row, name the columns, keep non-blank rows."""
    try:
        h = find_header_row(rows, extra=list(mapping.values()))
    except InputError as exc:
        raise InputError(f"{where}: {exc.message}", hint=exc.hint) from None
    try:
        names = column_names(rows[h], mapping)
    except InputError as exc:
        raise InputError(f"{where}: {exc.message}", hint=exc.hint) from None
    data, numbers = [], []
    for i in range(h + 1, len(rows)):
        row = rows[i]
        if not any(str(c).strip() for c in row if c is not None):
            continue  # blank rows between blocks of a sheet
        data.append({ours: _cell(row[pos]) if pos < len(row) else "" for pos, ours in names.items()})
        numbers.append(i + 1)
    df = pd.DataFrame(data, columns=[n for n in REGISTER_COLUMNS if n in names.values()])
    return RegisterTable(df=df, rows=np.asarray(numbers, dtype=np.int64), row_word="row")


def _cell(v: object) -> str:
    """A cell as text: whole floats without ".0" (Excel stores 12 as 12.0), blanks as ""."""
    if v is None:
        return ""
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    return str(v).strip()


def _read_excel(path: Path, sheet: str | None, mapping: dict[str, str]) -> RegisterTable:
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types for damaged or encrypted files
        raise InputError(f"{path}: cannot read as an Excel workbook: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                         hint="save it again from Excel/WPS as .xlsx") from None
    names = list(wb.sheet_names)
    if sheet is not None and sheet not in names:
        raise InputError(f"{path}: no sheet named {sheet!r}", hint="sheets: " + ", ".join(names))
    candidates = [sheet] if sheet is not None else names
    first_error: InputError | None = None
    for name in candidates:
        # skip_empty_area=False keeps leading blank rows, so list index + 1 is the Excel row number
        rows = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
        try:
            table = _table_from_rows(rows, mapping, f"{path} sheet {name!r}")
        except InputError as exc:
            first_error = first_error or exc
            continue
        table.sheet = name
        return table
    assert first_error is not None
    if len(candidates) > 1:
        raise InputError(f"{path}: no sheet has a header row naming two known columns ({', '.join(names)})",
                         hint=first_error.hint)
    raise first_error


def _read_csv(path: Path, encoding: str | None, mapping: dict[str, str]) -> RegisterTable:
    text, enc = decode_text(path, encoding=encoding, known=(*HEADER_SYNONYMS, *mapping.values()))
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    except csv.Error as exc:
        raise InputError(f"{path}: not a readable CSV file: {exc}") from None
    table = _table_from_rows(rows, mapping, f"{path} (read as {enc.upper().replace('-SIG', '')})")
    return table


def _read_vector(path: Path, mapping: dict[str, str]) -> RegisterTable:
    target = path
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as z:
                shps = [n for n in z.namelist() if n.lower().endswith(".shp")]
        except zipfile.BadZipFile:
            raise InputError(f"{path}: not a zip file") from None
        if len(shps) != 1:
            raise InputError(f"{path}: a zipped Shapefile holds exactly one .shp; this one holds {len(shps)}",
                             hint="zip the .shp, .shx, .dbf and .prj of one layer")
        target = f"/vsizip/{path}/{shps[0]}"
    try:
        gdf = pyogrio.read_dataframe(target)
    except Exception as exc:  # pyogrio raises several error types for unreadable files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot read as GeoJSON, GeoPackage or Shapefile: {first}") from None
    spatial = isinstance(gdf, gpd.GeoDataFrame)  # a GeoPackage attribute table has no geometry
    attrs = pd.DataFrame(gdf.drop(columns=gdf.geometry.name)) if spatial else pd.DataFrame(gdf)
    header = [str(c) for c in attrs.columns]
    try:
        names = column_names(header, mapping)
    except InputError as exc:
        raise InputError(f"{path}: {exc.message}", hint=exc.hint) from None
    df = pd.DataFrame({ours: [_cell(v) if not (isinstance(v, float) and np.isnan(v)) else ""
                              for v in attrs.iloc[:, pos]] for pos, ours in names.items()})
    df = df[[n for n in REGISTER_COLUMNS if n in df.columns]]
    geoms = gdf.geometry.to_numpy() if spatial else None
    crs = gdf.crs.to_string() if spatial and gdf.crs is not None else None
    return RegisterTable(df=df, rows=np.arange(1, len(df) + 1, dtype=np.int64), row_word="feature",
                         geoms=geoms, file_crs=crs)


def read_register(path: Path, *, sheet: str | None = None, mapping: dict[str, str] | None = None,
                  encoding: str | None = None) -> RegisterTable:
    """The register at ``path`` as a :class:`RegisterTable`; InputError naming the file otherwise.

    Excel and CSV: the header row is found (title and blank rows above it are skipped), Chinese
    headers are recognised (gis.registers.HEADER_SYNONYMS), ``mapping`` (ours → theirs) first.
    """
    mapping = mapping or {}
    if not path.exists():
        raise InputError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty")
    suffix = path.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        return _read_excel(path, sheet, mapping)
    if sheet is not None:
        raise InputError(f"{path}: --sheet is for Excel workbooks, this is a {suffix} file")
    if suffix in CSV_SUFFIXES:
        return _read_csv(path, encoding, mapping)
    if suffix == ".json":
        try:
            doc = json.loads(path.read_text(encoding="utf-8-sig"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InputError(f"{path}: not valid JSON: {exc}") from None
        if not (isinstance(doc, dict) and doc.get("type") == "FeatureCollection"):
            raise InputError(f"{path}: expected a GeoJSON FeatureCollection")
    if suffix in VECTOR_SUFFIXES:
        return _read_vector(path, mapping)
    raise InputError(f"{path}: unknown file kind {suffix or '(no suffix)'}",
                     hint="registers are .xlsx/.xls, .csv, .geojson, .gpkg or a zipped Shapefile (.zip)")
