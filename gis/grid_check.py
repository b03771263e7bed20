"""Validate a grid plan with shapely: coverage, overlaps, nesting, contiguity, buildings, workload, codes."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.assign import assign_xy, crossing_buildings, representative_xy
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.grid_metrics import deviation_exemptions, grid_pieces
from gridpatrol.gis.gridcodes import DEFAULT_CODE_FORMAT, CodeFormat, validate_codes
from gridpatrol.gis.partition import Band, merge_blocked

_REASON_TEXT = {
    "single_block": "a single block above the window: one building, or buildings no street or gap parts",
    "piece_total": "its piece of the area (cut off by the area boundary or by single-block grids) holds "
                   "{total:.0f} {unit}, which no number of grids splits into the window",
}

# Kinds of problems and whether they make a plan invalid ("error"), should be looked at but break no
# hard rule ("warning"), or are only reported ("info").
SEVERITY: dict[str, str] = {
    "invalid_geometry": "error",
    "gap": "error",
    "overlap": "error",
    "unknown_parent": "error",
    "outside_parent": "error",
    "non_contiguous": "error",
    "building_unassigned": "error",
    "building_cut": "error",
    "building_on_area_boundary": "info",
    "households_out_of_band": "error",
    "households_exempt": "info",
    "deviation_exempt": "info",
    "deviation": "warning",
    "over_street_cap": "error",
    "over_area_cap": "error",
    "cap_exempt": "info",
    "over_route_cap": "error",
    "route_exempt": "info",
    "duplicate_code": "error",
    "malformed_code": "error",
    "code_parent_mismatch": "error",
    "data_coverage": "warning",  # added by layers.grids.check_grids (gis.data_coverage)
    "implausible_density": "warning",
    # rural plans (layers/grids/rural_draw.py, docs/rural.md)
    "settlement_split": "error",
    "over_area_limit": "error",
    "over_travel_limit": "error",
    "rural_limit_exempt": "info",
    "settlement_on_area_boundary": "info",
    "rural_households_off_band": "warning",
}

# households and deviation_pct (|households − target| / target · 100) are set for workload problems.
PROBLEM_COLUMNS = ["kind", "severity", "grid_code", "detail", "area_m2", "households", "deviation_pct", "geometry"]


@dataclass
class CheckResult:
    """Problems (GeoDataFrame, EPSG of the input) and a summary of a plan check."""

    problems: gpd.GeoDataFrame
    summary: dict = field(default_factory=dict)
    grids: pd.DataFrame | None = None  # per grid: its measures and workload (set by layers.grids.check_grids)

    @property
    def valid(self) -> bool:
        """True when no problem of severity "error" was found."""
        return bool(self.summary.get("valid", False))


def _metric(gdf: gpd.GeoDataFrame, crs) -> gpd.GeoDataFrame:
    if crs is not None:
        return gdf.to_crs(crs)
    return gdf


def check_plan(
    grids: gpd.GeoDataFrame,
    areas: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame | None = None,
    *,
    blocks: gpd.GeoDataFrame | None = None,
    min_households: float = 300,
    max_households: float = 500,
    code_format: CodeFormat | str = DEFAULT_CODE_FORMAT,
    metric_crs=None,
    tolerance_m2: float = 1.0,
    recount_households: bool = True,
    target_households: float | None = None,
    workload: np.ndarray | None = None,
    workload_unit: str = "households",
    max_street_m: float | None = None,
    max_area_m2: float | None = None,
    max_route_min: float | None = None,
    route_minutes: np.ndarray | None = None,
    route_lower: np.ndarray | None = None,
    pair_route_share: Callable[[int, int], float] | None = None,
    least_empty: bool = True,
    known_bounds: Mapping | None = None,
    bound_seed: int = 0,
) -> CheckResult:
    """Check a grid plan against the planning rules; pure shapely, no store.

    ``grids``: code, parent_code, geometry (optional exempt: True marks grids whose household
    count no regrouping can fix, e.g. the only grid of a small area). ``areas``: code, geometry: the
    parent (planning) areas that the grids must tile exactly. ``buildings``: households,
    geometry. ``blocks`` (optional): grid_code per block; a grid made of one block is exempt from
    the household band (it cannot be split along streets). All frames share one CRS (EPSG:4326 in
    the store); areas are measured in ``metric_crs`` (default: UTM zone of the grids). Gaps,
    overlaps, parts outside the parent and cut buildings of at most ``tolerance_m2`` (m²) are
    ignored as floating-point noise (more than it is listed). Households per grid are recomputed from the buildings
    (representative point) when buildings are given and ``recount_households``, otherwise taken
    from ``grids.households`` (the store's plans count landuse-based estimates shared by block).

    With ``target_households`` the balance window (target ±10 % inside the band) is checked too:
    grids that miss it only because the data force it (``gis.grid_metrics.deviation_exemptions``:
    a single block above the window, or a piece of the area whose total no grid count splits
    into it) are listed as ``deviation_exempt`` (info) with the reason and the lower bound on
    their deviation; every other grid in the band but outside the window is listed as
    ``deviation`` (warning: it breaks no hard rule, so the plan stays valid) with its households,
    the window and its deviation. Workload problems carry ``households`` and ``deviation_pct``
    (|households − target| / target · 100).

    ``workload`` (one value per grid, e.g. persons or a weighted sum) replaces households in the
    band and window checks; ``min_households``/``max_households``/``target_households`` are then
    the band in that workload (``workload_unit`` names it in the details), ``deviation_pct`` is
    the workload's and ``households`` stays the grid's households.

    ``max_street_m`` / ``max_area_m2`` are hard limits on ``grids.street_m`` / ``grids.area_m2``:
    a grid over one is an error (``over_street_cap`` / ``over_area_cap``) unless it is a single
    block (``cap_exempt``, info: no grid holding that block can have less, the lower bound is
    its own value). A grid below the band that no merge with a touching grid could lift without
    breaking a cap (or the band's upper end; ``gis.partition.merge_blocked``) is exempt, with the
    least cap share such a merge reaches. ``max_route_min`` is a hard limit on each grid's patrol
    (``route_minutes``, with the certified ``route_lower``; layers.grids.route_cap): over it is an
    error (``over_route_cap``) unless the grid is one block (``route_exempt``, with the lower
    bound); ``pair_route_share`` (i, j) gives a merge's patrol / the cap for the merge test. (A grid of 0 households is below any positive band: an
    error unless one of these exemptions, each with its reason, applies; with ``blocks`` that hold
    households, street_m and area_m2, a 0-household grid one of whose blocks is farther from every
    household block than a cap allows (gis.partition.empty.empty_grid_proofs) is exempt with that
    proof: the caps win over "no grid of 0 households"; the summary's ``empty_grids_lower_bound`` is the least
    number of such grids any plan within the caps has, gis.partition.empty_bound.) The summary gives the worst deviation over all grids
    and over non-exempt ones, the count of ``deviation`` grids, the exempt count by reason and
    the largest forced bound. ``least_empty=False`` leaves ``empty_grids_lower_bound`` out: its proof can take
    half a minute, and an edit or a map's problem layer does not need it. ``known_bounds``: areas' bounds
    proven before, by the digest of their inputs (``empty_bound.plan_empty_bound``): not solved again;
    ``bound_seed``: CP-SAT's seed for that proof (the plan's, as draw-grids solved it).
    """
    for col in ("code", "parent_code"):
        if col not in grids.columns:
            raise InputError(f"grids have no {col!r} column", hint="a plan's grids need code and parent_code")
    if "code" not in areas.columns:
        raise InputError("areas have no 'code' column")
    crs = grids.crs
    if metric_crs is None and crs is not None and crs.is_geographic:
        metric_crs = grids.estimate_utm_crs() if len(grids) else areas.estimate_utm_crs()
    g = _metric(grids.reset_index(drop=True), metric_crs)
    a = _metric(areas.reset_index(drop=True), metric_crs)
    geoms = np.asarray(g.geometry.values)
    codes = g["code"].astype(str).to_numpy()
    rows: list[tuple] = []

    def add(kind: str, code, detail: str, geom, area_m2: float | None = None,
            hh: float | None = None, dev_pct: float | None = None) -> None:
        rows.append((kind, SEVERITY[kind], code, detail, area_m2, hh, dev_pct, geom))

    # Geometry validity first: overlay operations below assume valid polygons.
    invalid = ~shapely.is_valid(geoms)
    for i in np.flatnonzero(invalid):
        add("invalid_geometry", codes[i], f"grid {codes[i]}: {shapely.is_valid_reason(geoms[i])}",
            shapely.point_on_surface(shapely.make_valid(geoms[i])))
    geoms = np.where(invalid, shapely.make_valid(geoms), geoms)

    # Contiguity: one polygon per grid.
    nparts = shapely.get_num_geometries(geoms)
    for i in np.flatnonzero(nparts > 1):
        part_areas = sorted((float(p.area) for p in shapely.get_parts(geoms[i])), reverse=True)
        add("non_contiguous", codes[i],
            f"grid {codes[i]} has {nparts[i]} separate parts (m²: "
            + ", ".join(f"{x:.0f}" for x in part_areas[:5]) + ")", geoms[i], sum(part_areas[1:]))

    # Overlaps between any two grids.
    tree = shapely.STRtree(geoms)
    li, ri = tree.query(geoms, predicate="intersects")
    keep = li < ri
    li, ri = li[keep], ri[keep]
    overlap_total = 0.0
    if len(li):
        inter = shapely.intersection(geoms[li], geoms[ri])
        ia = shapely.area(inter)
        for k in np.flatnonzero(ia > tolerance_m2):
            overlap_total += float(ia[k])
            add("overlap", codes[li[k]], f"grids {codes[li[k]]} and {codes[ri[k]]} overlap by "
                f"{ia[k]:.1f} m²", inter[k], float(ia[k]))

    # Nesting and coverage per parent area.
    area_by_code = {str(c): geom for c, geom in zip(a["code"].astype(str), a.geometry.values)}
    parents = g["parent_code"].astype(str).to_numpy()
    gap_total = 0.0
    for i in np.flatnonzero(~np.isin(parents, list(area_by_code))):
        add("unknown_parent", codes[i], f"grid {codes[i]} names parent area {parents[i]!r}, "
            "which is not a planning area", shapely.point_on_surface(geoms[i]))
    outside_total = 0.0
    for pcode, pgeom in area_by_code.items():
        idx = np.flatnonzero(parents == pcode)
        pgeom = shapely.make_valid(pgeom)
        if len(idx):
            outside = shapely.difference(geoms[idx], pgeom)
            oa = shapely.area(outside)
            for k in np.flatnonzero(oa > tolerance_m2):
                outside_total += float(oa[k])
                add("outside_parent", codes[idx[k]], f"{oa[k]:.1f} m² of grid {codes[idx[k]]} lie "
                    f"outside its parent area {pcode}", outside[k], float(oa[k]))
            covered = shapely.union_all(geoms[idx])
            missing = shapely.difference(pgeom, covered)
        else:
            missing = pgeom
        for part in shapely.get_parts(missing):
            if part.area > tolerance_m2:
                gap_total += float(part.area)
                add("gap", None, f"{part.area:.1f} m² of area {pcode} belong to no grid "
                    f"(near {_lonlat_text(part, metric_crs, crs)})", part, float(part.area))

    # Buildings: assignment by representative point and cuts by grid boundaries.
    households = None
    n_unassigned = n_cut = 0
    if buildings is not None and len(buildings):
        b = _metric(buildings.reset_index(drop=True), metric_crs)
        # Assign in the input CRS, exactly as the store's assignment does (a representative point
        # near an edge can fall on the other side after projection).
        bx, by = representative_xy(buildings.geometry)
        owner = assign_xy(bx, by, shapely.make_valid(np.asarray(grids.geometry.values)))
        pts = gpd.GeoSeries(shapely.points(bx, by), crs=crs)
        pts = pts.to_crs(metric_crs).values if metric_crs is not None and crs is not None else pts.values
        label = _building_labels(buildings)
        # Only buildings inside the planning areas must lie in a grid.
        in_area = assign_xy(bx, by, shapely.make_valid(np.asarray(
            (areas.to_crs(crs) if crs is not None and areas.crs is not None else areas).geometry.values))) >= 0
        for k in np.flatnonzero((owner < 0) & in_area):
            n_unassigned += 1
            add("building_unassigned", None, f"building {label[k]} is in no grid", pts[k])
        cut = crossing_buildings(b, g.set_geometry(gpd.GeoSeries(geoms, crs=g.crs)), min_area_m2=tolerance_m2)
        parent_of = dict(zip(codes, parents))
        for _, r in cut.iterrows():
            if len({parent_of.get(str(c)) for c in r["grid_codes"]}) > 1:
                # The administrative boundary itself runs through the building: no grid
                # boundary can avoid it, so it is reported, not counted as an error.
                add("building_on_area_boundary", ",".join(map(str, r["grid_codes"])),
                    f"building {label[r['building']]} straddles the boundary of areas "
                    f"{', '.join(sorted({str(parent_of.get(str(c))) for c in r['grid_codes']}))}",
                    b.geometry.values[r["building"]], float(r["outside_m2"]))
                continue
            n_cut += 1
            add("building_cut", ",".join(map(str, r["grid_codes"])),
                f"building {label[r['building']]} is cut by the boundary of grids "
                f"{', '.join(map(str, r['grid_codes']))} ({r['outside_m2']:.1f} m² on the minor side)",
                b.geometry.values[r["building"]], float(r["outside_m2"]))
        if recount_households or "households" not in g.columns:
            hh = pd.to_numeric(b.get("households", pd.Series(0.0, index=b.index)), errors="coerce").fillna(0.0)
            households = np.bincount(owner[owner >= 0], weights=hh.to_numpy()[owner >= 0], minlength=len(g))
    if households is None and "households" in g.columns:
        households = pd.to_numeric(g["households"], errors="coerce").fillna(0.0).to_numpy()
    hh_of = households  # what the problems' households column holds
    if workload is not None:
        households = np.asarray(workload, dtype=float)  # from here on: the workload the plan balances
    unit = workload_unit

    # Workload band; single-block grids are exempt but still listed.
    exempt = np.zeros(len(g), dtype=bool)
    n_blocks = np.zeros(len(g), dtype=np.int64)  # 0: unknown
    if blocks is not None and len(blocks) and "grid_code" in blocks.columns:
        nblocks = blocks["grid_code"].astype(str).value_counts()
        n_blocks = np.array([int(nblocks.get(c, 0)) for c in codes], dtype=np.int64)
        exempt = n_blocks == 1
    if "exempt" in g.columns:
        # exemptions decided by the planner's tool (e.g. the only grid of a small area)
        exempt |= g["exempt"].fillna(False).astype(bool).to_numpy()
    target = target_households if target_households else (min_households + max_households) / 2
    capped = [(pd.to_numeric(g[col], errors="coerce").fillna(0.0).to_numpy(dtype=float), float(cap), col, kind)
              for col, cap, kind in (("street_m", max_street_m, "over_street_cap"), ("area_m2", max_area_m2, "over_area_cap"))
              if cap is not None and col in g.columns]
    single = n_blocks == 1
    for v, cap, col, kind in capped:
        what = "m of streets" if col == "street_m" else "m² of area"
        for i in np.flatnonzero(v > cap * (1 + 1e-9)):
            if single[i]:
                add("cap_exempt", codes[i], f"grid {codes[i]} is one block with {v[i]:,.0f} {what}, over the cap "
                    f"{cap:,.0f} (exempt: no grid holding this block can have less; lower bound {v[i]:,.0f})",
                    shapely.point_on_surface(geoms[i]))
            else:
                add(kind, codes[i], f"grid {codes[i]} has {v[i]:,.0f} {what}, over the hard cap {cap:,.0f} "
                    f"(--max-{'street-m' if col == 'street_m' else 'area-m2'})", shapely.point_on_surface(geoms[i]))
    routed = max_route_min is not None and route_minutes is not None
    if routed:
        lower = route_minutes if route_lower is None else route_lower
        for i in np.flatnonzero(np.asarray(route_minutes) > max_route_min * (1 + 1e-9)):
            if single[i]:
                add("route_exempt", codes[i], f"grid {codes[i]} is one block whose patrol takes {route_minutes[i]:,.1f} "
                    f"min on foot, over the cap {max_route_min:g} min (exempt: it cannot be split; lower bound "
                    f"{lower[i]:,.1f} min)", shapely.point_on_surface(geoms[i]))
            else:
                add("over_route_cap", codes[i], f"grid {codes[i]}'s patrol takes {route_minutes[i]:,.1f} min on foot, "
                    f"over the hard cap {max_route_min:g} min (--max-route-min)", shapely.point_on_surface(geoms[i]))
    forced_cap = np.zeros(len(g), dtype=bool)
    cap_share = np.full(len(g), np.nan)
    if (capped or routed) and households is not None:
        below = households < min_households
        share_fn = None
        if routed and pair_route_share is not None:
            def share_fn(i: int, j: int) -> float:
                return float(pair_route_share(i, j)) if below[i] or below[j] else 0.0
        blocked, cap_share = merge_blocked(_touching(geoms, li, ri, parents), households,
                                           [(v, cap) for v, cap, _, _ in capped], max_households, share_fn)
        forced_cap = blocked & ~np.isnan(cap_share) & (households < min_households)
        exempt |= forced_cap
    # Balance window (target ±10 % inside the band): grids that miss it because the data force it
    dev_exempt = np.zeros(len(g), dtype=bool)
    reason = np.full(len(g), "", dtype=object)
    bound = np.full(len(g), np.nan)
    piece_total = np.zeros(len(g))
    if households is not None and len(g) and target_households:  # the window needs a target
        touching = _touching(geoms, li, ri, parents)
        dev_exempt, reason, bound = deviation_exemptions(
            households, n_blocks, touching, target_households=target,
            min_households=min_households, max_households=max_households)
        pieces = grid_pieces(touching, reason == "single_block")
        piece_total = np.bincount(pieces, weights=households)[pieces]
        exempt |= dev_exempt
    window_low, window_high = Band(float(target), float(min_households), float(max_households)).window
    proofs = _empty_proofs(blocks, codes, metric_crs, max_street_m, max_area_m2, max_route_min)
    for i in proofs:
        exempt[i] = True  # forced by a cap in every plan: the caps win over "no grid of 0 households"

    def why(i: int) -> str:
        if i in proofs:
            b, col, least, cap = proofs[i]
            what = "m of streets" if col == "street_m" else "m² of area"
            limit = "--max-area-m2" if col == "area_m2" else "--max-street-m" if cap == max_street_m else \
                f"--max-route-min {max_route_min:g} (a patrol walks at least its blocks' streets, 75 m a minute)"
            return (f"it holds no households (streets or land without homes), and its block {b} is {least:,.0f} "
                    f"{what} from the nearest block with households: any grid holding both has at least that, over "
                    f"the hard cap {cap:,.0f} ({limit}), so no plan within the caps gives it households")
        if forced_cap[i] and not reason[i]:
            empty = "it holds no households (streets or land without homes) and " \
                if hh_of is not None and hh_of[i] <= 0 else ""
            return (f"{empty}merging it into any neighbouring grid breaks a hard cap or the band's upper end; the "
                    f"least merge over a cap reaches {100 * cap_share[i]:.0f} % of it")
        if not reason[i]:
            return "a single indivisible block, or a piece of its area that touches no other grid"
        return (_REASON_TEXT[reason[i]].format(total=piece_total[i], unit=unit)
                + f"; no plan can bring it within {100 * bound[i]:.1f} % of the target")

    in_band = np.ones(len(g), dtype=bool)
    off_window = np.zeros(len(g), dtype=bool)
    if households is not None:
        in_band = (households >= min_households) & (households <= max_households)
        dev_pct = np.abs(households - target) / target * 100 if target else np.full(len(g), np.nan)
        for i in np.flatnonzero(~in_band):
            kind = "households_exempt" if exempt[i] else "households_out_of_band"
            extra = f" (exempt: {why(i)})" if exempt[i] else ""
            add(kind, codes[i], f"grid {codes[i]} has {households[i]:.0f} {unit}, outside "
                f"{min_households:g}–{max_households:g}, {dev_pct[i]:.1f} % off the target {target:g}{extra}",
                shapely.point_on_surface(geoms[i]), hh=float(hh_of[i]), dev_pct=float(dev_pct[i]))
        for i in np.flatnonzero(dev_exempt & in_band):
            add("deviation_exempt", codes[i], f"grid {codes[i]} has {households[i]:.0f} {unit}, "
                f"outside the window {window_low:g}–{window_high:g} (exempt: {why(i)})",
                shapely.point_on_surface(geoms[i]),
                hh=float(hh_of[i]), dev_pct=float(dev_pct[i]))
        if target_households:
            # In the band but outside the window, and nothing in the data forces it: the plan
            # breaks no hard rule, but the grid is a worse workload than the plan could give.
            off_window = in_band & ~exempt & ((households < window_low - 1e-9) | (households > window_high + 1e-9))
            for i in np.flatnonzero(off_window):
                add("deviation", codes[i], f"grid {codes[i]} has {households[i]:.1f} {unit}, outside "
                    f"the window {window_low:g}–{window_high:g}: {dev_pct[i]:.1f} % off the target {target:g} "
                    f"(more than 10 %), and no exemption applies", shapely.point_on_surface(geoms[i]),
                    hh=float(hh_of[i]), dev_pct=float(dev_pct[i]))

    # Codes.
    bad_codes = validate_codes(g["code"], fmt=code_format, parent_codes=g["parent_code"])
    for _, r in bad_codes.iterrows():
        add(r["kind"], r["code"], r["detail"], shapely.point_on_surface(geoms[int(r["index"])]))

    problems = gpd.GeoDataFrame(rows, columns=PROBLEM_COLUMNS, geometry="geometry", crs=metric_crs)
    if crs is not None and metric_crs is not None:
        problems = problems.to_crs(crs)
    counts = problems["kind"].value_counts().to_dict() if len(problems) else {}
    n_errors = int((problems["severity"] == "error").sum()) if len(problems) else 0
    non_exempt = ~exempt
    dev = np.abs(households - target) / target if households is not None and target else None
    in_window = in_band & (dev <= 0.1 + 1e-9) if dev is not None else in_band
    summary = {
        "valid": n_errors == 0,
        "grids": int(len(g)),
        "errors": n_errors,
        "problems_by_kind": {k: int(v) for k, v in counts.items()},
        "gap_m2": gap_total,
        "overlap_m2": overlap_total,
        "outside_parent_m2": outside_total,
        "buildings_unassigned": n_unassigned,
        "buildings_cut": n_cut,
        "exempt_grids": int((exempt & ~in_band).sum()),
        "share_in_band": float(in_band.mean()) if len(g) else 1.0,
        "share_in_band_non_exempt": float(in_band[non_exempt].mean()) if non_exempt.any() else 1.0,
        "worst_deviation_non_exempt": float(dev[non_exempt].max()) if dev is not None and non_exempt.any() else None,
        "worst_deviation_all": float(dev.max()) if dev is not None and len(dev) else None,
        "share_in_window_non_exempt": float(in_window[non_exempt].mean()) if non_exempt.any() else 1.0,
        "deviation_exempt_grids": int(dev_exempt.sum()),
        "deviation_grids": int(off_window.sum()),
        "deviation_exempt_by_reason": {str(k): int((reason == k).sum()) for k in sorted(set(reason[dev_exempt]))},
        "forced_deviation_bound": float(np.nanmax(bound)) if dev_exempt.any() else 0.0,
    }
    if hh_of is not None:
        empty = np.asarray(hh_of) <= 0
        summary["empty_grids"] = int(empty.sum())
        summary["empty_grids_exempt"] = int((empty & exempt).sum())
        summary["empty_grids_proven"] = int(sum(1 for i in proofs if empty[i]))
        with_empty = {str(p) for p, e in zip(parents.tolist(), empty.tolist()) if e}
        bound = _empty_bound(blocks, codes, parents, metric_crs, max_street_m, max_area_m2, max_route_min,
                             with_empty, known_bounds, bound_seed) if least_empty else None
        if bound is not None:
            summary["empty_grids_lower_bound"] = bound
    return CheckResult(problems=problems, summary=summary)


def _proof_caps(blocks: gpd.GeoDataFrame, max_street_m: float | None, max_area_m2: float | None,
                max_route_min: float | None) -> list[tuple[str, float]]:
    """(block column, cap) of the hard caps on blocks' values; the patrol cap counts as a street cap of 75 m
    × its minutes (a patrol walks at least its blocks' streets)."""
    street = [c for c in (max_street_m, None if max_route_min is None else 75.0 * max_route_min) if c is not None]
    return ([("street_m", min(street))] if street and "street_m" in blocks else []) + \
        ([("area_m2", float(max_area_m2))] if max_area_m2 is not None and "area_m2" in blocks else [])


def _empty_bound(blocks: gpd.GeoDataFrame | None, codes: np.ndarray, parents: np.ndarray, metric_crs,
                 max_street_m: float | None, max_area_m2: float | None, max_route_min: float | None,
                 with_empty: set[str], known: Mapping | None = None, seed: int = 0) -> int | None:
    """The proven least number of grids of 0 households any plan of these blocks within the caps has, summed
    over the planning areas (``gis.partition.empty_bound.plan_empty_bound``); None without caps or blocks.
    Only the areas ``with_empty`` (a grid of 0 households in this plan) need a proof: the others' is 0; an
    area whose bound is in ``known`` (by the digest of its inputs) is not solved again; ``seed``: CP-SAT's."""
    from gridpatrol.gis.partition.empty_bound import plan_empty_bound

    if blocks is None or not len(blocks) or not {"grid_code", "households"} <= set(blocks.columns):
        return None
    caps = _proof_caps(blocks, max_street_m, max_area_m2, max_route_min)
    if not caps:
        return None
    b = _metric(blocks.reset_index(drop=True), metric_crs)
    b = b.assign(households=pd.to_numeric(b["households"], errors="coerce").fillna(0.0))
    parent_of = dict(zip(codes.tolist(), parents.tolist()))
    area = np.array([str(parent_of.get(str(c), "")) for c in b["grid_code"].astype(str)], dtype=object)
    return plan_empty_bound(b, area, caps, none_empty=set(area.tolist()) - with_empty, known=known,
                            seed=seed)[0]


def _empty_proofs(blocks: gpd.GeoDataFrame | None, codes: np.ndarray, metric_crs, max_street_m: float | None,
                  max_area_m2: float | None, max_route_min: float | None) -> dict[int, tuple[int, str, float, float]]:
    """Per grid (row of ``codes``) of 0 households that no plan within the caps can give
    households: (block id, cap column, least total, cap) (``gis.partition.empty.empty_grid_proofs``
    on the plan's blocks; the patrol cap counts as a street cap of 75 m × its minutes)."""
    from gridpatrol.gis.partition.empty import empty_grid_proofs

    need = {"grid_code", "households"}
    if blocks is None or not len(blocks) or not need <= set(blocks.columns):
        return {}
    caps = _proof_caps(blocks, max_street_m, max_area_m2, max_route_min)
    if not caps:
        return {}
    b = _metric(blocks.reset_index(drop=True), metric_crs)
    b = b.assign(households=pd.to_numeric(b["households"], errors="coerce").fillna(0.0))
    row_of = {c: i for i, c in enumerate(codes.tolist())}
    grid = np.array([row_of.get(str(c), -1) for c in b["grid_code"].astype(str)], dtype=np.int64)
    ids = b["block_id"].to_numpy() if "block_id" in b else np.arange(len(b))
    return {g: (int(ids[r]), col, least, cap) for g, (r, col, least, cap) in empty_grid_proofs(b, grid, caps).items()}


def _touching(geoms: np.ndarray, li: np.ndarray, ri: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Pairs (i < j) of grids of the same parent area that share a boundary of positive length."""
    same = parents[li] == parents[ri]
    li, ri = li[same], ri[same]
    if not len(li):
        return np.zeros((0, 2), dtype=np.int64)
    shared = shapely.length(shapely.intersection(shapely.boundary(geoms[li]), shapely.boundary(geoms[ri])))
    keep = shared > 0.01
    return np.column_stack([li[keep], ri[keep]]).astype(np.int64)


def _building_labels(buildings: gpd.GeoDataFrame) -> list[str]:
    """Human-readable building names for messages: osm_type/osm_id or the row id."""
    if {"osm_type", "osm_id"} <= set(buildings.columns):
        return [f"{t}/{i}" for t, i in zip(buildings["osm_type"], buildings["osm_id"])]
    if "id" in buildings.columns:
        return [f"id {i}" for i in buildings["id"]]
    return [f"row {i}" for i in range(len(buildings))]


def _lonlat_text(geom, metric_crs, crs) -> str:
    """Location of a problem as 'lon, lat' (or x, y when no geographic CRS is known)."""
    p = shapely.point_on_surface(geom)
    if metric_crs is not None and crs is not None:
        p = gpd.GeoSeries([p], crs=metric_crs).to_crs(crs).iloc[0]
    return f"{p.x:.6f}, {p.y:.6f}"
