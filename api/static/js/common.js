/* Shared helpers of the map pages: DOM built with textContent only, texts in zh/en, the map and our own basemap. */
(function () {
  'use strict';
  var root = document.getElementById('gp-map');
  var cfg = root ? root.dataset : {};
  var lang = cfg.lang === 'en' ? 'en' : 'zh';
  var TEXTS = {
    zh: {
      streets: '街道', buildings: '建筑', grids: '网格', codes: '网格编号', problems: '问题', incidents: '事件',
      basemap: '底图', households: '户数', buildings_n: '建筑数', street_m: '街道长度 m', area_m2: '面积 m²',
      compactness: '紧凑度', exempt: '豁免', locked: '锁定', worker: '网格员', name: '名称', grid: '网格',
      yes: '是', no: '否', legend: '每个网格的户数', band: '标准', looking_up: '查询中…',
      outside: '（不在任何网格内）', cameras_in_view: '可见摄像机', nearby: '附近事件', offline: '离线',
      position: '位置', error: '出错', length: '长度', duration: '预计用时', minutes: '分钟', start: '起点',
      end: '终点', directions: '路线指引', sheet: '路线单 PDF', gpx: 'GPX 轨迹', route: '巡查路线', km: '公里', street_names: '街道名称', villages: '村庄地名', village: '地名', place_kind: '类型', camera: '摄像机', cameras: '摄像机', project: '项目', status: '状态'
    },
    en: {
      streets: 'streets', buildings: 'buildings', grids: 'grids', codes: 'grid codes', problems: 'problems',
      incidents: 'incidents', basemap: 'basemap', households: 'households', buildings_n: 'buildings',
      street_m: 'street m', area_m2: 'area m²', compactness: 'compactness', exempt: 'exempt', locked: 'locked',
      worker: 'worker', name: 'name', grid: 'grid', yes: 'yes', no: 'no', legend: 'households per grid',
      band: 'band', looking_up: 'looking up…', outside: '(outside every grid)', cameras_in_view: 'cameras in view',
      nearby: 'nearby incidents', offline: 'offline', position: 'position', error: 'error', length: 'length',
      duration: 'estimated time', minutes: 'min', start: 'start', end: 'end', directions: 'Directions',
      sheet: 'route sheet PDF', gpx: 'GPX track', route: 'patrol route', km: 'km', street_names: 'street names', villages: 'villages and places', village: 'place', place_kind: 'kind', camera: 'camera', cameras: 'cameras', project: 'project', status: 'status'
    }
  };

  function t(key) { return TEXTS[lang][key] || key; }

  /* An element with its text set by textContent (never parsed as HTML). */
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }

  /* A tooltip/popup body: one line per [label, value] (or a plain string), as DOM nodes. */
  function tip(lines) {
    var box = el('div', null, 'gp-tip');
    lines.forEach(function (line) {
      if (line === null || line === undefined) { return; }
      if (typeof line === 'string') { box.appendChild(el('div', line)); return; }
      if (line[1] === null || line[1] === undefined || line[1] === '') { return; }
      var row = el('div');
      row.appendChild(el('b', line[0] + '：'));
      row.appendChild(document.createTextNode(String(line[1])));
      box.appendChild(row);
    });
    return box;
  }

  /* An ISO 8601 time shown in the county's zone as YYYY-MM-DD HH:mm. */
  function localTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return String(iso); }
    var parts = {};
    new Intl.DateTimeFormat('en-GB', {timeZone: cfg.timezone || 'Asia/Shanghai', year: 'numeric', month: '2-digit',
      day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23'}).formatToParts(d)
      .forEach(function (p) { parts[p.type] = p.value; });
    return parts.year + '-' + parts.month + '-' + parts.day + ' ' + parts.hour + ':' + parts.minute;
  }

  function getJSON(url) {
    return fetch(url, {credentials: 'same-origin', headers: {Accept: 'application/json'}}).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error((body && body.detail) || (t('error') + ' ' + r.status)); }
        return body;
      });
    });
  }

  /* The Leaflet map in #gp-map: no Leaflet attribution (ours is a plain text element), optional tiles. */
  function createMap() {
    var map = L.map(root, {preferCanvas: true, maxZoom: 20, attributionControl: false, zoomControl: true});
    L.control.scale({imperial: false}).addTo(map);
    map.setView([30.66, 104.06], 13);
    window.gpMap = map;  // for tests and the browser console
    var overlays = {};
    var layers = L.control.layers(null, overlays, {collapsed: true}).addTo(map);
    if (cfg.tileUrl) {
      var tiles = L.tileLayer(cfg.tileUrl, {maxZoom: 20});
      tiles.addTo(map);
      layers.addBaseLayer(tiles, t('basemap'));
    }
    return {map: map, layers: layers};
  }

  /* Street names as labels along our streets from zoom 16: a way gets one if it is longer on screen
     than its text, no two overlap, one name at most every 250 px; redrawn on zoom and pan. */
  function streetLabels(map, fc) {
    var lines = [], layer = L.layerGroup().addTo(map);
    fc.features.forEach(function (f) {
      if (!f.properties.name || !f.geometry) { return; }
      var parts = f.geometry.type === 'LineString' ? [f.geometry.coordinates] : f.geometry.coordinates;
      parts.forEach(function (c) { lines.push({name: f.properties.name, major: f.properties.major, coords: c}); });
    });
    function place() {
      layer.clearLayers();
      if (map.getZoom() < 16) { return; }
      var size = map.getSize(), placed = [], lastAt = {}, cands = [];
      lines.forEach(function (s) {
        var pts = s.coords.map(function (c) { return map.latLngToContainerPoint([c[1], c[0]]); });
        var len = 0, seg = [];
        for (var i = 1; i < pts.length; i++) { var d = pts[i].distanceTo(pts[i - 1]); seg.push(d); len += d; }
        var w = s.name.length * 12 + 6;
        if (len < w + 10) { return; }
        var half = len / 2, k = 0;
        while (k < seg.length - 1 && half > seg[k]) { half -= seg[k]; k++; }
        var a = pts[k], b = pts[k + 1], f = seg[k] ? half / seg[k] : 0;
        var mid = L.point(a.x + (b.x - a.x) * f, a.y + (b.y - a.y) * f);
        if (mid.x < 0 || mid.y < 0 || mid.x > size.x || mid.y > size.y) { return; }
        var ang = Math.atan2(b.y - a.y, b.x - a.x) * 180 / Math.PI;
        if (ang > 90) { ang -= 180; } else if (ang < -90) { ang += 180; }
        cands.push({s: s, mid: mid, ang: ang, w: w, len: len});
      });
      cands.sort(function (p, q) { return (q.s.major ? 1e6 : 0) + q.len - ((p.s.major ? 1e6 : 0) + p.len); });
      cands.slice(0, 400).forEach(function (c) {
        var r = Math.abs(Math.cos(c.ang * Math.PI / 180)), q = Math.abs(Math.sin(c.ang * Math.PI / 180));
        var hw = (c.w * r + 14 * q) / 2, hh = (c.w * q + 14 * r) / 2;
        var box = [c.mid.x - hw, c.mid.y - hh, c.mid.x + hw, c.mid.y + hh];
        var clash = placed.some(function (o) { return box[0] < o[2] && box[2] > o[0] && box[1] < o[3] && box[3] > o[1]; });
        var same = (lastAt[c.s.name] || []).some(function (p) { return p.distanceTo(c.mid) < 250; });
        if (clash || same || placed.length >= 120) { return; }
        placed.push(box);
        (lastAt[c.s.name] = lastAt[c.s.name] || []).push(c.mid);
        var node = el('div', c.s.name, 'gp-street-label');
        node.style.transform = 'translate(-50%, -50%) rotate(' + c.ang.toFixed(1) + 'deg)';
        L.marker(map.containerPointToLatLng(c.mid), {icon: L.divIcon({html: node, className: 'gp-label-icon', iconSize: null}),
                                                     interactive: false, keyboard: false}).addTo(layer);
      });
    }
    map.on('zoomend moveend', place);
    place();
    return layer;
  }

  /* Our own streets (names on hover) and buildings around the plan: the offline basemap. */
  function basemap(ctx, planId) {
    return getJSON('/maps/data/basemap' + (planId ? '?plan_id=' + encodeURIComponent(planId) : '')).then(function (b) {
      var streets = L.geoJSON(b.streets, {
        style: function (f) { return {color: '#8c8c8c', weight: f.properties.major ? 3 : 1.2}; },
        onEachFeature: function (f, layer) { if (f.properties.name) { layer.bindTooltip(tip([f.properties.name]), {sticky: true}); } }
      });
      var buildings = L.geoJSON(b.buildings, {
        style: function () { return {color: '#777', weight: 0.5, fillColor: '#bbb', fillOpacity: 0.6}; },
        onEachFeature: function (f, layer) {
          if (f.properties.name) { layer.bindTooltip(tip([f.properties.name, [t('households'), f.properties.households]]), {sticky: true}); }
        }
      });
      buildings.addTo(ctx.map);
      streets.addTo(ctx.map);
      ctx.layers.addOverlay(streets, t('streets'));
      ctx.layers.addOverlay(buildings, t('buildings'));
      ctx.map.fitBounds(b.bounds, {animate: false});
      ctx.layers.addOverlay(streetLabels(ctx.map, b.streets), t('street_names'));
      if (b.places && b.places.features.length) {  // villages (村): areas dashed, nodes as dots; names as text
        var villages = L.geoJSON(b.places, {
          style: function () { return {color: '#2e7d32', weight: 1.5, dashArray: '4 4', fill: false}; },
          pointToLayer: function (f, latlng) { return L.circleMarker(latlng, {radius: 4, color: '#2e7d32'}); },
          onEachFeature: function (f, layer) {
            layer.bindTooltip(tip([[t('village'), f.properties.name], [t('place_kind'), f.properties.place]]), {sticky: true});
          }
        }).addTo(ctx.map);
        ctx.layers.addOverlay(villages, t('villages'));
      }
      return b;
    });
  }

  // The workload legend of a plan's map: the household band, the colour ramp and its two ends;
  // words = {legend, band, middle} in the page's language (middle, when given, between the ends).
  function legend(map, band, words) {
    var c = L.control({position: 'topright'});
    c.onAdd = function () {
      var box = el('div', null, 'gp-legend');
      box.appendChild(el('div', words.legend + '（' + words.band + ' ' + band.min_households + '–' + band.max_households + '）'));
      var bar = el('div', null, 'gp-legend-bar');
      bar.style.background = 'linear-gradient(to right, ' + band.stops.join(', ') + ')';
      box.appendChild(bar);
      var scale = el('div', null, 'gp-legend-scale');
      scale.appendChild(el('span', Math.round(band.vmin)));
      if (words.middle) { scale.appendChild(el('span', words.middle)); }
      scale.appendChild(el('span', Math.round(band.vmax)));
      box.appendChild(scale);
      return box;
    };
    c.addTo(map);
  }

  function fail(err) {
    var box = document.getElementById('gp-panel') || document.getElementById('gp-directions') || document.body;
    var msg = el('div', t('error') + ': ' + (err && err.message ? err.message : String(err)), 'gp-error');
    box.appendChild(msg);
    if (box.dataset) { box.dataset.state = 'error'; }
  }

  window.GP = {cfg: cfg, lang: lang, t: t, el: el, tip: tip, localTime: localTime, getJSON: getJSON,
               createMap: createMap, basemap: basemap, legend: legend, fail: fail};
})();
