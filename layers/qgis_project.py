"""A QGIS project (.qgs) next to a GeoPackage copy of the layers, styled as the web maps are."""
from __future__ import annotations

import uuid
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
from gridpatrol.gis.errors import InputError, NotFoundError
from gridpatrol.layers import mapdata
from gridpatrol.layers.export_formats import times_as_text
from gridpatrol.layers.grids import export_frame
from gridpatrol.layers.store import Store
from gridpatrol.layers.time_zones import DEFAULT_ZONE, check_zone

GPKG_NAME = "gridpatrol.gpkg"
PROJECT_NAME = "gridpatrol.qgs"
# Drawing order, bottom first (the layer tree lists them top first). Cameras are left out: they
# are secret by level and no planner map shows them.
LAYERS = ("areas", "buildings", "barriers", "roads", "grids", "routes", "incidents")
WORKLOAD_CLASSES = 8
_GEOM = {"Point": "Point", "MultiPoint": "Point", "LineString": "Line", "MultiLineString": "Line",
         "Polygon": "Polygon", "MultiPolygon": "Polygon"}
_WGS84 = {"wkt": 'GEOGCRS["WGS 84",DATUM["World Geodetic System 1984",ELLIPSOID["WGS 84",6378137,298.257223563]],'
                 'CS[ellipsoidal,2],AXIS["geodetic latitude (Lat)",north],AXIS["geodetic longitude (Lon)",east],'
                 'UNIT["degree",0.0174532925199433],ID["EPSG",4326]]',
          "proj4": "+proj=longlat +datum=WGS84 +no_defs", "srsid": "3452", "srid": "4326", "authid": "EPSG:4326",
          "description": "WGS 84", "projectionacronym": "longlat", "ellipsoidacronym": "EPSG:7030",
          "geographicflag": "true"}


@dataclass
class LayerStyle:
    """What a layer of the project looks like: its renderer, labels and the attributes they use."""

    renderer: ET.Element
    label_field: str | None = None
    attributes: set[str] = field(default_factory=set)


def _rgba(colour: str, alpha: float = 1.0) -> str:
    """QGIS's ``r,g,b,a`` of ``#rrggbb`` (or ``#rrggbbaa``: its own alpha is replaced)."""
    c = colour.lstrip("#")
    r, g, b = (int(c[i:i + 2], 16) for i in (0, 2, 4))
    return f"{r},{g},{b},{round(alpha * 255)}"


def _options(parent: ET.Element, values: dict[str, str]) -> ET.Element:
    opt = ET.SubElement(parent, "Option", type="Map")
    for k, v in values.items():
        ET.SubElement(opt, "Option", name=k, value=str(v), type="QString")
    return opt


def _symbol(kind: str, name: str, layers: list[tuple[str, dict[str, str]]], alpha: float = 1.0) -> ET.Element:
    """A ``<symbol>`` of ``kind`` (fill, line, marker) made of symbol layers (class, options)."""
    sym = ET.Element("symbol", type=kind, name=name, alpha=str(alpha), clip_to_extent="1", force_rhr="0")
    for cls, opts in layers:
        lay = ET.SubElement(sym, "layer", attrib={"class": cls, "enabled": "1", "locked": "0", "pass": "0"})
        sub = opts.pop("_subsymbol", None)
        _options(lay, opts)
        if sub is not None:
            lay.append(sub)
    return sym


def _fill(fill: str, outline: str, width_mm: float, fill_alpha: float, dashed: bool = False) -> tuple[str, dict]:
    return ("SimpleFill", {"color": _rgba(fill, fill_alpha), "outline_color": _rgba(outline),
                           "outline_width": f"{width_mm}", "outline_width_unit": "MM",
                           "outline_style": "dash" if dashed else "solid", "style": "solid" if fill_alpha else "no"})


def _line(colour: str, width_mm: float, alpha: float = 1.0) -> tuple[str, dict]:
    return ("SimpleLine", {"line_color": _rgba(colour, alpha), "line_width": f"{width_mm}", "line_width_unit": "MM",
                           "line_style": "solid", "capstyle": "round", "joinstyle": "round"})


def _marker(colour: str, outline: str, size_mm: float, shape: str = "circle") -> tuple[str, dict]:
    return ("SimpleMarker", {"name": shape, "color": _rgba(colour), "outline_color": _rgba(outline),
                             "size": f"{size_mm}", "size_unit": "MM", "outline_width": "0.2", "angle": "0"})


def _single(symbol: ET.Element) -> ET.Element:
    r = ET.Element("renderer-v2", type="singleSymbol", symbollevels="0", enableorderby="0", forceraster="0")
    ET.SubElement(r, "symbols").append(symbol)
    return r


def workload_style(grids: gpd.GeoDataFrame, band: dict) -> LayerStyle:
    """Grids graduated by households over the plan's window (blue under, yellow in, red over),
    the colours of the web grid map sampled at the middle of each class."""
    cmap = mapdata.workload_colormap_from(band["vmin"], band["vmax"])
    edges = np.linspace(band["vmin"], band["vmax"], WORKLOAD_CLASSES + 1)
    hh = grids["households"].astype(float)
    edges[0] = min(edges[0], float(np.nanmin(hh)) if len(hh) else edges[0], 0.0)
    edges[-1] = max(edges[-1], float(np.nanmax(hh)) if len(hh) else edges[-1])
    r = ET.Element("renderer-v2", type="graduatedSymbol", attr="households", graduatedMethod="GraduatedColor",
                   symbollevels="0", enableorderby="0", forceraster="0")
    ranges, symbols = ET.SubElement(r, "ranges"), ET.SubElement(r, "symbols")
    for i in range(WORKLOAD_CLASSES):
        lo, hi = float(edges[i]), float(edges[i + 1])
        mid = min(max((lo + hi) / 2, cmap.vmin), cmap.vmax)
        ET.SubElement(ranges, "range", symbol=str(i), lower=f"{lo:.3f}", upper=f"{hi:.3f}",
                      label=f"{lo:.0f} – {hi:.0f} 户", render="true")
        symbols.append(_symbol("fill", str(i), [_fill(cmap(mid)[:7], "#333333", 0.5, 0.45)]))
    return LayerStyle(r, "code", {"households", "code"})


def _roads_style() -> LayerStyle:
    """Streets grey, the major ones wider (as the web maps), labelled with their names."""
    r = ET.Element("renderer-v2", type="RuleRenderer", symbollevels="0", enableorderby="0", forceraster="0")
    rules = ET.SubElement(r, "rules", key=str(uuid.uuid4()))
    major = ", ".join(f"'{h}'" for h in sorted(mapdata.MAJOR_HIGHWAYS))
    ET.SubElement(rules, "rule", key=str(uuid.uuid4()), symbol="0", label="主干道 major", filter=f'"highway" IN ({major})')
    ET.SubElement(rules, "rule", key=str(uuid.uuid4()), symbol="1", label="街道 street", filter="ELSE")
    symbols = ET.SubElement(r, "symbols")
    symbols.append(_symbol("line", "0", [_line("#8c8c8c", 0.8)]))
    symbols.append(_symbol("line", "1", [_line("#8c8c8c", 0.3)]))
    return LayerStyle(r, "name", {"highway", "name"})


def _routes_style() -> LayerStyle:
    """Patrol routes red with arrows along them in the walking direction."""
    arrow = _symbol("marker", "@0@1", [_marker("#d61a1a", "#d61a1a", 2.6, "filled_arrowhead")])
    line = _symbol("line", "0", [_line("#d61a1a", 1.0, 0.75),
                                 ("MarkerLine", {"placements": "Interval", "interval": "25", "interval_unit": "MM",
                                                 "rotate": "1", "offset": "0", "_subsymbol": arrow})])
    return LayerStyle(_single(line), "grid_code", {"grid_code"})


STATIC_STYLES = {
    "areas": lambda: LayerStyle(_single(_symbol("fill", "0", [_fill("#d8e8ff", "#1f4fcc", 0.5, 0.3, dashed=True)])),
                                "name", {"name"}),
    "buildings": lambda: LayerStyle(_single(_symbol("fill", "0", [_fill("#bbbbbb", "#777777", 0.15, 0.6)]))),
    "barriers": lambda: LayerStyle(_single(_symbol("line", "0", [_line("#1f4e9c", 0.6)]))),
    "barriers_line": lambda: LayerStyle(_single(_symbol("line", "0", [_line("#1f4e9c", 0.6)]))),
    "barriers_polygon": lambda: LayerStyle(_single(_symbol("fill", "0", [_fill("#1f4e9c", "#1f4e9c", 0.3, 0.3)]))),
    "roads": _roads_style,
    "routes": _routes_style,
    "incidents": lambda: LayerStyle(_single(_symbol("marker", "0", [_marker("#fc4e2a", "#b30000", 2.4)]))),
}


def _srs(parent: ET.Element) -> None:
    srs = ET.SubElement(ET.SubElement(parent, "srs") if parent.tag == "maplayer" else parent, "spatialrefsys",
                        nativeFormat="Wkt")
    for k, v in _WGS84.items():
        ET.SubElement(srs, k).text = v


def _labeling(field_name: str) -> ET.Element:
    lab = ET.Element("labeling", type="simple")
    s = ET.SubElement(lab, "settings", calloutType="simple")
    ET.SubElement(s, "text-style", fieldName=field_name, isExpression="0", fontFamily="Noto Sans CJK SC",
                  fontSize="9", fontSizeUnit="Point", textColor="0,0,0,255", textOpacity="1", namedStyle="Regular")
    ET.SubElement(s, "text-buffer", bufferDraw="1", bufferSize="0.8", bufferSizeUnits="MM",
                  bufferColor="255,255,255,255", bufferOpacity="1")
    ET.SubElement(s, "placement", placement="1", dist="0", placementFlags="10", repeatDistance="0")
    ET.SubElement(s, "rendering", drawLabels="1", obstacle="1", fontLimitPixelSize="0", scaleVisibility="0")
    return lab


def write_geopackage(store: Store, path: Path, *, tz: str = DEFAULT_ZONE) -> dict[str, tuple[gpd.GeoDataFrame, str]]:
    """Copy the project's layers to the GeoPackage ``path`` (grids and buildings: the newest plan's,
    as ``export`` writes them; a layer of mixed kinds as ``<layer>_line``, ``<layer>_polygon``, …;
    times as text in the county's zone ``tz`` with the offset, as ``export`` writes them);
    {GeoPackage layer: (frame, geometry kind)} of those with features."""
    path.unlink(missing_ok=True)
    out = {}
    for layer in LAYERS:
        gdf = export_frame(store, layer) if layer in ("grids", "buildings") else store.read_layer(layer)
        gdf = gdf[~gdf.geometry.isna()].reset_index(drop=True) if len(gdf) else gdf
        if not len(gdf):
            continue
        gdf = times_as_text(gdf, tz)
        kind_of = gdf.geom_type.map(_GEOM)
        if kind_of.isna().any():
            raise InputError(f"layer {layer} has geometries QGIS layers cannot hold: "
                             f"{sorted(set(gdf.geom_type[kind_of.isna()]))}")
        kinds = sorted(set(kind_of))
        # A QGIS layer has one geometry kind: a mixed layer (barriers: rivers as lines and as
        # areas) becomes one GeoPackage layer per kind.
        for kind in kinds:
            name = layer if len(kinds) == 1 else f"{layer}_{kind.lower()}"
            part = gdf[kind_of == kind].reset_index(drop=True)
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)  # a GDAL complaint is a defect, not noise
                pyogrio.write_dataframe(part, path, layer=name, driver="GPKG", append=bool(out))
            out[name] = (part, kind)
    return out


def project_xml(layers: dict[str, tuple[gpd.GeoDataFrame, str]], styles: dict[str, LayerStyle], *,
                title: str, gpkg_name: str = GPKG_NAME) -> ET.ElementTree:
    """The .qgs document: WGS-84 project, one vector layer per GeoPackage layer with its style."""
    root = ET.Element("qgis", projectname=title, version="3.34.0-Prizren")
    ET.SubElement(root, "title").text = title
    _srs(ET.SubElement(root, "projectCrs"))
    tree = ET.SubElement(root, "layer-tree-group")
    ET.SubElement(tree, "customproperties")
    proj = ET.SubElement(root, "projectlayers")
    bounds = np.array([gdf.total_bounds for gdf, _ in layers.values()])
    extent = (bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max())
    for name in reversed(list(layers)):  # the tree lists the top layer first
        gdf, kind = layers[name]
        lid = f"{name}_{uuid.uuid5(uuid.NAMESPACE_URL, name).hex[:12]}"
        source = f"./{gpkg_name}|layername={name}"
        ET.SubElement(tree, "layer-tree-layer", id=lid, name=name, source=source, providerKey="ogr",
                      checked="Qt::Checked", expanded="1")
        ml = ET.SubElement(proj, "maplayer", type="vector", geometry=kind, autoRefreshEnabled="0",
                           simplifyDrawingHints="1", labelsEnabled="1" if styles[name].label_field else "0")
        x0, y0, x1, y1 = gdf.total_bounds
        ext = ET.SubElement(ml, "extent")
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (x0, y0, x1, y1)):
            ET.SubElement(ext, tag).text = repr(float(v))
        ET.SubElement(ml, "id").text = lid
        ET.SubElement(ml, "datasource").text = source
        ET.SubElement(ml, "layername").text = name
        _srs(ml)
        ET.SubElement(ml, "provider", encoding="UTF-8").text = "ogr"
        ml.append(styles[name].renderer)
        if styles[name].label_field:
            ml.append(_labeling(styles[name].label_field))
    order = ET.SubElement(tree, "custom-order", enabled="0")
    for name in reversed(list(layers)):
        ET.SubElement(order, "item").text = name
    canvas = ET.SubElement(root, "mapcanvas", name="theMapCanvas")
    ET.SubElement(canvas, "units").text = "degrees"
    ext = ET.SubElement(canvas, "extent")
    for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), extent):
        ET.SubElement(ext, tag).text = repr(float(v))
    _srs(ET.SubElement(canvas, "destinationsrs"))
    props = ET.SubElement(root, "properties")
    paths = ET.SubElement(props, "Paths")
    ET.SubElement(paths, "Absolute", type="bool").text = "false"
    ET.indent(root)
    return ET.ElementTree(root)


def export_qgis(store: Store, folder: str | Path, *, title: str = "gridpatrol",
                tz: str = DEFAULT_ZONE) -> tuple[Path, Path, list[str]]:
    """Write ``gridpatrol.gpkg`` and ``gridpatrol.qgs`` into ``folder``; (project, GeoPackage, layers).
    Times are text in the county's zone ``tz`` with the offset."""
    check_zone(tz, where="--tz")
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"folder {folder} does not exist", hint="create it first")
    gpkg, qgs = folder / GPKG_NAME, folder / PROJECT_NAME
    tmp = folder / (GPKG_NAME + ".part.gpkg")
    try:
        layers = write_geopackage(store, tmp, tz=tz)
        if not layers:
            raise InputError("the store has no features to export", hint="import streets and draw grids first")
        styles = {}
        for name, (gdf, _kind) in layers.items():
            if name == "grids":
                try:
                    _frame, band = mapdata.plan_frame(store)
                except NotFoundError:
                    band = {"vmin": 0.0, "vmax": float(gdf["households"].max() or 1)}
                styles[name] = workload_style(gdf, band)
            else:
                styles[name] = STATIC_STYLES[name]()
        doc = project_xml(layers, styles, title=title)
        tmp.replace(gpkg)
    finally:
        tmp.unlink(missing_ok=True)
    doc.write(qgs, encoding="utf-8", xml_declaration=True)
    return qgs, gpkg, list(layers)
