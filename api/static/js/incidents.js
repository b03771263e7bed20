/* The incident map: grids, clustered incidents, and a click → lookup panel (grid, worker, cameras in view with sectors, nearby incidents). */
(function () {
  'use strict';
  var GP = window.GP, t = GP.t, el = GP.el, cfg = GP.cfg;
  var ctx = GP.createMap(), map = ctx.map;
  var crs = cfg.crs || '';
  var panel = document.getElementById('gp-panel');
  var sectors = L.layerGroup().addTo(map);
  // SVG (not the map's canvas) so the sectors are DOM elements tests and styles can find.
  var svg = L.svg({padding: 0.5});
  var pin = null;

  // The server's optics defaults (gis.cameras.camera_defaults, in the page's config): a sector
  // is drawn as the in-view test fills in what the camera register leaves empty.
  var optics = JSON.parse(cfg.cameraDefaults);

  function sector(c) {
    var key = String(c.camera_type == null ? '' : c.camera_type).trim().toLowerCase();
    var type = Object.prototype.hasOwnProperty.call(optics.type_aliases, key) ? optics.type_aliases[key] : 'fixed';
    var dome = optics.full_circle_types.indexOf(type) >= 0;
    var full = dome || c.azimuth_deg == null || (c.fov_deg != null && c.fov_deg >= 360);
    var r = c.range_m != null ? c.range_m : optics.range_m[dome ? 'dome' : 'fixed'];
    var fov = c.fov_deg != null ? c.fov_deg : optics.fov_deg, az = c.azimuth_deg || 0;
    var a0 = full ? 0 : az - fov / 2, a1 = full ? 360 : az + fov / 2, pts = full ? [] : [[c.lat, c.lon]];
    for (var i = 0; i <= 32; i++) {
      var a = (a0 + (a1 - a0) * i / 32) * Math.PI / 180;
      pts.push([c.lat + r * Math.cos(a) / 110574, c.lon + r * Math.sin(a) / (111320 * Math.cos(c.lat * Math.PI / 180))]);
    }
    return L.polygon(pts, {color: c.in_view ? '#d7301f' : '#888', weight: 1, fillOpacity: 0.25, className: 'gp-sector', renderer: svg});
  }

  function show(lat, lon) {
    panel.dataset.state = 'loading';
    panel.replaceChildren(el('b', t('looking_up')));
    var url = '/lookup?lon=' + encodeURIComponent(lon) + '&lat=' + encodeURIComponent(lat) + (crs ? '&crs=' + encodeURIComponent(crs) : '');
    GP.getJSON(url).then(function (b) {
      sectors.clearLayers();
      if (pin) { map.removeLayer(pin); }
      pin = L.circleMarker([lat, lon], {radius: 7, color: '#000', fillColor: '#ffeb3b', fillOpacity: 1}).addTo(map);
      panel.replaceChildren();
      panel.appendChild(el('h3', t('position') + ' ' + (crs === 'gcj02' ? 'GCJ-02 ' : '') + lon.toFixed(6) + ', ' + lat.toFixed(6)));
      var g = el('div', null, 'gp-grid');
      g.appendChild(el('b', t('grid') + '：'));
      g.appendChild(el('span', b.grid ? b.grid.code + (b.grid.name ? ' ' + b.grid.name : '') : t('outside'), 'gp-grid-code'));
      if (b.grid && b.grid.worker !== undefined) { g.appendChild(el('div', t('worker') + '：' + (b.grid.worker || '—'), 'gp-worker')); }
      panel.appendChild(g);
      if (b.cameras !== undefined) {
        panel.appendChild(el('h4', t('cameras_in_view') + '：' + b.cameras.length));
        var ul = el('ul', null, 'gp-cameras');
        b.cameras.forEach(function (c) {
          ul.appendChild(el('li', c.code + ' ' + (c.name || '') + ' · ' + c.distance_m + ' m' + (c.online ? '' : ' · ' + t('offline')), 'gp-camera'));
          sector(c).addTo(sectors);
          L.circleMarker([c.lat, c.lon], {radius: 4, color: '#d7301f', fillOpacity: 1, renderer: svg}).addTo(sectors);
        });
        panel.appendChild(ul);
      }
      if (b.incidents !== undefined) {
        panel.appendChild(el('h4', t('nearby') + '：' + b.incidents.length));
        var ol = el('ul', null, 'gp-incidents');
        b.incidents.slice(0, 30).forEach(function (i) {
          var state = GP.lang === 'zh' ? (i.state_zh || i.state) : i.state;
          ol.appendChild(el('li', '#' + i.id + ' ' + i.category + ' · ' + state + ' · ' + i.distance_m + ' m · ' + GP.localTime(i.occurred_at), 'gp-incident'));
        });
        panel.appendChild(ol);
      }
      panel.dataset.state = 'loaded';
    }).catch(function (err) {
      panel.replaceChildren(el('div', err && err.message ? err.message : String(err), 'gp-error'));
      panel.dataset.state = 'error';
    });
  }

  // The cameras the user may see, before any click: a small mark each (blue online, grey not),
  // clustered; code, name, project and status in the tooltip (DOM text).
  function drawCameras(d) {
    var col = {}; d.columns.forEach(function (c, i) { col[c] = i; });
    var group = L.markerClusterGroup({chunkedLoading: true, maxClusterRadius: 40});
    d.rows.forEach(function (r) {
      var online = r[col.status] === 'online';
      var m = L.circleMarker([r[col.lat], r[col.lon]], {radius: 4, weight: 1, color: '#08306b',
        fillColor: online ? '#2171b5' : '#969696', fillOpacity: 0.9, className: 'gp-camera-mark', renderer: svg});
      m.bindTooltip(GP.tip([[t('camera'), r[col.code] + (r[col.name] ? ' ' + r[col.name] : '')],
                            [t('project'), r[col.project]], [t('status'), r[col.status]]]));
      group.addLayer(m);
    });
    group.addTo(map);
    ctx.layers.addOverlay(group, t('cameras') + ' (' + d.rows.length + ')');
  }

  var q = [];
  if (cfg.days) { q.push('days=' + encodeURIComponent(cfg.days)); }
  if (cfg.category) { q.push('category=' + encodeURIComponent(cfg.category)); }
  GP.basemap(ctx).then(function () {
    return GP.getJSON('/maps/data/grids');
  }).then(function (d) {
    var grids = L.geoJSON(d.grids, {
      style: function () { return {color: '#1f4e9c', weight: 2, fill: false}; },
      onEachFeature: function (f, layer) {
        var p = f.properties;
        layer.bindTooltip(GP.tip([[t('grid'), p.code], [t('name'), p.name], [t('worker'), p.worker],
                                  [t('households'), p.households]]), {sticky: true});
      }
    }).addTo(map);
    ctx.layers.addOverlay(grids, t('grids'));
  }).catch(function () { /* no plan yet: the incidents still show */ }).then(function () {
    return GP.getJSON('/maps/data/incidents' + (q.length ? '?' + q.join('&') : ''));
  }).then(function (d) {
    var cluster = L.markerClusterGroup({chunkedLoading: true});
    d.rows.forEach(function (r) {
      var m = L.circleMarker([r[5], r[4]], {radius: 6, color: '#b30000', weight: 1, fillColor: '#fc4e2a', fillOpacity: 0.8});
      m.bindTooltip(GP.tip(['#' + r[0] + ' ' + r[1] + ' · ' + r[2] + ' · ' + GP.localTime(r[3])]));
      cluster.addLayer(m);
    });
    cluster.addTo(map);
    ctx.layers.addOverlay(cluster, t('incidents') + ' (' + d.rows.length + ')');
    return cfg.canCams === '1' ? GP.getJSON('/maps/data/cameras').then(drawCameras) : null;
  }).then(function () {
    document.getElementById('gp-map').dataset.state = 'loaded';
    if (cfg.click) {
      var ll = cfg.click.split(',').map(Number);
      show(ll[0], ll[1]);
    }
  }).catch(GP.fail);
  map.on('click', function (e) { show(e.latlng.lat, e.latlng.lng); });
})();
