/* The patrol route map: the grid, the route line, start/end and numbered steps, and the directions list. */
(function () {
  'use strict';
  var GP = window.GP, t = GP.t, el = GP.el;
  var ctx = GP.createMap();
  var code = GP.cfg.code;
  var q = [];
  if (GP.cfg.mode) { q.push('mode=' + encodeURIComponent(GP.cfg.mode)); }
  q.push('worker=' + encodeURIComponent(GP.cfg.worker || '0'));
  var panel = document.getElementById('gp-directions');

  function ll(xy) { return [xy[1], xy[0]]; }

  // The basemap first (it fits the whole plan), then the route, whose view wins.
  GP.basemap(ctx).catch(GP.fail).then(function () {
    return GP.getJSON('/maps/data/routes/' + encodeURIComponent(code) + '?' + q.join('&'));
  }).then(function (d) {
    var line = d.route.features[0], steps = d.route.features.slice(1), p = line.properties;
    if (d.grid) {
      L.geoJSON(d.grid, {style: function () {
        return {color: '#1f4fcc', weight: 2, dashArray: '6 3', fillColor: '#d8e8ff', fillOpacity: 0.3};
      }}).addTo(ctx.map);
    }
    var path = line.geometry.coordinates.map(ll);
    var route = L.polyline(path, {color: '#d61a1a', weight: 4, opacity: 0.75}).addTo(ctx.map);
    route.bindTooltip(GP.tip([[t('route'), p.grid_code], [t('length'), (p.length_m / 1000).toFixed(2) + ' ' + t('km')]]), {sticky: true});
    L.circleMarker(path[0], {radius: 8, color: '#1a7f37', fillColor: '#2ea44f', fillOpacity: 1})
      .bindTooltip(GP.tip([t('start')])).addTo(ctx.map);
    L.circleMarker(path[path.length - 1], {radius: 6, color: '#000', fillColor: '#fff', fillOpacity: 1})
      .bindTooltip(GP.tip([t('end')])).addTo(ctx.map);
    var markers = steps.map(function (s) {
      var m = L.circleMarker(ll(s.geometry.coordinates), {radius: 5, color: '#990000', fillColor: '#fff', fillOpacity: 1});
      m.bindTooltip(GP.tip([s.properties.index + '. ' + s.properties.text]));
      return m.addTo(ctx.map);
    });
    ctx.map.fitBounds(route.getBounds(), {padding: [20, 20], animate: false});

    panel.replaceChildren();
    panel.appendChild(el('h3', t('route') + ' ' + p.grid_code));
    panel.appendChild(el('div', t('length') + '：' + (p.length_m / 1000).toFixed(2) + ' ' + t('km') + ' · ' +
      t('duration') + '：' + Math.round(p.duration_s / 60) + ' ' + t('minutes'), 'gp-totals'));
    var links = el('div', null, 'gp-links');
    var worker = '&worker=' + (Number(GP.cfg.worker || 0) + 1) + (GP.cfg.mode ? '&mode=' + encodeURIComponent(GP.cfg.mode) : '');
    var pdf = el('a', t('sheet'));
    pdf.href = '/routes/' + encodeURIComponent(code) + '/sheet.pdf?lang=' + GP.lang + worker;
    var gpx = el('a', t('gpx'));
    gpx.href = '/routes/' + encodeURIComponent(code) + '/route.gpx?' + worker.slice(1);
    links.appendChild(pdf); links.appendChild(document.createTextNode(' · ')); links.appendChild(gpx);
    panel.appendChild(links);
    panel.appendChild(el('h4', t('directions')));
    var ol = el('ol', null, 'gp-steps');
    steps.forEach(function (s, i) {
      var li = el('li', s.properties.text, 'gp-step');
      li.addEventListener('click', function () {
        ctx.map.setView(markers[i].getLatLng(), 18);
        markers[i].openTooltip();
      });
      ol.appendChild(li);
    });
    panel.appendChild(ol);
    panel.dataset.state = 'loaded';
  }).catch(GP.fail);
})();
