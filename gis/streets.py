"""Street networks for routing: road segments (EPSG:4326) → arrays of nodes and edges in a local metric CRS."""
from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.errors import InputError
from scipy import sparse

REQUIRED_COLUMNS = ("u", "v", "length_m", "oneway", "name", "highway", "geometry")

# Highway values a person on foot does not use (or cannot: the road does not exist yet).
NOT_WALKABLE = frozenset(
    {"motorway", "motorway_link", "construction", "proposed", "raceway", "bus_guideway", "abandoned"}
)
# Highway values a car does not use.
NOT_DRIVABLE = frozenset(
    {
        "footway", "path", "pedestrian", "steps", "cycleway", "bridleway", "corridor", "elevator",
        "platform", "construction", "proposed", "raceway", "bus_guideway", "abandoned", "via_ferrata",
    }
)
MODES = ("walk", "drive")
# access/foot/motor_vehicle values that close a way to the mode, and those that open it again
# (foot=yes on an access=private way lets people on foot through).
NO_ACCESS = frozenset({"no", "private"})
OPEN_ACCESS = frozenset({"yes", "designated", "permissive", "destination", "official", "customers", "delivery"})


@dataclass
class StreetNetwork:
    """Street segments of one mode as arrays in a local metric CRS (fast to route on).

    Nodes are numbered 0..n-1 (``node_osm`` holds their OSM ids, ``node_xy`` metres). Edge ``i``
    runs from ``edge_u[i]`` to ``edge_v[i]`` along ``edge_geom[i]`` (metric, oriented u → v);
    ``edge_oneway[i]`` means it may only be travelled u → v (always False for walking).
    ``edge_row`` is the row label of the segment in the roads GeoDataFrame it came from.
    """

    crs: pyproj.CRS
    mode: str
    node_osm: np.ndarray
    node_xy: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_length_m: np.ndarray
    edge_oneway: np.ndarray
    edge_name: np.ndarray
    edge_name_en: np.ndarray
    edge_highway: np.ndarray
    edge_geom: np.ndarray
    edge_row: np.ndarray
    _tree: shapely.STRtree | None = field(default=None, repr=False, compare=False)
    _bearings: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)
    _coords: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)
    # Per-network caches, so a network built once for a city serves every grid cheaply: the
    # WGS-84 → metric transformers, the arcs sorted for csgraphs, the csgraphs themselves.
    _transformers: dict[bool, pyproj.Transformer] = field(default_factory=dict, repr=False, compare=False)
    _sorted_arcs: dict[bool, tuple[np.ndarray, ...]] = field(default_factory=dict, repr=False, compare=False)
    _csgraphs: dict[bool, tuple[sparse.csr_matrix, np.ndarray]] = field(default_factory=dict, repr=False, compare=False)
    # A subset remembers the network it was cut from and which of its edges it holds.
    _parent: StreetNetwork | None = field(default=None, repr=False, compare=False)
    _parent_edges: np.ndarray | None = field(default=None, repr=False, compare=False)
    _parent_nodes: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n_nodes(self) -> int:
        return len(self.node_osm)

    @property
    def n_edges(self) -> int:
        return len(self.edge_u)

    def arcs(self, directed: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(tail, head, length_m, edge index) of every allowed travel direction of every edge.

        ``directed`` defaults to the mode (drive: one-way edges only forwards).
        """
        directed = self.mode == "drive" if directed is None else directed
        idx = np.arange(self.n_edges)
        back = ~self.edge_oneway if directed else np.ones(self.n_edges, dtype=bool)
        tail = np.concatenate([self.edge_u, self.edge_v[back]])
        head = np.concatenate([self.edge_v, self.edge_u[back]])
        return tail, head, np.concatenate([self.edge_length_m, self.edge_length_m[back]]), np.concatenate([idx, idx[back]])

    def csgraph(self, directed: bool | None = None, edge_mask: np.ndarray | None = None) -> sparse.csr_matrix:
        """Sparse adjacency (metres) for scipy.sparse.csgraph, the shortest of parallel edges kept.

        ``edge_mask`` restricts it to some edges. Self-loops are left out (never on a shortest path).
        """
        return self.csgraph_arcs(directed, edge_mask)[0]

    def transformer(self, inverse: bool = False) -> pyproj.Transformer:
        """WGS-84 lon/lat → this network's metric CRS (``inverse``: back), made once per network."""
        tf = self._transformers.get(inverse)
        if tf is None:
            tf = (pyproj.Transformer.from_crs(self.crs, 4326, always_xy=True) if inverse
                  else pyproj.Transformer.from_crs(4326, self.crs, always_xy=True))
            self._transformers[inverse] = tf
        return tf

    def _arcs_sorted(self, directed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """arcs() without self-loops, sorted by (tail, head, length) (cached; parallel arcs kept)."""
        got = self._sorted_arcs.get(directed)
        if got is None:
            if self._parent is not None and self._parent.mode == self.mode:
                # Cut from the parent's sorted arcs: renumbering nodes keeps their order.
                tail, head, length, eidx = self._parent._arcs_sorted(directed)
                local_edge = np.full(self._parent.n_edges, -1, dtype=np.int64)
                local_edge[self._parent_edges] = np.arange(self.n_edges)
                local_node = np.full(self._parent.n_nodes, -1, dtype=np.int64)
                local_node[self._parent_nodes] = np.arange(self.n_nodes)
                le = local_edge[eidx]
                keep = le >= 0
                got = (local_node[tail[keep]], local_node[head[keep]], length[keep], le[keep])
            else:
                tail, head, length, eidx = self.arcs(directed)
                keep = tail != head
                tail, head, length, eidx = tail[keep], head[keep], length[keep], eidx[keep]
                order = np.lexsort((length, head, tail))
                got = (tail[order], head[order], length[order], eidx[order])
            self._sorted_arcs[directed] = got
        return got

    def csgraph_arcs(self, directed: bool | None, edge_mask: np.ndarray | None = None
                      ) -> tuple[sparse.csr_matrix, np.ndarray]:
        """The csgraph and, aligned with its stored entries, the edge index of each arc."""
        directed = self.mode == "drive" if directed is None else bool(directed)
        if edge_mask is None and directed in self._csgraphs:
            return self._csgraphs[directed]
        tail, head, length, eidx = self._arcs_sorted(directed)
        if edge_mask is not None:
            keep = edge_mask[eidx]
            tail, head, length, eidx = tail[keep], head[keep], length[keep], eidx[keep]
        # csr_matrix would sum duplicate (t, h) entries; parallel streets must keep the shorter
        # (the arcs are sorted by length within each (t, h)).
        first = np.ones(len(tail), dtype=bool)
        first[1:] = (tail[1:] != tail[:-1]) | (head[1:] != head[:-1])
        tail, head, length, eidx = tail[first], head[first], length[first], eidx[first]
        # A zero-length segment would vanish as an explicit zero: give it a tiny positive weight.
        indptr = np.zeros(self.n_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(tail, minlength=self.n_nodes), out=indptr[1:])
        g = sparse.csr_matrix((np.maximum(length, 1e-6), head, indptr), shape=(self.n_nodes, self.n_nodes))
        if edge_mask is None:
            self._csgraphs[directed] = (g, eidx)
        return g, eidx

    def best_arc(self, directed: bool | None = None) -> dict[tuple[int, int], int]:
        """For every (tail, head) node pair the index of the shortest edge allowed that way."""
        g, eidx = self.csgraph_arcs(directed)
        tail = np.repeat(np.arange(self.n_nodes), np.diff(g.indptr))
        return dict(zip(zip(tail.tolist(), g.indices.tolist()), eidx.tolist()))

    def subset(self, edges: np.ndarray) -> "StreetNetwork":
        """The network of the given edges only (nodes renumbered; ``edge_row`` keeps the rows)."""
        edges = np.asarray(edges, dtype=np.int64)
        used, inv = np.unique(np.concatenate([self.edge_u[edges], self.edge_v[edges]]), return_inverse=True)
        m = len(edges)
        sub = StreetNetwork(
            crs=self.crs, mode=self.mode, node_osm=self.node_osm[used], node_xy=self.node_xy[used],
            edge_u=inv[:m].astype(np.int64), edge_v=inv[m:].astype(np.int64),
            edge_length_m=self.edge_length_m[edges], edge_oneway=self.edge_oneway[edges],
            edge_name=self.edge_name[edges], edge_name_en=self.edge_name_en[edges],
            edge_highway=self.edge_highway[edges], edge_geom=self.edge_geom[edges], edge_row=self.edge_row[edges],
        )
        # What the parent computed once (or computes now, once) is sliced, not recomputed per subset.
        sub._transformers = self._transformers
        sub._parent, sub._parent_edges, sub._parent_nodes = self, edges, used
        b0, b1 = self.bearings()
        sub._bearings = (b0[edges], b1[edges])
        return sub

    def tree(self) -> shapely.STRtree:
        """A spatial index of the edge geometries (built once per network)."""
        if self._tree is None:
            self._tree = shapely.STRtree(self.edge_geom)
        return self._tree

    def bearings(self) -> tuple[np.ndarray, np.ndarray]:
        """Heading (deg, 0 = north, clockwise) leaving u and arriving at v of every edge (cached)."""
        if self._bearings is None:
            coords, index = shapely.get_coordinates(self.edge_geom, return_index=True)
            start = np.searchsorted(index, np.arange(self.n_edges), side="left")
            end = np.searchsorted(index, np.arange(self.n_edges), side="right") - 1
            d0 = coords[np.minimum(start + 1, end)] - coords[start]
            d1 = coords[end] - coords[np.maximum(end - 1, start)]
            # A repeated vertex (a zero-length first or last piece) has no heading: look further in,
            # to the first vertex that differs, or a zero-length piece would read as "north".
            for i in np.flatnonzero(~np.any(d0, axis=1)):
                moved = np.flatnonzero(np.any(coords[start[i]:end[i] + 1] != coords[start[i]], axis=1))
                if len(moved):
                    d0[i] = coords[start[i] + moved[0]] - coords[start[i]]
            for i in np.flatnonzero(~np.any(d1, axis=1)):
                moved = np.flatnonzero(np.any(coords[start[i]:end[i] + 1] != coords[end[i]], axis=1))
                if len(moved):
                    d1[i] = coords[end[i]] - coords[start[i] + moved[-1]]
            self._bearings = (np.degrees(np.arctan2(d0[:, 0], d0[:, 1])) % 360,
                              np.degrees(np.arctan2(d1[:, 0], d1[:, 1])) % 360)
        return self._bearings

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """All edge vertices (metres) and where each edge's vertices start in them (cached)."""
        if self._coords is None:
            if self._parent is not None:
                pxy, pstart = self._parent.coords()
                e = self._parent_edges
                lens = pstart[e + 1] - pstart[e]
                start = np.zeros(len(e) + 1, dtype=np.int64)
                np.cumsum(lens, out=start[1:])
                take = np.repeat(pstart[e] - start[:-1], lens) + np.arange(start[-1])
                self._coords = (pxy[take], start)
            else:
                xy, index = shapely.get_coordinates(self.edge_geom, return_index=True)
                self._coords = (xy, np.searchsorted(index, np.arange(self.n_edges + 1), side="left"))
        return self._coords

    def path_coords(self, edges: np.ndarray, forward: np.ndarray) -> np.ndarray:
        """Vertices (metres) of the edges walked in turn, each forwards or backwards, concatenated.

        A subset reads them from the network it was cut from (nothing is copied per subset).
        """
        edges = np.asarray(edges, dtype=np.int64)
        if self._coords is None and self._parent is not None:
            return self._parent.path_coords(self._parent_edges[edges], forward)
        xy, start = self.coords()
        s, n = start[edges], start[edges + 1] - start[edges]
        off = np.zeros(len(edges) + 1, dtype=np.int64)
        np.cumsum(n, out=off[1:])
        pos = np.arange(off[-1]) - np.repeat(off[:-1], n)
        take = np.repeat(s, n) + np.where(np.repeat(np.asarray(forward, dtype=bool), n), pos, np.repeat(n - 1, n) - pos)
        return xy[take]

    def edge_line(self, e: int, forward: bool) -> np.ndarray:
        """Coordinates (metres) of edge ``e`` in the direction travelled."""
        xy = shapely.get_coordinates(self.edge_geom[e])
        return xy if forward else xy[::-1]


def allowed(roads: pd.DataFrame, mode: str) -> np.ndarray:
    """Rows of ``roads`` the mode may use by their access tags (columns access, foot, motor_vehicle).

    Closed: ``foot`` (walk) or ``motor_vehicle`` (drive) = no/private, or access = no/private
    unless the mode's own tag opens it again. Missing columns restrict nothing.
    """
    def tag(col: str) -> pd.Series:
        if col in roads.columns:
            return roads[col].astype(object)
        return pd.Series([None] * len(roads), index=roads.index, dtype=object)

    own = tag("foot" if mode == "walk" else "motor_vehicle")
    closed = own.isin(NO_ACCESS) | (tag("access").isin(NO_ACCESS) & ~own.isin(OPEN_ACCESS))
    return ~closed.to_numpy(dtype=bool)


def _check_roads(roads: gpd.GeoDataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in roads.columns]
    if missing:
        raise InputError(
            f"road layer lacks column(s) {', '.join(missing)}",
            where="roads",
            hint="import streets with `gridpatrol import-osm` (gis.osm.read_osm) first",
        )
    if roads.crs is None or not roads.crs.equals(pyproj.CRS.from_epsg(4326)):
        raise InputError(f"road layer must be EPSG:4326, not {roads.crs}", where="roads")


def street_network(
    roads: gpd.GeoDataFrame, *, mode: str = "walk", crs: pyproj.CRS | None = None
) -> StreetNetwork:
    """Build the routable street network of ``mode`` ("walk" or "drive") from road segments.

    ``roads`` is EPSG:4326 with columns u, v, length_m, oneway, name, highway, geometry (as from
    gis.osm.read_osm or the roads layer). Geometry is projected to ``crs`` (default: the UTM zone
    of the roads' centre). Walking ignores one-way restrictions and drops motorways; driving drops
    footways, steps and the like; both drop ways closed to them by access tags (``allowed``).
    Raises InputError for a layer without the needed columns.
    """
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}", hint="use walk or drive")
    _check_roads(roads)
    excluded = NOT_WALKABLE if mode == "walk" else NOT_DRIVABLE
    roads = roads[~roads["highway"].isin(excluded) & allowed(roads, mode) & roads.geometry.notna()
                  & ~roads.geometry.is_empty]
    if crs is None:
        if len(roads):
            minx, miny, maxx, maxy = roads.total_bounds
            crs = local_metric_crs((minx + maxx) / 2, (miny + maxy) / 2)
        else:
            crs = pyproj.CRS.from_epsg(3857)
    metric = roads.geometry.to_crs(crs)
    geoms = metric.to_numpy()
    u_osm = roads["u"].to_numpy(dtype=np.int64)
    v_osm = roads["v"].to_numpy(dtype=np.int64)
    node_osm, inverse = np.unique(np.concatenate([u_osm, v_osm]), return_inverse=True)
    n_e = len(roads)
    edge_u, edge_v = inverse[:n_e], inverse[n_e:]
    node_xy = np.zeros((len(node_osm), 2))
    if n_e:
        first = shapely.get_coordinates(shapely.get_point(geoms, 0))
        last = shapely.get_coordinates(shapely.get_point(geoms, -1))
        node_xy[edge_u] = first
        node_xy[edge_v] = last
    names = roads["name"].astype(object).where(roads["name"].notna(), None).to_numpy()
    if "name_zh" in roads.columns:
        # Chinese names first: the sheets are printed for Chinese grid workers.
        zh = roads["name_zh"].astype(object).where(roads["name_zh"].notna(), None).to_numpy()
        names = np.where(pd.notna(zh), zh, names)
    names_en = (roads["name_en"].astype(object).where(roads["name_en"].notna(), None).to_numpy()
                if "name_en" in roads.columns else np.full(n_e, None, dtype=object))
    length = roads["length_m"].to_numpy(dtype=float)
    length = np.where(np.isfinite(length), length, shapely.length(geoms))
    oneway = roads["oneway"].fillna(False).to_numpy(dtype=bool) if mode == "drive" else np.zeros(n_e, dtype=bool)
    return StreetNetwork(
        crs=crs,
        mode=mode,
        node_osm=node_osm,
        node_xy=node_xy,
        edge_u=edge_u.astype(np.int64),
        edge_v=edge_v.astype(np.int64),
        edge_length_m=length,
        edge_oneway=oneway,
        edge_name=names,
        edge_name_en=names_en,
        edge_highway=roads["highway"].to_numpy(dtype=object),
        edge_geom=geoms,
        edge_row=roads.index.to_numpy(),
    )


def nearest_node(net: StreetNetwork, x: float, y: float, candidates: np.ndarray | None = None) -> tuple[int, float]:
    """The node (index) nearest to metric point (x, y), among ``candidates`` if given, and its distance (m)."""
    idx = np.arange(net.n_nodes) if candidates is None else np.asarray(candidates)
    if len(idx) == 0:
        raise InputError("no street nodes to snap to")
    d = np.hypot(net.node_xy[idx, 0] - x, net.node_xy[idx, 1] - y)
    k = int(np.argmin(d))
    return int(idx[k]), float(d[k])
