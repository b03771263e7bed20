"""The rural limits in the edits of a rural plan (layers/grids/edits.py; docs/rural.md): which
household moves of a rebalance keep ``--max-area-m2`` and ``--max-travel-min``, and the parts of a
split that miss them, repaired where a unit can move. ``ctx`` is the edit's context (params, grids)."""
from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
from gridpatrol.gis.assign import assign_xy

SPLIT_TRIES = 3  # seeds tried per weighting when a rural split's parts miss a limit


def split_misses(ctx, rural, sub: gpd.GeoDataFrame, labels: np.ndarray,  # noqa: ANN001
                 code: str) -> list[tuple[int, str, float, float]]:
    """The parts (``labels`` over ``sub``'s rows) of a rural split over a limit: (part, "area" or
    "travel", value, limit), as check_rural judges them: a part of one indivisible unit over a
    limit is exempt. Travel from the grid's station for the part that keeps it, else from the
    part's best hub."""
    out = []
    area_cap = float(ctx.params.max_area_m2) if ctx.params.max_area_m2 else None
    travel_cap = float(ctx.params.max_travel_min) * 60.0 if ctx.params.max_travel_min and rural.travel else None
    row = ctx.grids[ctx.grids["code"].astype(str) == str(code)].iloc[0]
    node = rural.station_node(row.get("station_lon"), row.get("station_lat"))
    station_part = -2
    if node >= 0:
        hit = assign_xy(np.array([float(row["station_lon"])]), np.array([float(row["station_lat"])]),
                        sub.geometry.to_numpy())[0]
        station_part = int(labels[hit]) if hit >= 0 else -2
    area = sub["area_m2"].to_numpy(dtype=float)
    for lab in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == lab)
        units = set(rural.unit_of_block[rows].tolist())
        a = float(area[rows].sum())
        if area_cap is not None and a > area_cap * (1 + 1e-9) and len(units) > 1:
            out.append((lab, "area", a, area_cap))
        ss = sorted({s for r in rows for s in rural.settlements_of_block[r]})
        if travel_cap is not None and ss:
            with_s = {int(rural.unit_of_block[r]) for r in rows if rural.settlements_of_block[r]}
            t = rural.worst_travel_s(ss, node if lab == station_part else -1)
            if t > travel_cap * (1 + 1e-9) and len(with_s) > 1:
                out.append((lab, "travel", t, travel_cap))
    return out


def repair_split(ctx, rural, sub: gpd.GeoDataFrame, code: str, unit_labels: np.ndarray,  # noqa: ANN001
                 unit_adj: nx.Graph, back: np.ndarray, misses: list) -> tuple[np.ndarray, list]:  # noqa: ANN001
    """Move units of a split from a part over a limit to a touching part, one at a time, the move
    that lowers the summed excess over the limits most (no part emptied or cut in two), until no
    part is over a limit or no move helps. Returns (unit labels, their misses)."""
    def excess(m: list) -> float:
        return sum(v / cap - 1.0 for _, _, v, cap in m)

    labels = unit_labels.copy()
    for _ in range(4 * len(labels)):
        if not misses:
            break
        best = None
        over = {p for p, _, _, _ in misses}
        for u in range(len(labels)):
            src = int(labels[u])
            if src not in over or (labels == src).sum() < 2:
                continue
            rest = [x for x in np.flatnonzero(labels == src) if x != u]
            if not nx.is_connected(unit_adj.subgraph(rest)):
                continue
            for dst in sorted({int(labels[v]) for v in unit_adj.neighbors(u)} - {src}):
                trial = labels.copy()
                trial[u] = dst
                m = split_misses(ctx, rural, sub, trial[back], code)
                if excess(m) < excess(misses) - 1e-9 and (best is None or excess(m) < excess(best[1])):
                    best = (trial, m)
        if best is None:
            break
        labels, misses = best
    return labels, misses


def split_misses_message(code: str, parts: int, misses: list[tuple[int, str, float, float]]) -> str:
    zh, en = [], []
    for _, kind, v, cap in misses:
        if kind == "area":
            zh.append(f"一份面积 {v:,.0f} m²，超过上限 {cap:,.0f} m²（--max-area-m2，超出 {v - cap:,.0f} m²）")
            en.append(f"a part of {v:,.0f} m² is over the area limit of {cap:,.0f} m² (--max-area-m2) by {v - cap:,.0f} m²")
        else:
            zh.append(f"一份到最远的居民点需 {v / 60:.1f} 分钟，超过路程上限 {cap / 60:g} 分钟"
                      f"（--max-travel-min，超出 {(v - cap) / 60:.1f} 分钟）")
            en.append(f"a part is {v / 60:.1f} min from its farthest settlement, over the travel limit of {cap / 60:g} "
                      f"min (--max-travel-min) by {(v - cap) / 60:.1f} min")
    return (f"拆分被拒绝：网格 {code} 分成 {parts} 份（完整的居民点不拆开）时，最好的分法仍有" + "；".join(zh)
            + f" / split refused: of the splits of grid {code} into {parts} parts that keep villages whole, the best "
            "still has " + "; ".join(en))


def rebalance_limits(ctx, rural, sub: gpd.GeoDataFrame, codes: list[str], back: np.ndarray,  # noqa: ANN001
                     start: np.ndarray, refused: dict) -> tuple:  # noqa: ANN001
    """(accept, prefer) of gis.partition.rebalance over the units (rows ``back`` of ``sub`` grouped;
    ``start``: each unit's grid index into ``codes``) of a rural plan. accept: no grid is pushed over
    ``--max-area-m2`` or ``--max-travel-min`` (a grid over one already is not made worse), the travel
    measured from the grid's station (or its best hub when it has none or the move takes the
    station's block away), as check_rural measures it; each move left out is noted in ``refused``
    {(grid, "area"|"travel"): (value, limit)}, the nearest miss of each kept. prefer: 0 for a move that does
    not lengthen the worst travel of the two grids."""
    n = len(start)
    u_area = np.bincount(back, weights=sub["area_m2"].to_numpy(dtype=float), minlength=n)
    u_sets: list[set[int]] = [set() for _ in range(n)]
    for row, ss in enumerate(rural.settlements_of_block):
        u_sets[back[row]].update(ss)
    area_cap = float(ctx.params.max_area_m2) if ctx.params.max_area_m2 else None
    travel_cap = float(ctx.params.max_travel_min) * 60.0 if ctx.params.max_travel_min and rural.travel else None
    grids = ctx.grids.set_index(ctx.grids["code"].astype(str))
    node = [rural.station_node(grids.loc[c].get("station_lon"), grids.loc[c].get("station_lat")) for c in codes]
    station_unit = [-1] * len(codes)
    for g, c in enumerate(codes):
        lon, lat = grids.loc[c].get("station_lon"), grids.loc[c].get("station_lat")
        if node[g] >= 0:
            hit = assign_xy(np.array([float(lon)]), np.array([float(lat)]), sub.geometry.to_numpy())[0]
            station_unit[g] = int(back[hit]) if hit >= 0 else -1
    cache: dict[tuple, float] = {}

    def travel(g: int, members: frozenset[int]) -> float:
        if travel_cap is None:
            return 0.0
        kept = node[g] >= 0 and (station_unit[g] < 0 or station_unit[g] in members)
        ss = frozenset().union(*(u_sets[u] for u in members)) if members else frozenset()
        key = (g if kept else -1, ss)
        if key not in cache:
            cache[key] = rural.worst_travel_s(ss, node[g] if kept else -1)
        return cache[key]

    def check(b: int, s: int, d: int, labels: np.ndarray) -> tuple[bool, float]:
        ms, md = frozenset(np.flatnonzero(labels == s).tolist()), frozenset(np.flatnonzero(labels == d).tolist())
        worst_before = max(travel(s, ms), travel(d, md))
        worst_after = worst_before
        ok = True
        if area_cap is not None:
            a_old = float(u_area[list(md)].sum())
            a_new = a_old + float(u_area[b])
            if a_new > area_cap * (1 + 1e-9):
                ok = False
                note_miss(refused, (d, "area"), a_new, area_cap)
        if travel_cap is not None and (u_sets[b] or b == station_unit[s]):
            ts, td = travel(s, ms - {b}), travel(d, md | {b})
            worst_after = max(ts, td)
            for g, t, t0 in ((s, ts, travel(s, ms)), (d, td, travel(d, md))):
                if t > travel_cap * (1 + 1e-9) and t > t0 + 1e-6:
                    ok = False
                    note_miss(refused, (g, "travel"), t, travel_cap)
        return ok, worst_after - worst_before

    def accept(b: int, s: int, d: int, labels: np.ndarray) -> bool:
        return check(b, s, d, labels)[0]

    def prefer(b: int, s: int, d: int, labels: np.ndarray) -> int:
        return int(check(b, s, d, labels)[1] > 1e-6)

    return accept, prefer


def note_miss(refused: dict, key: tuple[int, str], value: float, cap: float) -> None:
    """Keep the nearest miss of a limit: the smallest value over it."""
    if key not in refused or value < refused[key][0]:
        refused[key] = (value, cap)
