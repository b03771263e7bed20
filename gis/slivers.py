"""Slivers of block plans: blocks made single-part, given to grids by majority area, detached bits absorbed."""
from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely

# A detached piece of a grid smaller than this (m²) is a sliver: no block is that small (see
# gis.blocks.build_blocks: faces under 100 m² or 4 m wide are merged into a neighbour), so it can
# only be left over where an imported edge or a merged sliver face crosses a grid boundary.
SLIVER_M2 = 100.0
_SHARED_MIN_M = 0.01  # two pieces are neighbours when they share more boundary than this (metres)


@dataclass
class Absorbed:
    """A detached piece moved from one grid label to the neighbour it shares the longest boundary with."""

    from_label: int
    to_label: int
    area_m2: float
    shared_m: float


def majority_owner(geoms_m: np.ndarray, owners_m: np.ndarray) -> np.ndarray:
    """Index of the polygon of ``owners_m`` overlapping each of ``geoms_m`` most; -1 where none
    overlaps with positive area (both in one metric CRS; ties to the lower index)."""
    out = np.full(len(geoms_m), -1, dtype=np.int64)
    if not len(geoms_m) or not len(owners_m):
        return out
    gi, oi = shapely.STRtree(owners_m).query(geoms_m, predicate="intersects")
    if not len(gi):
        return out
    share = shapely.area(shapely.intersection(geoms_m[gi], owners_m[oi]))
    best = (pd.DataFrame({"g": gi, "o": oi, "s": share}).query("s > 0")
            .sort_values(["g", "s", "o"], ascending=[True, False, True]).drop_duplicates("g"))
    out[best["g"].to_numpy()] = best["o"].to_numpy()
    return out


def shared_boundaries(geoms_m: np.ndarray) -> pd.DataFrame:
    """Pairs (a < b) of polygons sharing more than 1 cm of boundary, with ``length_m`` (metric CRS)."""
    if len(geoms_m) < 2:
        return pd.DataFrame({"a": [], "b": [], "length_m": []})
    a, b = shapely.STRtree(geoms_m).query(geoms_m, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    bnd = shapely.boundary(geoms_m)
    length = shapely.length(shapely.intersection(bnd[a], bnd[b]))
    ok = length > _SHARED_MIN_M
    return pd.DataFrame({"a": a[ok], "b": b[ok], "length_m": length[ok]})


def absorb_detached(geoms_m: np.ndarray, labels: np.ndarray, *, sliver_m2: float = SLIVER_M2,
                    ) -> tuple[np.ndarray, list[Absorbed]]:
    """Relabel pieces cut off from the rest of their label.

    ``geoms_m`` are single polygons in a metric CRS, ``labels`` their grid (-1: none). Within each
    label, every connected group of pieces but the largest whose area is below ``sliver_m2`` takes
    the label of the neighbouring piece(s) it shares the longest boundary with. Larger detached
    groups are kept (the plan reports them). Returns the new labels and what was moved.
    """
    labels = np.asarray(labels, dtype=np.int64).copy()
    pairs = shared_boundaries(geoms_m)
    area = shapely.area(geoms_m)
    moved: list[Absorbed] = []
    for _ in range(10):  # a piece moved next to another detached piece may need a second pass
        same = labels[pairs["a"].to_numpy()] == labels[pairs["b"].to_numpy()]
        g = nx.Graph()
        g.add_nodes_from(np.flatnonzero(labels >= 0).tolist())
        g.add_edges_from(zip(pairs["a"].to_numpy()[same].tolist(), pairs["b"].to_numpy()[same].tolist()))
        comps: dict[int, list[list[int]]] = {}
        for comp in nx.connected_components(g):
            comp = sorted(comp)
            comps.setdefault(int(labels[comp[0]]), []).append(comp)
        changed = False
        for lab, groups in comps.items():
            if len(groups) < 2:
                continue
            groups.sort(key=lambda c: (-area[c].sum(), c[0]))
            for comp in groups[1:]:
                a_m2 = float(area[comp].sum())
                if a_m2 >= sliver_m2:
                    continue
                inside = np.zeros(len(geoms_m), dtype=bool)
                inside[comp] = True
                ia, ib = pairs["a"].to_numpy(), pairs["b"].to_numpy()
                edge = inside[ia] ^ inside[ib]
                other = np.where(inside[ia[edge]], ib[edge], ia[edge])
                other_lab = labels[other]
                ok = (other_lab >= 0) & (other_lab != lab)
                if not ok.any():
                    continue
                by = pd.Series(pairs["length_m"].to_numpy()[edge][ok]).groupby(other_lab[ok]).sum()
                to = int(by.sort_values(ascending=False, kind="stable").index[0])
                labels[comp] = to
                moved.append(Absorbed(lab, to, a_m2, float(by.loc[to])))
                changed = True
        if not changed:
            break
    return labels, moved


def single_parts(geoms_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every polygon of (multi)polygons ``geoms_m``: (parts, index of its source, whether it is
    its source's largest part)."""
    parts, src = shapely.get_parts(np.asarray(geoms_m, dtype=object), return_index=True)
    area = shapely.area(parts)
    order = np.lexsort((-area, src))
    main = np.zeros(len(parts), dtype=bool)
    first = np.r_[True, src[order][1:] != src[order][:-1]] if len(parts) else np.zeros(0, bool)
    main[order[first]] = True
    return parts, src, main


def fold_minor_parts(parts_m: np.ndarray, src: np.ndarray, main: np.ndarray, labels: np.ndarray,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Join every minor part (not its source's largest) to the main part of the same label it
    shares the longest boundary with; a minor part with no such neighbour becomes a piece of its
    own. Returns (index of the piece each part joins, 0..k-1 numbering mains first in source
    order, then the lone minor parts), and the source index of each piece (-1 for a lone part)."""
    n = len(parts_m)
    mains = np.flatnonzero(main)
    piece = np.full(n, -1, dtype=np.int64)
    piece[mains] = np.arange(len(mains))
    pairs = shared_boundaries(parts_m)
    a, b, ln = pairs["a"].to_numpy(), pairs["b"].to_numpy(), pairs["length_m"].to_numpy()
    both = np.r_[a, b], np.r_[b, a], np.r_[ln, ln]
    cand = pd.DataFrame({"p": both[0], "q": both[1], "len": both[2]})
    cand = cand[~main[cand["p"].to_numpy()] & main[cand["q"].to_numpy()]
                & (labels[cand["p"].to_numpy()] == labels[cand["q"].to_numpy()])]
    best = cand.sort_values(["p", "len", "q"], ascending=[True, False, True]).drop_duplicates("p")
    piece[best["p"].to_numpy()] = piece[best["q"].to_numpy()]
    lone = np.flatnonzero(piece < 0)
    piece[lone] = len(mains) + np.arange(len(lone))
    source = np.r_[src[mains], np.full(len(lone), -1, dtype=np.int64)]
    return piece, source


def settle_blocks(blocks_m: gpd.GeoDataFrame, buildings_m: gpd.GeoDataFrame, *, owners_m: np.ndarray | None = None,
                  sliver_m2: float = SLIVER_M2, first_new_id: int | None = None) -> tuple[gpd.GeoDataFrame, list[Absorbed]]:
    """Blocks (metric CRS) made single polygons, each with ``owner``.

    With ``owners_m`` (grid polygons, same CRS) every part of a block goes to the grid overlapping
    it most, -1 where none does, and detached slivers are absorbed (see absorb_detached);
    without, ``owner`` is 0. The minor parts of multi-part blocks join the neighbouring block of
    their owner they share the longest boundary with. Households and buildings of reshaped
    blocks (and population, when blocks have it) are counted again from ``buildings_m``; ``area_m2`` and ``perimeter_m`` are recomputed.
    A lone part gets ``block_id`` ``first_new_id`` onwards (default: after the largest given).
    """
    from gridpatrol.gis.blocks import block_loads

    parts, src, main = single_parts(blocks_m.geometry.to_numpy())
    moved: list[Absorbed] = []
    if owners_m is None:
        lab = np.zeros(len(parts), dtype=np.int64)
    else:
        lab, moved = absorb_detached(parts, majority_owner(parts, owners_m), sliver_m2=sliver_m2)
    piece, source = fold_minor_parts(parts, src, main, lab)
    k = len(source)
    geoms = np.empty(k, dtype=object)
    order = np.argsort(piece, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(piece, minlength=k))]
    for i in range(k):
        members = parts[order[bounds[i]:bounds[i + 1]]]
        geoms[i] = members[0] if len(members) == 1 else shapely.union_all(members)
    owner = np.full(k, -1, dtype=np.int64)
    owner[piece] = lab
    # reshaped: a block that lost or gained a part, or a lone part
    n_parts = np.bincount(src, minlength=len(blocks_m))
    reshaped = (source < 0) | (np.bincount(piece, minlength=k) > 1)
    reshaped[source >= 0] |= n_parts[source[source >= 0]] > 1
    base = blocks_m.drop(columns=blocks_m.geometry.name).iloc[np.where(source >= 0, source, 0)].reset_index(drop=True)
    out = gpd.GeoDataFrame(base, geometry=geoms, crs=blocks_m.crs)
    if "block_id" in out:
        start = first_new_id if first_new_id is not None else (int(blocks_m["block_id"].max()) + 1 if len(blocks_m) else 1)
        out.loc[source < 0, "block_id"] = np.arange(start, start + int((source < 0).sum()))
    if reshaped.any():
        hh, nb = block_loads(geoms[reshaped], buildings_m)
        out.loc[reshaped, "households"] = hh
        out.loc[reshaped, "buildings"] = nb
        if "population" in out:  # persons are counted the same way (plans balanced on population)
            from gridpatrol.gis.workload import population_loads

            out.loc[reshaped, "population"] = population_loads(geoms[reshaped], buildings_m)
        if "street_m" in out:  # a lone sliver carries no street of its own
            out.loc[source < 0, "street_m"] = 0.0
    out["area_m2"] = shapely.area(geoms)
    out["perimeter_m"] = shapely.length(shapely.boundary(geoms))
    out["owner"] = owner
    return out, moved
