"""Rural grids (村): whole settlements grouped under an area and a travel-time limit.

A *settlement* is a cluster of buildings whose footprints lie within ``gap_m`` of one another
(single linkage over the footprints, not their centres: a long farmhouse row is one settlement).
A settlement is never cut: every block that holds one of its buildings (by representative point)
goes to the same grid, and so does every other settlement holding a building in those blocks (a
*unit*). A grid is one or more whole units plus the land between them (blocks without
buildings), under ``max_area_m2`` (the grid's whole area, land included) and ``max_travel_min``
(from the grid's station, a street node at its hub settlement, to each of its settlements over
the street graph); households are balanced second (merges stop at the band's upper end). A unit
over a limit on its own is a grid of its own, exempt with the reason.

Everything here is pure computation in a metric CRS: no store, no HTTP.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from gridpatrol.gis.grid_names import is_generic
from gridpatrol.gis.routing.network import WALK_SPEED_MPS
from scipy import sparse
from scipy.sparse.csgraph import connected_components, dijkstra

DEFAULT_GAP_M = 100.0


def settlement_labels(footprints: np.ndarray, gap_m: float = DEFAULT_GAP_M) -> np.ndarray:
    """Settlement number (0..S-1) of each footprint (metric geometries): connected components of
    "lies within ``gap_m`` of"; numbered by their first footprint."""
    n = len(footprints)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    tree = shapely.STRtree(footprints)
    a, b = tree.query(footprints, predicate="dwithin", distance=float(gap_m))
    m = sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, lab = connected_components(m, directed=False)
    # renumber by first occurrence: stable under reordering of components
    _, first = np.unique(lab, return_index=True)
    order = np.argsort(np.argsort(first))
    return order[lab].astype(np.int64)


@dataclass
class Settlements:
    """Settlements of one area (metric CRS): per building its settlement, per settlement its
    outline (union of footprints), households, building count and name."""

    of_building: np.ndarray
    hulls: np.ndarray
    households: np.ndarray
    buildings: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.hulls)


def find_settlements(footprints: np.ndarray, households: np.ndarray, gap_m: float = DEFAULT_GAP_M,
                     places: gpd.GeoDataFrame | None = None,
                     place_areas: gpd.GeoDataFrame | None = None) -> Settlements:
    """Settlements of ``footprints`` (metric). Names come first from ``place_areas`` (metric
    polygons with ``name`` and ``place``: villages mapped as areas, or named residential land): the
    area holding most of the settlement's buildings (by their representative points; a place=*
    area before named landuse, then the smaller); then from ``places`` (metric points with a
    ``name``: OSM place=village/hamlet nodes) inside or within ``gap_m`` of the settlement, the
    nearest first; otherwise "居民点 N" (numbered west→east is not promised, by first building).
    Generic names (住宅区, residential …: :func:`gis.grid_names.is_generic`) name nothing and are passed over."""
    lab = settlement_labels(footprints, gap_m)
    k = int(lab.max()) + 1 if len(lab) else 0
    hulls = np.array([shapely.union_all(footprints[lab == s]) for s in range(k)], dtype=object)
    hh = np.bincount(lab, weights=np.asarray(households, dtype=float), minlength=k)
    nb = np.bincount(lab, minlength=k)
    names = [f"居民点{s + 1}" for s in range(k)]
    named = np.zeros(k, dtype=bool)
    if place_areas is not None and len(place_areas) and k:
        named = _names_from_areas(footprints, lab, place_areas, names)
    if places is not None and len(places) and k:
        pts = places.geometry.to_numpy()
        pname = places["name"].to_numpy()
        tree = shapely.STRtree(hulls)
        idx, dist = tree.query_nearest(pts, max_distance=float(gap_m), return_distance=True)
        best: dict[int, tuple[float, str]] = {}
        for (p, s), d in zip(idx.T, dist):
            name = pname[p]
            if not is_generic(name) and (int(s) not in best or d < best[int(s)][0]):
                best[int(s)] = (float(d), name.strip())
        for s, (_, name) in best.items():
            if not named[s]:
                names[s] = name
    return Settlements(lab, hulls, hh, nb, names)


def _names_from_areas(footprints: np.ndarray, lab: np.ndarray, areas: gpd.GeoDataFrame, names: list[str]) -> np.ndarray:
    """Name settlements after the named area holding most of their buildings (point in polygon);
    returns which settlements got a name."""
    geoms = areas.geometry.to_numpy()
    aname = areas["name"].to_numpy()
    is_place = (areas["place"].astype(str) != "landuse=residential").to_numpy() if "place" in areas else \
        np.ones(len(areas), dtype=bool)
    size = shapely.area(geoms)
    pts = shapely.point_on_surface(footprints)
    b, a = shapely.STRtree(geoms).query(pts, predicate="within")
    votes: dict[tuple[int, int], int] = {}
    for bi, ai in zip(b, a):
        if not is_generic(aname[ai]):
            key = (int(lab[bi]), int(ai))
            votes[key] = votes.get(key, 0) + 1
    best: dict[int, tuple] = {}
    for (s, ai), n in votes.items():
        rank = (n, bool(is_place[ai]), -float(size[ai]))
        if s not in best or rank > best[s][0]:
            best[s] = (rank, ai)
    named = np.zeros(len(names), dtype=bool)
    for s, (_, ai) in best.items():
        names[s] = str(aname[ai]).strip()
        named[s] = True
    return named


def block_units(n_blocks: int, block_of_building: np.ndarray, settlement_of_building: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(unit of each block, unit of each settlement): blocks that hold buildings of one settlement
    are one unit, and so are settlements sharing a block. Buildings in no block (-1) are ignored."""
    ok = block_of_building >= 0
    k = int(settlement_of_building.max()) + 1 if len(settlement_of_building) else 0
    # bipartite graph: blocks 0..n-1, settlements n..n+k-1
    m = sparse.coo_matrix((np.ones(int(ok.sum())), (block_of_building[ok], n_blocks + settlement_of_building[ok])),
                          shape=(n_blocks + k, n_blocks + k))
    _, lab = connected_components(m, directed=False)
    return lab[:n_blocks], lab[n_blocks:]


class Travel:
    """Travel times (s) over a street network from a street node to settlements: the shortest
    path to the settlement's access node (the street node nearest its outline) plus the walk from
    that node to the settlement (off-road, at walking pace)."""

    def __init__(self, net, mode: str, hulls: np.ndarray, limit_s: float | None) -> None:  # noqa: ANN001
        from gridpatrol.gis.routing.shifts import edge_speed_mps

        self.net = net
        self.limit_s = limit_s
        n = net.n_nodes if net is not None else 0
        self.n_nodes = n
        if n == 0 or len(hulls) == 0:
            self.graph = None
            self.access = np.full(len(hulls), -1, dtype=np.int64)
            self.off_s = np.full(len(hulls), np.inf)
            self._rows: dict[int, np.ndarray] = {}
            return
        secs = net.edge_length_m / edge_speed_mps(net, mode)
        directed = mode == "drive"
        back = ~net.edge_oneway if directed else np.ones(net.n_edges, dtype=bool)
        tail = np.concatenate([net.edge_u, net.edge_v[back]])
        head = np.concatenate([net.edge_v, net.edge_u[back]])
        w = np.concatenate([secs, secs[back]])
        keep = tail != head
        # the shortest of parallel arcs: sort by weight descending so the last write (smallest) wins
        order = np.argsort(-w[keep], kind="stable")
        t, h, ww = tail[keep][order], head[keep][order], w[keep][order]
        lil = {}
        for a, b, c in zip(t.tolist(), h.tolist(), ww.tolist()):
            lil[(a, b)] = max(c, 1e-6)
        ab = np.array(list(lil.keys()), dtype=np.int64).reshape(-1, 2)
        self.graph = sparse.csr_matrix((np.fromiter(lil.values(), float, len(lil)), (ab[:, 0], ab[:, 1])),
                                       shape=(n, n))
        self.directed = directed
        pts = shapely.points(net.node_xy)
        tree = shapely.STRtree(pts)
        idx, dist = tree.query_nearest(hulls, return_distance=True, all_matches=False)
        self.access = np.full(len(hulls), -1, dtype=np.int64)
        self.off_s = np.full(len(hulls), np.inf)
        self.access[idx[0]] = idx[1]
        self.off_s[idx[0]] = dist / WALK_SPEED_MPS
        self._rows = {}

    def from_node(self, node: int) -> np.ndarray:
        """Seconds from street node ``node`` to every node (inf beyond the limit or unreachable)."""
        if node not in self._rows:
            lim = np.inf if self.limit_s is None else float(self.limit_s)
            self._rows[node] = dijkstra(self.graph, directed=self.directed, indices=int(node), limit=lim)
        return self._rows[node]

    def to_settlements(self, node: int, settlements: list[int] | np.ndarray) -> np.ndarray:
        """Seconds from street node ``node`` to each of ``settlements`` (inf when no street reaches)."""
        s = np.asarray(list(settlements), dtype=np.int64)
        if self.graph is None or node < 0:
            return np.full(len(s), np.inf)
        row = self.from_node(node)
        acc = self.access[s]
        return np.where(acc >= 0, row[np.maximum(acc, 0)] + self.off_s[s], np.inf)

    def best_hub(self, settlements: list[int], households: np.ndarray) -> tuple[int, float]:
        """(settlement, worst travel s) of the settlement whose access node reaches all of
        ``settlements`` soonest (ties: more households); (-1, inf) when no street node is known."""
        best, best_t = -1, np.inf
        for s in sorted(settlements, key=lambda x: -households[x]):
            node = int(self.access[s])
            if node < 0:
                continue
            t = float(self.to_settlements(node, settlements).max())
            if t < best_t - 1e-9:
                best, best_t = s, t
        if best < 0 and len(settlements) == 1:
            return int(settlements[0]), 0.0
        return best, best_t


@dataclass
class RuralGrid:
    """One drawn grid: its units, settlements, households, area, hub settlement and worst travel."""

    units: set[int]
    settlements: list[int]
    households: float
    area_m2: float
    hub: int = -1
    travel_s: float = 0.0
    exempt_reason: str | None = None
    limits: list[str] = field(default_factory=list)


def draw_rural(blocks_area_m2: np.ndarray, blocks_households: np.ndarray, block_xy: np.ndarray,
               adjacency: list[tuple[int, int]], block_of_building: np.ndarray, st: Settlements,
               travel: Travel, *, max_area_m2: float | None, max_travel_s: float | None,
               max_households: float, min_households: float) -> tuple[np.ndarray, list[RuralGrid]]:
    """Grid label per block (0..G-1) and the grids, see the module docstring.

    ``adjacency``: pairs of block rows that share a boundary. Deterministic: no randomness."""
    n = len(blocks_area_m2)
    unit_of_block, unit_of_settlement = block_units(n, block_of_building, st.of_building)
    units, unit_of_block = np.unique(unit_of_block, return_inverse=True)
    nu = len(units)
    remap = {int(u): i for i, u in enumerate(units)}
    settlements_of_unit: list[list[int]] = [[] for _ in range(nu)]
    for s, u in enumerate(unit_of_settlement):
        if int(u) in remap:  # a settlement all of whose buildings lie in no block is dropped
            settlements_of_unit[remap[int(u)]].append(s)
    u_area = np.bincount(unit_of_block, weights=blocks_area_m2, minlength=nu)
    u_hh = np.bincount(unit_of_block, weights=blocks_households, minlength=nu)
    u_xy = np.column_stack([np.bincount(unit_of_block, weights=block_xy[:, k] * blocks_area_m2, minlength=nu)
                            / np.maximum(u_area, 1e-9) for k in range(2)])
    ug = nx.Graph()
    ug.add_nodes_from(range(nu))
    for a, b in adjacency:
        ua, ub = int(unit_of_block[a]), int(unit_of_block[b])
        if ua != ub:
            ug.add_edge(ua, ub)
    area_cap = np.inf if max_area_m2 is None else float(max_area_m2)
    travel_cap = np.inf if max_travel_s is None else float(max_travel_s)

    grid_of_unit = np.full(nu, -1, dtype=np.int64)
    grids: dict[int, RuralGrid] = {}
    # A: every settlement unit a grid of its own
    for u in range(nu):
        if settlements_of_unit[u]:
            g = len(grids)
            grids[g] = RuralGrid({u}, list(settlements_of_unit[u]), float(u_hh[u]), float(u_area[u]))
            grid_of_unit[u] = g
    # land between them goes to the nearest touching grid that stays under the area limit,
    # the frontier growing one ring of units at a time
    while True:
        moved = False
        frontier = [u for u in range(nu) if grid_of_unit[u] < 0
                    and any(grid_of_unit[v] >= 0 for v in ug.neighbors(u))]
        claims: dict[int, int] = {}
        for u in frontier:
            best, best_d = -1, np.inf
            for g in sorted({int(grid_of_unit[v]) for v in ug.neighbors(u) if grid_of_unit[v] >= 0}):
                gr = grids[g]
                if gr.area_m2 + u_area[u] > area_cap:
                    continue
                hub_xy = _grid_xy(gr, u_xy, u_area)
                d = float(np.hypot(*(u_xy[u] - hub_xy)))
                if d < best_d:
                    best, best_d = g, d
            if best >= 0:
                claims[u] = best
        for u, g in claims.items():
            if grids[g].area_m2 + u_area[u] <= area_cap:
                grid_of_unit[u] = g
                grids[g].units.add(u)
                grids[g].area_m2 += float(u_area[u])
                moved = True
        if not moved:
            break
    # land left over (no touching grid has room, or no settlement at all): grids of land alone,
    # packed breadth first under the area limit
    for u in range(nu):
        if grid_of_unit[u] >= 0:
            continue
        g = len(grids)
        grids[g] = RuralGrid({u}, [], float(u_hh[u]), float(u_area[u]))
        grid_of_unit[u] = g
        queue = [u]
        while queue:
            x = queue.pop(0)
            for v in sorted(ug.neighbors(x)):
                if grid_of_unit[v] < 0 and not settlements_of_unit[v] and grids[g].area_m2 + u_area[v] <= area_cap:
                    grid_of_unit[v] = g
                    grids[g].units.add(v)
                    grids[g].area_m2 += float(u_area[v])
                    grids[g].households += float(u_hh[v])
                    queue.append(v)
    for gr in grids.values():
        gr.households = float(sum(u_hh[u] for u in gr.units))
        if gr.settlements:
            gr.hub, gr.travel_s = travel.best_hub(gr.settlements, st.households)
    # B: merge touching grids, smallest households first, while the merged grid keeps every limit
    # and the band's upper end; a grid in the band stops asking (it may still be asked)
    closed: set[int] = set()
    while True:
        open_ = [g for g in grids if g not in closed and grids[g].households < min_households]
        if not open_:
            break
        g = min(open_, key=lambda x: (grids[x].households, x))
        touching = sorted({int(grid_of_unit[v]) for u in grids[g].units for v in ug.neighbors(u)} - {g})
        best = None
        for h in touching:
            a, b = grids[g], grids[h]
            area = a.area_m2 + b.area_m2
            hh = a.households + b.households
            if area > area_cap or hh > max_households:
                continue
            sets = a.settlements + b.settlements
            hub, t = (travel.best_hub(sets, st.households) if sets else (-1, 0.0))
            if sets and t > travel_cap:
                continue
            in_band = hh >= min_households
            key = (not in_band, t if in_band else hh, h)
            if best is None or key < best[0]:
                best = (key, h, hub, t)
        if best is None:
            closed.add(g)
            continue
        _, h, hub, t = best
        a, b = grids[g], grids.pop(h)
        a.units |= b.units
        a.settlements += b.settlements
        a.households += b.households
        a.area_m2 += b.area_m2
        a.hub, a.travel_s = hub, t
        for u in b.units:
            grid_of_unit[u] = g
        closed.discard(g)
    _dissolve_land_grids(grids, grid_of_unit, ug, settlements_of_unit, u_area, u_hh, area_cap)
    # exemptions: one unit over a limit on its own
    out = []
    relabel = {}
    for g in sorted(grids, key=lambda x: min(grids[x].units)):
        gr = grids[g]
        relabel[g] = len(out)
        reasons = []
        own = [u for u in gr.units if settlements_of_unit[u]]
        if gr.area_m2 > area_cap:
            gr.limits.append("area")
            if len(own) == 1 and u_area[own[0]] > area_cap:
                reasons.append(f"{describe_settlements(st, gr.settlements)}的街区本身就有 {u_area[own[0]]:,.0f} m²，超过面积上限"
                               f" {area_cap:,.0f} m²（不可分割的居民点）")
            elif not own and len(gr.units) == 1:
                reasons.append(f"无居民点的单个街区 {gr.area_m2:,.0f} m²，超过面积上限 {area_cap:,.0f} m²")
        if gr.settlements and gr.travel_s > travel_cap:
            gr.limits.append("travel")
            if len(own) == 1:
                t = f"需 {gr.travel_s / 60:.1f} 分钟" if np.isfinite(gr.travel_s) else "超过上限或无法经道路到达"
                what = "单独一个居民点" if len(gr.settlements) == 1 else "是不可分开的一组居民点（同处一组街区）"
                reasons.append(f"{describe_settlements(st, gr.settlements)}{what}，从驻点到达最远处{t}，"
                               f"上限 {travel_cap / 60:g} 分钟")
        gr.exempt_reason = "；".join(reasons) or None
        out.append(gr)
    labels = np.array([relabel[int(grid_of_unit[u])] for u in unit_of_block], dtype=np.int64)
    return labels, out


def _dissolve_land_grids(grids: dict[int, RuralGrid], grid_of_unit: np.ndarray, ug: nx.Graph,
                         settlements_of_unit: list[list[int]], u_area: np.ndarray, u_hh: np.ndarray,
                         area_cap: float, rounds: int = 50) -> None:
    """Hand the land of land-only grids (no settlement) to touching grids with room under the area
    limit, one block unit at a time, each grid staying connected; a full grid touching such land
    first passes its own outer land to another neighbour with room. Grids emptied this way vanish.
    Land moves only: settlements, and so the travel of every grid, stay as they are."""
    def connected_without(g: int, u: int) -> bool:
        rest = grids[g].units - {u}
        return not rest or nx.is_connected(ug.subgraph(rest))

    def move(u: int, src: int, dst: int) -> None:
        grids[src].units.discard(u)
        grids[src].area_m2 -= float(u_area[u])
        grids[src].households -= float(u_hh[u])
        grids[dst].units.add(u)
        grids[dst].area_m2 += float(u_area[u])
        grids[dst].households += float(u_hh[u])
        grid_of_unit[u] = dst
        if not grids[src].units:
            del grids[src]

    def room_for(u: int, dst: int) -> bool:
        return grids[dst].area_m2 + u_area[u] <= area_cap

    for _ in range(rounds):
        moved = False
        for lg in sorted((g for g in grids if not grids[g].settlements), key=lambda g: (grids[g].area_m2, g)):
            if lg not in grids:
                continue
            # outer units first: those touching another grid
            for u in sorted(grids[lg].units):
                if lg not in grids or u not in grids[lg].units:
                    continue
                nbrs = sorted({int(grid_of_unit[v]) for v in ug.neighbors(u)} - {lg})
                if not nbrs or not connected_without(lg, u):
                    continue
                dst = next((h for h in nbrs if grids[h].settlements and room_for(u, h)), None)
                if dst is None:
                    # make room: a touching settlement grid passes one of its land units elsewhere
                    for h in nbrs:
                        if not grids[h].settlements:
                            continue
                        for w in sorted(grids[h].units, key=lambda x: -u_area[x]):
                            if settlements_of_unit[w] or u_area[w] < u_area[u] or not connected_without(h, w):
                                continue
                            to = next((k for k in sorted({int(grid_of_unit[v]) for v in ug.neighbors(w)} - {h, lg})
                                       if grids[k].settlements and room_for(w, k)), None)
                            if to is not None:
                                move(w, h, to)
                                if room_for(u, h):
                                    dst = h
                                break
                        if dst is not None:
                            break
                if dst is not None and room_for(u, dst):
                    move(u, lg, dst)
                    moved = True
        if not moved:
            break
    # what is left of a land-only grid joins a touching grid whole where it fits
    for lg in sorted((g for g in grids if not grids[g].settlements), key=lambda g: (grids[g].area_m2, g)):
        if lg not in grids:
            continue
        touching = sorted({int(grid_of_unit[v]) for u in grids[lg].units for v in ug.neighbors(u)} - {lg},
                          key=lambda h: (grids[h].area_m2, h))
        dst = next((h for h in touching if grids[h].area_m2 + grids[lg].area_m2 <= area_cap), None)
        if dst is not None:
            for u in sorted(grids[lg].units):
                move(u, lg, dst)


def _grid_xy(gr: RuralGrid, u_xy: np.ndarray, u_area: np.ndarray) -> np.ndarray:
    us = sorted(gr.units)
    w = np.maximum(u_area[us], 1e-9)
    return (u_xy[us] * w[:, None]).sum(axis=0) / w.sum()


def settlement_names(st: Settlements, settlements: list[int]) -> list[str]:
    """The names of ``settlements``, the most households first (a grid's name is made of the specific ones:
    gis.grid_names.grid_name)."""
    return [st.names[s] for s in sorted(settlements, key=lambda s: -st.households[s])]


def describe_settlements(st: Settlements, settlements: list[int]) -> str:
    """``settlements`` for a message: every one, numbered ones included (居民点3)."""
    names = settlement_names(st, settlements)
    return "、".join(names[:5]) + (f"等 {len(names)} 个居民点" if len(names) > 5 else "")

