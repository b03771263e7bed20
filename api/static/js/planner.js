/* The planner's workbench: grids and blocks on our own map with street names, the grid list, block moves with a
   live preview, split/merge/rebalance/lock/worker edits, undo/redo, problems and versions. DOM by textContent only. */
(function () {
  'use strict';
  var GP = window.GP, el = GP.el;
  var TX = {
    zh: {
      version: '当前版本', version_n: '版本', households: '户', street_km: '街道 km', area: '面积 km²', blocks: '街区', worker: '网格员',
      selected: '已选 {n} 个街区（{h} 户）', grid: '网格', before: '编辑前', after: '编辑后', status: '状态',
      in: '在标准内', below: '低于标准', above: '高于标准', saved: '已保存为版本 {v}：{m}', unchanged: '没有变化，未生成新版本（仍为版本 {v}）：{m}', previewing: '预览中…',
      ok_to_move: '可以移动', pick_grid: '先在列表中点击一个网格', tick_two: '至少勾选两个网格',
      tick_one: '至少勾选一个网格', reloaded: '已重新载入当前版本 {v}。', station_at: '站点：{x}, {y}',
      click_station: '在地图上点击站点位置', legend: '每个网格的户数', legend_workload: '每个网格的工作量', workload: '工作量', band: '标准', target_tag: '目标',
      source_tag: '来源', deviation: '偏差', no_problems: '没有问题', diff: '与当前版本对比',
      changed: '变动建筑 {n} 栋，{h} 户', building: '建筑', from: '原网格', to: '新网格', none: '无',
      locked_tag: '锁定', population: '人口', nothing: '未选择街区',
      job_draw: '重新划分网格', job_routes: '规划巡查路线', job_rebalance: '重新平衡网格',
      job_queued: '{what}：已排队，等待处理…', job_running: '{what}：第 {done}/{total} 步（{step}）',
      job_done: '{what}：已完成', job_failed: '{what}：失败：{error}', job_cancelled: '{what}：已取消',
      routes_done: '已规划 {n} 个网格的路线，{f} 个失败', drawn: '已生成新方案（版本 {v}）'
    },
    en: {
      version: 'version', version_n: 'version', households: 'hh', street_km: 'street km', area: 'area km²', blocks: 'blocks', worker: 'worker',
      selected: '{n} blocks selected ({h} households)', grid: 'grid', before: 'before', after: 'after', status: 'status',
      in: 'in band', below: 'below band', above: 'above band', saved: 'saved as version {v}: {m}', unchanged: 'nothing changed, no new version (still version {v}): {m}', previewing: 'previewing…',
      ok_to_move: 'the move keeps every rule', pick_grid: 'click a grid in the list first', tick_two: 'tick at least two grids',
      tick_one: 'tick at least one grid', reloaded: 'reloaded the current version {v}.', station_at: 'station: {x}, {y}',
      click_station: 'click the station on the map', legend: 'households per grid', legend_workload: 'workload per grid', workload: 'workload', band: 'band', target_tag: 'target',
      source_tag: 'source', deviation: 'deviation', no_problems: 'no problems', diff: 'compare with the current version',
      changed: '{n} buildings changed grid, {h} households', building: 'building', from: 'from', to: 'to', none: 'none',
      locked_tag: 'locked', population: 'population', nothing: 'No block selected',
      job_draw: 'Redrawing the grids', job_routes: 'Planning patrol routes', job_rebalance: 'Rebalancing grids',
      job_queued: '{what}: queued, waiting for a worker…', job_running: '{what}: step {done} of {total} ({step})',
      job_done: '{what}: done', job_failed: '{what}: failed: {error}', job_cancelled: '{what}: cancelled',
      routes_done: 'routes planned for {n} grids, {f} failed', drawn: 'new plan drawn (version {v})'
    }
  };
  function tr(key, vals) {
    var s = TX[GP.lang][key] || key;
    Object.keys(vals || {}).forEach(function (k) { s = s.split('{' + k + '}').join(String(vals[k])); });
    return s;
  }
  var $ = function (id) { return document.getElementById(id); };
  var root = $('gp-map');
  var ctx = GP.createMap(), map = ctx.map;
  map.boxZoom.disable();
  var S = {plan: null, band: null, grids: [], gridLayer: null, labelLayer: null, blockLayer: null, blockOf: {},
           selected: {}, current: null, ticked: {}, stationPick: false, station: null, problems: null, seq: 0};

  // ------------------------------------------------------------------ messages and requests
  function say(text, state) { var m = $('gp-msg'); m.textContent = text; m.dataset.state = state || 'ok'; }

  /* POST JSON to an edit endpoint made on the version the page shows; a stale version reloads the page's data. */
  function edit(path, body) {
    var sep = path.indexOf('?') < 0 ? '?' : '&';
    var url = path + sep + 'base=' + S.plan + (path.indexOf('/undo') < 0 && path.indexOf('/redo') < 0 ? '&plan_id=' + S.plan : '');
    say(tr('previewing'), 'busy');
    return fetch(url, {method: 'POST', credentials: 'same-origin',
                       headers: {'Content-Type': 'application/json', Accept: 'application/json', 'X-GridPatrol-Page': '1'},
                       body: JSON.stringify(body || {})}).then(function (r) {
      return r.json().then(function (d) {
        if (!r.ok) {
          var msg = (d && d.detail) || ('HTTP ' + r.status);
          if (d && d.error === 'StaleVersionError') {
            return load().then(function () { say(msg + ' ' + tr('reloaded', {v: S.plan}), 'error'); });
          }
          say(msg, 'error');
          return null;
        }
        clearSelection();
        S.ticked = {};
        var same = d.parent_plan_id !== undefined && d.plan_id === d.parent_plan_id;  // nothing moved: no new version
        return load().then(function () { say(tr(same ? 'unchanged' : 'saved', {v: d.plan_id, m: d.message}), 'ok'); return d; });
      });
    }).catch(function (e) { say(String(e.message || e), 'error'); });
  }


  // ------------------------------------------------------------------ grids, labels, blocks
  // judged by the plan's own workload (households, persons or a weighted sum) and its band
  function gridLoad(p) { return p.workload !== undefined && p.workload !== null ? p.workload : p.households; }
  function target() { return S.band.target_workload || S.band.target_households; }
  function deviation(p) { return target() ? (gridLoad(p) - target()) / target() : 0; }
  function onHouseholds() { return !S.band.balance || S.band.balance === 'households'; }

  function drawGrids(d) {
    if (S.gridLayer) { map.removeLayer(S.gridLayer); map.removeLayer(S.labelLayer); }
    S.grids = d.grids.features;
    S.gridLayer = L.geoJSON(d.grids, {
      style: function (f) {
        return {fillColor: f.properties.fill, color: f.properties.code === S.current ? '#0033cc' : '#333',
                weight: f.properties.code === S.current ? 4 : 2, fillOpacity: 0.45};
      },
      onEachFeature: function (f, layer) {
        var p = f.properties;
        layer.bindTooltip(GP.tip([[GP.t('grid'), p.code], [GP.t('name'), p.name], [GP.t('worker'), p.worker],
          [GP.t('households'), p.households], [GP.t('street_m'), p.street_m], [GP.t('locked'), p.locked ? GP.t('yes') : null]]),
          {sticky: true});
      }
    }).addTo(map);
    S.labelLayer = L.layerGroup();
    var names = {};
    S.grids.forEach(function (f) { names[f.properties.code] = f.properties.name; });
    d.labels.features.forEach(function (f) {
      var xy = f.geometry.coordinates, node = el('div', f.properties.label, 'gp-grid-label');
      if (names[f.properties.code]) { node.appendChild(el('div', names[f.properties.code], 'gp-grid-name')); }
      node.title = f.properties.code;
      L.marker([xy[1], xy[0]], {icon: L.divIcon({html: node, className: 'gp-label-icon', iconSize: null}),
                                interactive: false}).addTo(S.labelLayer);
    });
    S.labelLayer.addTo(map);
  }

  function blockStyle(f) {
    var on = S.selected[f.properties.block_id];
    return {color: on ? '#e65100' : '#555', weight: on ? 2 : 0.6, dashArray: on ? null : '2 3',
            fillColor: '#ff9800', fillOpacity: on ? 0.6 : 0.02};
  }

  function drawBlocks(fc) {
    if (S.blockLayer) { map.removeLayer(S.blockLayer); }
    S.blockOf = {};
    S.blockLayer = L.geoJSON(fc, {style: blockStyle, onEachFeature: function (f, layer) {
      S.blockOf[f.properties.block_id] = layer;
      layer.on('click', function (e) {
        if (S.stationPick) { return; }
        L.DomEvent.stopPropagation(e);
        var id = f.properties.block_id, add = e.originalEvent.shiftKey || e.originalEvent.ctrlKey || e.originalEvent.metaKey;
        if (!add) { S.selected = {}; }
        if (S.selected[id] && add) { delete S.selected[id]; } else { S.selected[id] = f.properties; }
        selectionChanged(true);
      });
    }}).addTo(map);
  }

  // ------------------------------------------------------------------ box selection (shift-drag)
  var box = null, boxStart = null;
  document.addEventListener('keydown', function (e) { if (e.key === 'Shift') { map.dragging.disable(); } });
  document.addEventListener('keyup', function (e) { if (e.key === 'Shift') { map.dragging.enable(); } });
  map.on('mousedown', function (e) {
    if (!e.originalEvent.shiftKey) { return; }
    boxStart = e.latlng;
  });
  map.on('mousemove', function (e) {
    if (!boxStart) { return; }
    var b = L.latLngBounds(boxStart, e.latlng);
    if (box) { box.setBounds(b); } else { box = L.rectangle(b, {color: '#e65100', weight: 1, fillOpacity: 0.1, interactive: false}).addTo(map); }
  });
  map.on('mouseup', function (e) {
    if (!boxStart) { return; }
    var b = L.latLngBounds(boxStart, e.latlng), n = 0;
    boxStart = null;
    if (box) { map.removeLayer(box); box = null; }
    if (b.getNorthEast().equals(b.getSouthWest())) { return; }
    Object.keys(S.blockOf).forEach(function (id) {
      var layer = S.blockOf[id];
      if (b.contains(layer.getBounds().getCenter())) { S.selected[id] = layer.feature.properties; n++; }
    });
    if (n) { selectionChanged(true); }
  });

  // ------------------------------------------------------------------ selection and preview
  function clearSelection() { S.selected = {}; selectionChanged(false); }

  function selectionChanged(preview) {
    if (S.blockLayer) { S.blockLayer.setStyle(blockStyle); }
    var ids = Object.keys(S.selected), hh = 0;
    ids.forEach(function (id) { hh += S.selected[id].households || 0; });
    $('gp-selection').textContent = ids.length ? tr('selected', {n: ids.length, h: Math.round(hh)}) : tr('nothing');
    $('gp-commit').disabled = true;
    if (!ids.length) {
      $('gp-preview').textContent = '';
      $('gp-preview').dataset.state = 'idle';
      $('gp-target').textContent = '';
      return;
    }
    showTab('move');
    if (preview) { runPreview(null); }
  }

  function fmt(v, nd) { return (v === null || v === undefined) ? '' : Number(v).toFixed(nd || 0); }

  function runPreview(to) {
    var ids = Object.keys(S.selected).map(Number), seq = ++S.seq, box = $('gp-preview');
    box.dataset.state = 'busy';
    box.textContent = tr('previewing');
    fetch('/grids/preview-move?plan_id=' + S.plan, {method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', Accept: 'application/json', 'X-GridPatrol-Page': '1'},
      body: JSON.stringify({items: ids, to: to || null})}).then(function (r) {
      return r.json().then(function (d) { return {ok: r.ok, d: d}; });
    }).then(function (res) {
      if (seq !== S.seq) { return; }  // a newer selection's preview is on its way
      box.textContent = '';
      if (!res.ok) { box.appendChild(el('div', res.d.detail, 'gp-refusal')); box.dataset.state = 'error'; return; }
      var d = res.d, sel = $('gp-target');
      sel.textContent = '';
      d.neighbours.forEach(function (c) { var o = el('option', c); o.value = c; sel.appendChild(o); });
      if (d.neighbours.indexOf(d.to) < 0) { var o = el('option', d.to); o.value = d.to; sel.appendChild(o); }
      sel.value = d.to;
      var table = el('table'), head = el('tr');
      [GP.t('grid'), tr('households'), tr('street_km'), tr('area'), tr('blocks'), tr('status')].forEach(function (h) {
        head.appendChild(el('th', h));
      });
      table.appendChild(head);
      d.grids.forEach(function (g) {
        var row = el('tr');
        row.dataset.code = g.code;
        var name = el('td', g.code + (g.name ? ' ' + g.name : '') + '（' + tr(g.role === 'target' ? 'target_tag' : 'source_tag') + '）');
        row.appendChild(name);
        row.appendChild(el('td', fmt(g.before.households) + ' → ' + fmt(g.after.households), 'gp-hh'));
        row.appendChild(el('td', fmt(g.before.street_m / 1000, 2) + ' → ' + fmt(g.after.street_m / 1000, 2)));
        row.appendChild(el('td', fmt(g.before.area_m2 / 1e6, 3) + ' → ' + fmt(g.after.area_m2 / 1e6, 3)));
        row.appendChild(el('td', g.before.n_blocks + ' → ' + g.after.n_blocks));
        row.appendChild(el('td', tr(g.after.status), 'gp-status-' + g.after.status));
        table.appendChild(row);
      });
      box.appendChild(table);
      if (!d.refusals.length) { box.appendChild(el('div', tr('ok_to_move'), 'gp-status-in')); }
      d.refusals.forEach(function (r) { box.appendChild(el('div', r.message, r.blocking ? 'gp-refusal' : 'gp-refusal gp-refusal-soft')); });
      (d.warnings || []).forEach(function (w) { box.appendChild(el('div', w.message, 'gp-refusal gp-refusal-soft')); });
      var soft = d.refusals.every(function (r) { return !r.blocking; });
      $('gp-commit').disabled = !(d.ok && (soft && (!d.refusals.length || $('gp-force').checked)));
      box.dataset.state = d.ok && !d.refusals.length ? 'ok' : 'refused';
      S.preview = d;
    }).catch(function (e) { box.textContent = String(e.message || e); box.dataset.state = 'error'; });
  }
  $('gp-target').addEventListener('change', function () { runPreview($('gp-target').value); });
  $('gp-force').addEventListener('change', function () { if (S.preview) { runPreview(S.preview.to); } });
  $('gp-clear').addEventListener('click', clearSelection);
  $('gp-commit').addEventListener('click', function () {
    if (!S.preview) { return; }
    edit('/grids/move-blocks', {to: S.preview.to, items: S.preview.blocks, force: $('gp-force').checked});
  });

  // ------------------------------------------------------------------ grid list
  function gridRows() {
    var q = $('gp-search').value.trim().toLowerCase(), key = $('gp-sort').value;
    var rows = S.grids.map(function (f) { return f.properties; }).filter(function (p) {
      return !q || [p.code, p.name, p.worker].some(function (v) { return v && String(v).toLowerCase().indexOf(q) >= 0; });
    });
    rows.sort(function (a, b) {
      if (key === 'households') { return b.households - a.households; }
      if (key === 'street_m') { return b.street_m - a.street_m; }
      if (key === 'deviation') { return Math.abs(deviation(b)) - Math.abs(deviation(a)); }
      return a.code < b.code ? -1 : a.code > b.code ? 1 : 0;
    });
    return rows;
  }

  function renderList() {
    var list = $('gp-grid-list');
    list.textContent = '';
    gridRows().forEach(function (p) {
      var li = el('li', null, p.code === S.current ? 'gp-current' : '');
      li.dataset.code = p.code;
      var tick = el('input');
      tick.type = 'checkbox';
      tick.checked = !!S.ticked[p.code];
      tick.setAttribute('aria-label', p.code);
      tick.addEventListener('click', function (e) { e.stopPropagation(); if (tick.checked) { S.ticked[p.code] = true; } else { delete S.ticked[p.code]; } });
      li.appendChild(tick);
      var sw = el('span', null, 'gp-swatch');
      sw.style.background = p.fill;
      li.appendChild(sw);
      li.appendChild(el('span', p.code, 'gp-grid-code'));
      if (p.name) { li.appendChild(document.createTextNode(' ' + p.name)); }
      if (p.locked) { li.appendChild(el('span', '（' + tr('locked_tag') + '）', 'gp-locked')); }
      var dev = deviation(p);
      li.appendChild(el('div', Math.round(p.households) + ' ' + tr('households') +
        (onHouseholds() ? '' : ' · ' + tr('workload') + ' ' + fmt(gridLoad(p), 1)) + ' · ' + tr('deviation') + ' ' +
        (dev >= 0 ? '+' : '') + Math.round(dev * 100) + '% · ' + fmt(p.street_m / 1000, 2) + ' ' + tr('street_km') +
        (p.worker ? ' · ' + tr('worker') + ' ' + p.worker : ''), 'muted'));
      li.addEventListener('click', function () { focusGrid(p.code); });
      list.appendChild(li);
    });
  }
  $('gp-search').addEventListener('input', renderList);
  $('gp-sort').addEventListener('change', renderList);

  function focusGrid(code) {
    S.current = code;
    S.grids.forEach(function (f) {
      if (f.properties.code === code) {
        $('gp-grid-name').value = f.properties.name || '';
        $('gp-worker').value = f.properties.worker || '';
      }
    });
    S.gridLayer.eachLayer(function (l) { if (l.feature.properties.code === code) { map.fitBounds(l.getBounds(), {animate: false}); } });
    S.gridLayer.setStyle(S.gridLayer.options.style);
    renderList();
  }

  // ------------------------------------------------------------------ grid edits
  function ticked() { return Object.keys(S.ticked).filter(function (c) { return S.grids.some(function (f) { return f.properties.code === c; }); }); }
  function needCurrent() { if (!S.current) { say(tr('pick_grid'), 'error'); } return S.current; }
  $('gp-split').addEventListener('click', function () {
    if (needCurrent()) { edit('/grids/' + encodeURIComponent(S.current) + '/split', {parts: Number($('gp-parts').value) || 2, force: $('gp-force-grids').checked}); }
  });
  $('gp-merge').addEventListener('click', function () {
    var c = ticked(); if (c.length < 2) { say(tr('tick_two'), 'error'); return; } edit('/grids/merge', {codes: c, force: $('gp-force-grids').checked});
  });
  $('gp-rebalance').addEventListener('click', function () {
    var c = ticked(); if (c.length < 2) { say(tr('tick_two'), 'error'); return; }
    runJob('rebalance', {codes: c, force: $('gp-force-grids').checked, plan_id: S.plan}, 'job_rebalance').then(function (j) {
      if (!j) { return; }
      clearSelection();
      S.ticked = {};
      var same = j.result.plan_id === j.result.parent_plan_id;  // nothing moved: no new version
      return load().then(function () { say(tr(same ? 'unchanged' : 'saved', {v: j.result.plan_id, m: (j.result.changed || []).join(', ')}), 'ok'); });
    });
  });
  $('gp-draw-all').addEventListener('click', function () {
    runJob('draw-grids', {}, 'job_draw').then(function (j) {
      if (j) { return load().then(function () { say(tr('drawn', {v: j.result.plan_id}), 'ok'); }); }
    });
  });
  $('gp-plan-routes').addEventListener('click', function () {
    runJob('plan-routes', {plan_id: S.plan}, 'job_routes').then(function (j) {
      if (j) { say(tr('routes_done', {n: j.result.planned, f: Object.keys(j.result.failed || {}).length}), 'ok'); }
    });
  });

  // ------------------------------------------------------------------ long work as jobs, with a progress bar
  /* Queue a job (POST /jobs) and follow it (GET /jobs/{id}) in the progress bar until it ends; resolves with
     the done job, or null (refused, failed, cancelled: the reason is shown). Every value goes in by textContent. */
  function runJob(kind, params, what) {
    var box = $('gp-job'), bar = $('gp-job-bar'), text = $('gp-job-text'), label = tr(what);
    if (S.job) { return Promise.resolve(null); }  // one long operation at a time on this page
    function show(j) {
      var p = j.progress || {}, total = p.total || 0, done = p.done || 0;
      box.hidden = false;
      box.dataset.state = j.state;
      box.dataset.job = j.id;
      bar.max = Math.max(total, 1);
      bar.value = j.state === 'done' ? bar.max : Math.min(done, bar.max);
      var key = {queued: 'job_queued', running: total ? 'job_running' : 'job_queued', done: 'job_done',
                 failed: 'job_failed', cancelled: 'job_cancelled'}[j.state] || 'job_queued';
      text.textContent = tr(key, {what: label, done: done, total: total, step: p.step || '…', error: j.error || ''});
      $('gp-job-cancel').hidden = j.state !== 'queued' && j.state !== 'running';
    }
    S.job = 'starting';
    delete box.dataset.job;
    box.dataset.state = 'idle';
    box.hidden = true;
    return fetch('/jobs', {method: 'POST', credentials: 'same-origin',
                           headers: {'Content-Type': 'application/json', Accept: 'application/json', 'X-GridPatrol-Page': '1'},
                           body: JSON.stringify({kind: kind, params: params})}).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) { S.job = null; say((j && j.detail) || ('HTTP ' + r.status), 'error'); return null; }
        S.job = j.id;
        show(j);
        return new Promise(function (resolve) {
          function poll() {
            GP.getJSON('/jobs/' + encodeURIComponent(j.id)).then(function (now) {
              show(now);
              if (now.state === 'queued' || now.state === 'running') { setTimeout(poll, 700); return; }
              S.job = null;
              if (now.state === 'failed') { say(tr('job_failed', {what: label, error: now.error || ''}), 'error'); }
              resolve(now.state === 'done' ? now : null);
            }).catch(function (e) { setTimeout(poll, 2000); say(String(e.message || e), 'error'); });
          }
          setTimeout(poll, 300);
        });
      });
    }).catch(function (e) { S.job = null; say(String(e.message || e), 'error'); return null; });
  }
  $('gp-job-cancel').addEventListener('click', function () {
    var id = $('gp-job').dataset.job;
    if (!id) { return; }
    fetch('/jobs/' + encodeURIComponent(id), {method: 'DELETE', credentials: 'same-origin',
                                              headers: {Accept: 'application/json', 'X-GridPatrol-Page': '1'}});
  });
  function lockEdit(locked) {
    var c = ticked();
    if (!c.length && S.current) { c = [S.current]; }
    if (!c.length) { say(tr('tick_one'), 'error'); return; }
    edit('/grids/lock', {codes: c, locked: locked});
  }
  $('gp-lock').addEventListener('click', function () { lockEdit(true); });
  $('gp-unlock').addEventListener('click', function () { lockEdit(false); });
  $('gp-station').addEventListener('click', function () { S.stationPick = true; say(tr('click_station'), 'ok'); });
  map.on('click', function (e) {
    if (!S.stationPick) { return; }
    S.stationPick = false;
    S.station = e.latlng;
    $('gp-station-at').textContent = tr('station_at', {x: e.latlng.lng.toFixed(6), y: e.latlng.lat.toFixed(6)});
  });
  $('gp-assign').addEventListener('click', function () {
    if (!needCurrent()) { return; }
    var body = {worker: $('gp-worker').value.trim() || null};
    if (S.station) { body.station_lon = S.station.lng; body.station_lat = S.station.lat; }
    edit('/grids/' + encodeURIComponent(S.current) + '/worker', body);
  });
  $('gp-rename').addEventListener('click', function () {
    if (!needCurrent()) { return; }
    edit('/grids/' + encodeURIComponent(S.current) + '/name', {name: $('gp-grid-name').value.trim() || null});
  });
  $('gp-undo').addEventListener('click', function () { edit('/grids/undo'); });
  $('gp-redo').addEventListener('click', function () { edit('/grids/redo'); });

  // ------------------------------------------------------------------ problems, versions, tabs
  function renderProblems(fc) {
    var list = $('gp-problems');
    list.textContent = '';
    if (S.problems) { map.removeLayer(S.problems); }
    if (!fc.features.length) { list.appendChild(el('li', tr('no_problems'))); return; }
    S.problems = L.geoJSON(fc, {style: function () { return {color: '#ff00ff', weight: 4, fillOpacity: 0.3}; },
                                pointToLayer: function (f, ll) { return L.circleMarker(ll, {radius: 9}); }}).addTo(map);
    S.problems.eachLayer(function (layer) {
      var p = layer.feature.properties;
      var li = el('li', (p.grid_code || p.code || '') + ' · ' + (p.kind || '') + (p.message ? ' · ' + p.message : ''));
      li.addEventListener('click', function () {
        if (layer.getBounds) { map.fitBounds(layer.getBounds(), {animate: false, maxZoom: 18}); } else { map.setView(layer.getLatLng(), 18); }
      });
      list.appendChild(li);
    });
  }

  function renderVersions() {
    return GP.getJSON('/grids/versions').then(function (vs) {
      var list = $('gp-versions');
      list.textContent = '';
      vs.slice(0, 200).forEach(function (v) {
        var li = el('li');
        li.dataset.plan = v.plan_id;
        li.appendChild(el('b', tr(v.plan_id === S.plan ? 'version' : 'version_n') + ' ' + v.plan_id + (v.plan_id === S.plan ? ' ●' : '')));
        li.appendChild(document.createTextNode(' ' + (v.created_at ? GP.localTime(v.created_at) : '') + ' · ' + (v.created_by || '') + ' · ' + (v.note || v.method)));
        if (v.plan_id !== S.plan) {
          var b = el('button', tr('diff'));
          b.type = 'button';
          b.addEventListener('click', function (e) { e.stopPropagation(); showDiff(v.plan_id, li); });
          li.appendChild(b);
        }
        list.appendChild(li);
      });
    });
  }

  function showDiff(other, li) {
    GP.getJSON('/grids/diff?a=' + other + '&b=' + S.plan).then(function (d) {
      var box = el('div', tr('changed', {n: d.summary.buildings_changed, h: Math.round(d.summary.households_changed)}), 'gp-diff');
      var table = el('table'), head = el('tr');
      [tr('building'), tr('households'), tr('from'), tr('to')].forEach(function (h) { head.appendChild(el('th', h)); });
      table.appendChild(head);
      d.changes.slice(0, 200).forEach(function (c) {
        var row = el('tr');
        [c.name || (c.osm_type + '/' + c.osm_id), fmt(c.households), c.grid_a || tr('none'), c.grid_b || tr('none')].forEach(function (v) { row.appendChild(el('td', v)); });
        table.appendChild(row);
      });
      box.appendChild(table);
      drawDiff(d.changes);
      var old = li.querySelector('.gp-diff');
      if (old) { li.removeChild(old); }
      li.appendChild(box);
    }).catch(GP.fail);
  }

  // The changed buildings on the map: a ring each, tooltip "from → to" (DOM text, never HTML).
  function drawDiff(changes) {
    if (S.diffLayer) { map.removeLayer(S.diffLayer); }
    S.diffLayer = L.layerGroup().addTo(map);
    S.diffSvg = S.diffSvg || L.svg();  // SVG over the canvas-drawn map: rings stay sharp and can be found
    var pts = [];
    changes.slice(0, 5000).forEach(function (c) {
      if (c.lon === null || c.lat === null || c.lon === undefined) { return; }
      var m = L.circleMarker([c.lat, c.lon], {radius: 6, color: '#ff00ff', weight: 3, fill: false, className: 'gp-diff-mark',
                                              renderer: S.diffSvg});
      m.bindTooltip(GP.tip([[tr('building'), c.name || (c.osm_type + '/' + c.osm_id)], [tr('households'), fmt(c.households)],
                           [tr('from'), c.grid_a || tr('none')], [tr('to'), c.grid_b || tr('none')]]));
      m.addTo(S.diffLayer);
      pts.push([c.lat, c.lon]);
    });
    if (pts.length) { map.fitBounds(L.latLngBounds(pts).pad(0.3), {animate: false, maxZoom: 18}); }
  }

  function showTab(name) {
    Array.prototype.forEach.call(document.querySelectorAll('.gp-tabs button'), function (b) {
      b.className = b.dataset.tab === name ? 'gp-tab-on' : '';
    });
    ['grids', 'move', 'problems', 'versions'].forEach(function (n) { $('gp-tab-' + n).hidden = n !== name; });
    if (name === 'versions') { renderVersions().catch(GP.fail); }
  }
  Array.prototype.forEach.call(document.querySelectorAll('.gp-tabs button'), function (b) {
    b.addEventListener('click', function () { showTab(b.dataset.tab); });
  });

  // ------------------------------------------------------------------ loading the current version
  var first = true;
  function load() {
    root.dataset.state = 'loading';
    return GP.getJSON('/maps/data/grids').then(function (d) {
      S.plan = d.band.plan_id;
      S.band = d.band;
      $('gp-version').textContent = tr('version') + ' ' + S.plan;
      $('gp-version').dataset.plan = S.plan;
      $('gp-export').href = '/export/grids?format=gpkg&plan_id=' + S.plan;
      drawGrids(d);
      renderProblems(d.problems);
      if (first) {
        var b = d.band.balance && d.band.balance !== 'households'
          ? Object.assign({}, d.band, {min_households: Math.round(d.band.min_workload), max_households: Math.round(d.band.max_workload)})
          : d.band;
        GP.legend(map, b, {legend: tr(b === d.band ? 'legend' : 'legend_workload'), band: tr('band'), middle: tr('in')});
      }
      return GP.getJSON('/maps/data/blocks?plan_id=' + S.plan);
    }).then(function (blocks) {
      drawBlocks(blocks);
      renderList();
      if (!$('gp-tab-versions').hidden) { renderVersions(); }
      if (first) {
        first = false;
        return GP.basemap(ctx, S.plan).then(function () {
          S.gridLayer.bringToFront();
          S.blockLayer.bringToFront();
        });
      }
    }).then(function () { root.dataset.state = 'loaded'; root.dataset.plan = S.plan; });
  }
  load().catch(GP.fail);
})();
