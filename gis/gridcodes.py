"""Hierarchical grid codes (行政区划代码 + 街道 + 社区 + 网格顺序码): assignment, parsing and validation.

Default code: 15 digits ``CCCCCC SSS MMM NNN`` without separators:

* ``CCCCCC``: county-level administrative code, GB/T 2260 (e.g. ``510104`` 锦江区).
* ``SSS``: street/town (街道/乡镇) code, GB/T 10114; ``000`` where no street is known.
* ``MMM``: community/village (社区/村) code; ``000`` where no community is known.
* ``NNN``: sequence number of the grid within its parent, from ``001``, numbered from west to
  east and from north to south (从西向东、由北至南).

This is the unit-grid code structure of the Beijing local standard DB11/T "网格化城市管理系统
单元网格划分" (§5.2–5.4: 15 digits = 6-digit county code per GB/T 2260, 3-digit street, 3-digit
community, 3-digit sequence numbered west→east, north→south), which follows the unit-grid coding of
CJ/T 213-2005 / GB/T 30428.1 (数字化城市管理信息系统 第1部分:单元网格). CJ/T 349-2010 (数字社区
管理与服务 网格划分与编码规则) uses the same "left to right, top to bottom" numbering rule. The
full text of GB/T 30428.1 was not available to us; the layout above is taken from the DB11/T text.

The format is a Python format string with the fields ``county``, ``street``, ``community`` (digit
strings) and ``seq`` (int), e.g. ``"{county}-{street}{community}-{seq:04d}"``.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.errors import InputError

DEFAULT_CODE_FORMAT = "{county}{street}{community}{seq:03d}"

_FIELD_PATTERNS = {"county": r"\d{6}", "street": r"\d{3}", "community": r"\d{3}"}


@dataclass(frozen=True)
class CodeFormat:
    """A grid-code layout: a format string plus the regular expression that validates it."""

    template: str = DEFAULT_CODE_FORMAT

    def __post_init__(self) -> None:
        fields = [f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None]
        unknown = sorted(set(fields) - {"county", "street", "community", "seq"})
        if unknown or "seq" not in fields or "county" not in fields:
            raise InputError(
                f"grid code format {self.template!r} is unusable",
                hint="use the fields {county}, {street}, {community} and {seq} (county and seq "
                "are required), e.g. " + DEFAULT_CODE_FORMAT,
            )

    @property
    def seq_width(self) -> int | None:
        """Fixed number of digits of the sequence number, or None when unbounded."""
        for _, field, spec, _ in string.Formatter().parse(self.template):
            if field == "seq":
                m = re.fullmatch(r"0(\d+)d", spec or "")
                return int(m.group(1)) if m else None
        return None

    @property
    def regex(self) -> re.Pattern[str]:
        """Compiled pattern matching a well-formed code, with named groups for each field."""
        parts = []
        for literal, field, _spec, _ in string.Formatter().parse(self.template):
            parts.append(re.escape(literal))
            if field is None:
                continue
            if field == "seq":
                width = self.seq_width
                parts.append(rf"(?P<seq>\d{{{width}}})" if width else r"(?P<seq>\d+)")
            else:
                parts.append(rf"(?P<{field}>{_FIELD_PATTERNS[field]})")
        return re.compile("".join(parts))

    def format(self, admin_code: str, seq: int) -> str:
        """The code of grid number ``seq`` (1-based) inside the area with ``admin_code``."""
        county, street, community = split_admin_code(admin_code)
        width = self.seq_width
        if seq < 1 or (width is not None and seq >= 10**width):
            raise InputError(
                f"grid sequence number {seq} does not fit the code format {self.template!r}",
                where=f"area {admin_code}",
                hint=f"at most {10**width - 1 if width else 'unbounded'} grids per parent; "
                "use a wider {seq:0Nd} in the format or split the parent area",
            )
        return self.template.format(county=county, street=street, community=community, seq=seq)

    def parse(self, code: str) -> dict[str, str | int]:
        """Split a code into its fields; raises InputError when malformed."""
        m = self.regex.fullmatch(str(code))
        if not m:
            raise InputError(
                f"grid code {code!r} does not match the format {self.template!r}",
                hint="codes are 6-digit county + 3-digit street + 3-digit community + sequence",
            )
        out: dict[str, str | int] = dict(m.groupdict())
        out["seq"] = int(out["seq"])
        return out

    def parent_of(self, code: str) -> str:
        """The administrative code (county+street+community, trailing 000 dropped) of a grid."""
        p = self.parse(code)
        return join_admin_code(str(p.get("county")), str(p.get("street", "000")),
                               str(p.get("community", "000")))


def split_admin_code(code: str) -> tuple[str, str, str]:
    """Split a 6-, 9- or 12-digit administrative code into (county, street, community) strings.

    6 digits: GB/T 2260 county code; 9: plus the GB/T 10114 street/town code; 12: plus the
    community code (the 12-digit statistical division code layout). Missing parts become "000".
    """
    text = str(code).strip()
    if not re.fullmatch(r"\d{6}(\d{3}){0,2}", text):
        raise InputError(
            f"administrative code {code!r} is not a 6-, 9- or 12-digit code",
            hint="county codes follow GB/T 2260 (6 digits, e.g. 510104); street and community "
            "codes append 3 digits each",
        )
    text = text.ljust(12, "0")
    return text[:6], text[6:9], text[9:12]


def join_admin_code(county: str, street: str = "000", community: str = "000") -> str:
    """Inverse of split_admin_code: the shortest code (6, 9 or 12 digits) for the parts."""
    if community != "000":
        return county + street + community
    if street != "000":
        return county + street
    return county


def west_east_north_south_order(points_xy: np.ndarray, band_m: float) -> np.ndarray:
    """Order of points numbered west→east within rows, rows north→south.

    ``points_xy`` are (n, 2) coordinates in a metric CRS (x east, y north, metres). Rows are
    latitude bands of height ``band_m`` counted down from the northernmost point: row
    ``floor((y_max - y) / band_m)``; inside a row points sort by x, ties by y descending.
    """
    pts = np.asarray(points_xy, dtype=float).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros(0, dtype=int)
    if not band_m > 0:
        raise InputError(f"row band height must be positive, got {band_m} m")
    row = np.floor((pts[:, 1].max() - pts[:, 1]) / band_m).astype(np.int64)
    # lexsort: last key is primary
    return np.lexsort((-pts[:, 1], pts[:, 0], row))


def assign_codes(
    grids: gpd.GeoDataFrame,
    *,
    parent_col: str = "parent_code",
    fmt: CodeFormat | str = DEFAULT_CODE_FORMAT,
    metric_crs=None,
    band_m: float | None = None,
) -> pd.Series:
    """Codes for every grid: parent admin code + sequence number west→east, north→south.

    Within each parent the grids' representative points (projected to ``metric_crs``, default
    the UTM zone of the data) are numbered with :func:`west_east_north_south_order`; the band
    height defaults to the median grid size (sqrt of the median area) of that parent, so a row
    holds about one grid's height. Returns a Series aligned with ``grids.index``.
    """
    fmt = CodeFormat(fmt) if isinstance(fmt, str) else fmt
    if parent_col not in grids.columns:
        raise InputError(f"grids have no {parent_col!r} column to take the parent code from")
    if grids[parent_col].isna().any():
        bad = list(grids.index[grids[parent_col].isna()][:5])
        raise InputError(f"grids {bad} have no parent area code", hint="assign every grid to an area")
    metric = grids.to_crs(metric_crs) if metric_crs is not None else (
        grids.to_crs(grids.estimate_utm_crs()) if grids.crs is not None and grids.crs.is_geographic
        else grids)
    rep = shapely.point_on_surface(metric.geometry.values)
    xy = shapely.get_coordinates(rep)
    areas = shapely.area(metric.geometry.values)
    codes = pd.Series(index=grids.index, dtype=object)
    parents = grids[parent_col].astype(str).to_numpy()
    for parent in sorted(set(parents)):
        idx = np.flatnonzero(parents == parent)
        band = band_m if band_m else max(float(np.sqrt(np.median(areas[idx]))), 1.0)
        order = west_east_north_south_order(xy[idx], band)
        for seq, i in enumerate(idx[order], start=1):
            codes.iloc[i] = fmt.format(parent, seq)
    return codes


def validate_codes(
    codes: pd.Series,
    *,
    fmt: CodeFormat | str = DEFAULT_CODE_FORMAT,
    parent_codes: pd.Series | None = None,
) -> pd.DataFrame:
    """Problems with grid codes: ``duplicate_code``, ``malformed_code``, ``code_parent_mismatch``.

    Returns a DataFrame with columns index (the label in ``codes``), code, kind, detail;
    empty when all codes are well formed, unique and (if ``parent_codes`` is given, aligned
    with ``codes``) start with their parent's administrative code.
    """
    fmt = CodeFormat(fmt) if isinstance(fmt, str) else fmt
    rows = []
    pattern = fmt.regex
    text = codes.astype("string")
    dup = text.duplicated(keep=False) & text.notna()
    for label, code in text[dup].items():
        n = int((text == code).sum())
        rows.append((label, code, "duplicate_code", f"code {code} is used by {n} grids"))
    for label, code in text.items():
        if code is pd.NA or not pattern.fullmatch(str(code)):
            rows.append((label, code, "malformed_code",
                         f"code {code!r} does not match the format {fmt.template!r}"))
            continue
        if parent_codes is not None:
            parent = parent_codes.get(label)
            if parent is None or pd.isna(parent):
                continue
            try:
                expected = split_admin_code(str(parent))
            except InputError:
                rows.append((label, code, "code_parent_mismatch",
                             f"parent code {parent!r} is not an administrative code"))
                continue
            got = fmt.parse(str(code))
            have = (got.get("county"), got.get("street", expected[1]), got.get("community", expected[2]))
            if have != expected:
                rows.append((label, code, "code_parent_mismatch",
                             f"code {code} does not start with its parent area's code {parent}"))
    return pd.DataFrame(rows, columns=["index", "code", "kind", "detail"])
