/* The grid plan map: grids coloured by households, code labels, our streets and buildings, check problems, a legend. */
(function () {
  'use strict';
  var GP = window.GP, t = GP.t, el = GP.el;
  var ctx = GP.createMap();
  var plan = GP.cfg.plan;

  GP.basemap(ctx, plan).then(function () {
    return GP.getJSON('/maps/data/grids' + (plan ? '?plan_id=' + encodeURIComponent(plan) : ''));
  }).then(function (d) {
    var grids = L.geoJSON(d.grids, {
      style: function (f) { return {fillColor: f.properties.fill, color: '#333', weight: 2, fillOpacity: 0.45}; },
      onEachFeature: function (f, layer) {
        var p = f.properties;
        layer.bindTooltip(GP.tip([
          [t('grid'), p.code], [t('name'), p.name], [t('worker'), p.worker], [t('households'), p.households],
          [t('buildings_n'), p.buildings], [t('street_m'), p.street_m], [t('area_m2'), p.area_m2],
          [t('compactness'), p.polsby_popper], [t('locked'), p.locked ? t('yes') : null],
          [t('exempt'), p.exempt ? t('yes') : null]]), {sticky: true});
      }
    }).addTo(ctx.map);
    var labels = L.layerGroup();
    d.labels.features.forEach(function (f) {
      var p = f.properties, xy = f.geometry.coordinates;
      var node = el('div', p.label, 'gp-grid-label');
      node.title = p.code;  // a DOM property: not parsed as HTML
      L.marker([xy[1], xy[0]], {icon: L.divIcon({html: node, className: 'gp-label-icon', iconSize: null}),
                                interactive: false}).addTo(labels);
    });
    labels.addTo(ctx.map);
    ctx.layers.addOverlay(grids, t('grids'));
    ctx.layers.addOverlay(labels, t('codes'));
    if (d.problems.features.length) {
      var problems = L.geoJSON(d.problems, {
        style: function () { return {color: '#ff00ff', weight: 4, fillColor: '#ff00ff', fillOpacity: 0.5}; },
        pointToLayer: function (f, latlng) { return L.circleMarker(latlng, {radius: 9}); },
        onEachFeature: function (f, layer) {
          var p = f.properties;
          layer.bindTooltip(GP.tip([[t('grid'), p.grid_code || p.code], p.kind, p.message]), {sticky: true});
        }
      }).addTo(ctx.map);
      ctx.layers.addOverlay(problems, t('problems'));
    }
    GP.legend(ctx.map, d.band, {legend: t('legend'), band: t('band')});
    document.getElementById('gp-map').dataset.state = 'loaded';
  }).catch(GP.fail);
})();
