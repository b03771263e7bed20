"""Workload and shape metrics of grids and of whole grid plans."""
from __future__ import annotations

import math

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.partition import Band, band_forced_deviation
from pyproj import CRS
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["deviation_exemptions", "grid_pieces", "grid_table", "plan_metrics"]


def grid_pieces(touching: np.ndarray, single: np.ndarray) -> np.ndarray:
    """Piece label of each grid: grids linked by the (m, 2) ``touching`` index pairs, where a grid
    flagged in ``single`` (one block above the window) stands alone. Labels are 0..pieces-1."""
    n = len(single)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    pairs = np.asarray(touching, dtype=np.int64).reshape(-1, 2)
    pairs = pairs[~single[pairs[:, 0]] & ~single[pairs[:, 1]]]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def deviation_exemptions(households: np.ndarray, n_blocks: np.ndarray, touching: np.ndarray, *,
                         target_households: float = 300, min_households: float = 300,
                         max_households: float = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which grids may miss the balance window because the data force it, why, and by how much.

    The window is target ±10 % inside the band (300–330 for the defaults). ``households`` and
    ``n_blocks`` (blocks per grid; 0 or negative = unknown) are per grid; ``touching`` is an
    (m, 2) array of grid index pairs that share a boundary inside the same planning area.
    A grid is exempt when it lies outside the window and either

    - ``single_block``: it is one block holding more than the window allows (a block is only
      that big when it is one building, or buildings no street or gap between them parts);
      bound = its own deviation; or
    - ``piece_total``: the piece of its planning area it lies in (grids linked by shared
      boundaries, not counting single-block grids above the window, which stand alone) holds a
      total T that no grid count k puts inside the window (no k with T/k in it); bound =
      ``gis.partition.forced_deviation`` of T, the least worst deviation any split can reach.

    Returns (exempt bool array, reason array of "" / "single_block" / "piece_total", bound
    array: lower bound on the deviation as a fraction, NaN where not exempt).
    """
    band = Band(float(target_households), float(min_households), float(max_households))
    window_low, window_high = band.window
    hh = np.asarray(households, dtype=float)
    nb = np.asarray(n_blocks, dtype=np.int64)
    n = len(hh)
    off = (hh < window_low - 1e-9) | (hh > window_high + 1e-9)
    single = (nb == 1) & (hh > window_high + 1e-9)
    reason = np.full(n, "", dtype=object)
    bound = np.full(n, np.nan)
    reason[single] = "single_block"
    bound[single] = np.abs(hh[single] - band.target) / band.target
    roots = grid_pieces(touching, single)
    total = np.bincount(roots, weights=hh, minlength=n)
    blocks_in = np.bincount(roots, weights=np.where(nb > 0, nb, 10**9), minlength=n)
    for r in np.unique(roots[~single]).tolist():
        t = float(total[r])
        nblk = int(min(blocks_in[r], 10**9))
        kmin = max(1, math.ceil(t / window_high - 1e-9)) if window_high > 0 else 1
        kmax = min(math.floor(t / window_low + 1e-9), nblk) if window_low > 0 else nblk
        if t > 0 and kmin <= kmax:
            continue  # some grid count puts the mean in the window: nothing is forced here
        members = (roots == r) & ~single & off
        reason[members] = "piece_total"
        bound[members] = band_forced_deviation(t, max(nblk, 1), band)
    exempt = reason != ""
    return exempt, reason, bound


def _touching_labels(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, assignment: np.ndarray,
                     labels: np.ndarray) -> np.ndarray:
    """Pairs of grid indices (positions in `labels`) whose blocks share an adjacency edge."""
    pos = dict(zip(blocks["block_id"].tolist(), np.searchsorted(labels, assignment).tolist()))
    out = set()
    for u, v in adjacency.edges():
        a, b = pos.get(u), pos.get(v)
        if a is not None and b is not None and a != b:
            out.add((min(a, b), max(a, b)))
    return np.array(sorted(out), dtype=np.int64).reshape(-1, 2)


def grid_table(blocks: gpd.GeoDataFrame, assignment: np.ndarray, *, metric_crs: CRS | str | int | None = None,
               target_households: float = 300, min_households: float = 300,
               max_households: float = 500, adjacency: nx.Graph | None = None) -> gpd.GeoDataFrame:
    """One row per grid label of `assignment` (aligned with `blocks` rows), geometry in EPSG:4326.

    Columns: ``grid`` (label), ``blocks``, ``households``, ``buildings``, ``street_m`` (sums of
    the block columns that exist), ``area_m2`` and ``perimeter_m`` (of the union, in
    `metric_crs`, default the blocks' UTM zone), ``polsby_popper`` (4π·area/perimeter², 1 for a
    disc), ``pieces`` (polygons in the union: 1 for a contiguous grid), ``exempt``,
    ``exempt_reason`` and ``forced_deviation_pct`` (see ``deviation_exemptions``: a grid off the
    window because it is a single block above it or, given the block `adjacency`, because its
    piece of the area admits no split into the window; without `adjacency` only the first),
    ``in_band`` and ``deviation_pct`` (|households − target| / target · 100).
    """
    assignment = np.asarray(assignment)
    if assignment.shape != (len(blocks),):
        raise InputError(f"assignment has {assignment.shape} entries for {len(blocks)} blocks")
    if metric_crs is None:
        metric_crs = blocks.attrs.get("metric_crs") or blocks.estimate_utm_crs()
    metric_crs = CRS.from_user_input(metric_crs)
    geoms = blocks.to_crs(metric_crs).geometry.to_numpy()
    order = np.argsort(assignment, kind="stable")
    labels, starts = np.unique(assignment[order], return_index=True)
    ends = np.r_[starts[1:], len(order)]
    unions = np.empty(len(labels), dtype=object)
    for k, (a, b) in enumerate(zip(starts, ends)):
        part = geoms[order[a:b]]
        # blocks share their vertices exactly, so the cheap coverage union is exact
        unions[k] = part[0] if len(part) == 1 else shapely.coverage_union_all(part)
    area = shapely.area(unions)
    perim = shapely.length(shapely.boundary(unions))
    sums = {}
    for col in ("households", "buildings", "street_m"):
        if col in blocks:
            sums[col] = np.bincount(np.searchsorted(labels, assignment),
                                    weights=blocks[col].to_numpy(dtype=float), minlength=len(labels))
    n_blocks = np.diff(np.r_[starts, len(order)])
    hh = sums.get("households", np.zeros(len(labels)))
    touching = (_touching_labels(blocks, adjacency, assignment, labels) if adjacency is not None
                else np.zeros((0, 2), dtype=np.int64))
    exempt, reason, bound = deviation_exemptions(
        hh, n_blocks if adjacency is not None else np.where(n_blocks == 1, 1, 0), touching,
        target_households=target_households, min_households=min_households, max_households=max_households)
    if adjacency is None:  # pieces unknown: only the single-block rule applies
        exempt &= reason == "single_block"
        reason = np.where(exempt, reason, "")
        bound = np.where(exempt, bound, np.nan)
    out = gpd.GeoDataFrame({
        "grid": labels,
        "blocks": n_blocks,
        "households": hh,
        "buildings": sums.get("buildings", np.zeros(len(labels))).astype(np.int64),
        "street_m": sums.get("street_m", np.zeros(len(labels))),
        "area_m2": area,
        "perimeter_m": perim,
        "polsby_popper": np.divide(4 * math.pi * area, perim ** 2, out=np.zeros_like(area), where=perim > 0),
        "pieces": shapely.get_num_geometries(unions),
        "exempt": exempt,
        "exempt_reason": reason.astype(str),
        "forced_deviation_pct": bound * 100,
        "in_band": (hh >= min_households - 1e-9) & (hh <= max_households + 1e-9),
        "deviation_pct": np.abs(hh - target_households) / target_households * 100,
    }, geometry=gpd.GeoSeries(unions, crs=metric_crs)).to_crs(4326)
    return out


def plan_metrics(grids: gpd.GeoDataFrame, adjacency: nx.Graph, blocks: gpd.GeoDataFrame,
                 assignment: np.ndarray) -> dict[str, float]:
    """Whole-plan figures from ``grid_table`` output and the block adjacency.

    ``grids``, ``exempt_grids`` and ``exempt_by_reason`` (see ``deviation_exemptions``),
    ``worst_deviation_pct`` (among non-exempt grids), ``worst_deviation_pct_all`` (all grids),
    ``forced_deviation_pct`` (largest lower bound among exempt grids: what the data force),
    ``share_in_band`` (of non-exempt grids), ``share_in_band_all``, ``share_in_window`` (of
    non-exempt grids: within target ±10 % and the band), ``mean_polsby_popper``,
    ``contiguous_share`` (grids whose union is one polygon), and ``boundary_on_street_share``:
    of the shared block edges that separate two different grids, the length share lying on a
    street or barrier (``line_m / length_m`` summed over the adjacency edges).
    """
    assignment = np.asarray(assignment)
    ne = grids[~grids["exempt"]]
    ids = blocks["block_id"].to_numpy()
    lab = dict(zip(ids.tolist(), assignment.tolist()))
    total = on_line = 0.0
    for u, v, d in adjacency.edges(data=True):
        lu, lv = lab.get(u), lab.get(v)
        if lu is None or lv is None or lu == lv:
            continue
        total += d.get("length_m", 0.0)
        on_line += d.get("line_m", 0.0)
    ex = grids[grids["exempt"]]
    reasons = ex["exempt_reason"].value_counts().to_dict() if "exempt_reason" in ex and len(ex) else {}
    in_window = ne["in_band"] & (ne["deviation_pct"] <= 10.0 + 1e-9)
    return {
        "grids": int(len(grids)),
        "exempt_grids": int(grids["exempt"].sum()),
        "exempt_by_reason": {str(k): int(v) for k, v in reasons.items()},
        "worst_deviation_pct": float(ne["deviation_pct"].max()) if len(ne) else 0.0,
        "worst_deviation_pct_all": float(grids["deviation_pct"].max()) if len(grids) else 0.0,
        "forced_deviation_pct": (float(ex["forced_deviation_pct"].max())
                                 if len(ex) and "forced_deviation_pct" in ex else 0.0),
        "share_in_band": float(ne["in_band"].mean()) if len(ne) else 1.0,
        "share_in_band_all": float(grids["in_band"].mean()) if len(grids) else 1.0,
        "share_in_window": float(in_window.mean()) if len(ne) else 1.0,
        "mean_polsby_popper": float(grids["polsby_popper"].mean()) if len(grids) else 0.0,
        "contiguous_share": float((grids["pieces"] == 1).mean()) if len(grids) else 1.0,
        "boundary_on_street_share": on_line / total if total > 0 else 1.0,
    }

