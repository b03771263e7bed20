/* The grid worker's phone page: today's shifts, route + GPS + next instruction, incident reports (queued offline), track. */
(function () {
  'use strict';
  var el = GP.el;
  var TX = {
    zh: {online: '在线', offline: '离线：上报将保存在手机上，联网后自动发送', queued: '已保存，联网后自动发送',
         sent: '已上报，事件编号 ', refused: '未被接受：', sending: '发送中…', no_shifts: '您负责的网格还没有巡查路线',
         no_gps: '尚未定位', arrive: '回到起点，巡查完成', shift: '第 {s}/{n} 班', km: '公里', m: '米', min: '分钟',
         ahead: '前方 ', login: '登录已失效，请重新登录后再发送', fixes: '已记录 {f} 个定位点，待上传 {c} 段',
         need_pos: '请先定位或在地图上点选位置', pending: '待发送', done: '已上报 #', cached: '离线数据，更新于 ',
         waiting: '（轨迹服务暂不可用，已排队）', not_today: '按巡查排班，另有 {n} 个班次不在今天',
         day: '排班第 {d}/{n} 天'},
    en: {online: 'online', offline: 'offline: reports stay on the phone and are sent when back online',
         queued: 'saved, will be sent when online', sent: 'reported, incident #', refused: 'not accepted: ',
         sending: 'sending…', no_shifts: 'no patrol route for your grids yet', no_gps: 'no GPS fix yet',
         arrive: 'back at the start: patrol done', shift: 'shift {s}/{n}', km: 'km', m: 'm', min: 'min',
         ahead: 'in ', login: 'login expired: log in again to send', fixes: '{f} fixes recorded, {c} chunks to upload',
         need_pos: 'get a GPS fix or tap the map first', pending: 'waiting', done: 'reported #', cached: 'offline data from ',
         waiting: ' (track service not available yet, queued)', not_today: '{n} more shift(s) are due on other days of the patrol calendar',
         day: 'day {d}/{n} of the calendar'}
  };
  var L10 = TX[GP.lang];
  function fmt(s, v) { return s.replace(/\{(\w+)\}/g, function (_, k) { return v[k]; }); }
  function dist(m) { return m >= 1000 ? (m / 1000).toFixed(2) + ' ' + L10.km : Math.round(m) + ' ' + L10.m; }

  var status = document.getElementById('m-status');
  var state = {data: null, shift: null, gps: null, pos: null, progress: 0, flushing: null, again: false};
  var ctx = GP.createMap();
  var map = ctx.map;
  var routeLayer = L.layerGroup().addTo(map);
  var gpsDot = null, posDot = null;

  function setStatus(text, s) { status.textContent = text; status.dataset.state = s; }
  function online() {
    setStatus(navigator.onLine ? L10.online : L10.offline, navigator.onLine ? 'online' : 'offline');
  }

  // ------------------------------------------------------------ data: the worker's grids and shifts
  function load() {
    return GP.getJSON('/m/data').then(function (d) {
      state.data = d;
      var cached = d.generated_at && !navigator.onLine;
      document.getElementById('m-today').textContent = d.today + (cached ? ' · ' + L10.cached + GP.localTime(d.generated_at) : '');
      drawBase(d);
      listShifts(d.shifts);
      online();
    });
  }

  function drawBase(d) {
    L.geoJSON(d.streets, {style: function (f) { return {color: '#999', weight: f.properties.major ? 3 : 1.2}; },
      onEachFeature: function (f, layer) { if (f.properties.name) { layer.bindTooltip(GP.tip([f.properties.name]), {sticky: true}); } }
    }).addTo(map);
    L.geoJSON(d.grids, {style: function () { return {color: '#1f6feb', weight: 2, fill: false, dashArray: '6 4'}; },
      onEachFeature: function (f, layer) {
        layer.bindTooltip(GP.tip([[GP.t('grid'), f.properties.code], [GP.t('name'), f.properties.name]]), {sticky: true});
      }
    }).addTo(map);
    if (d.bounds) { map.fitBounds(d.bounds, {animate: false}); }
  }

  function listShifts(shifts) {
    var list = document.getElementById('m-shifts');
    list.textContent = '';
    if (!shifts.length) { list.appendChild(el('li', L10.no_shifts, 'muted')); return; }
    // With a patrol calendar (巡查排班) only today's shifts are listed; the others are counted.
    var due = shifts.filter(function (s) { return s.today !== false; });
    if (due.length < shifts.length) {
      list.appendChild(el('li', fmt(L10.not_today, {n: shifts.length - due.length}), 'muted'));
    }
    if (!due.length) { return; }
    due.forEach(function (s, i) {
      var b = el('button');
      b.type = 'button';
      b.dataset.route = s.id;
      b.appendChild(el('b', s.grid_code + ' '));
      b.appendChild(document.createTextNode(fmt(L10.shift, {s: s.shift, n: s.shifts}) + ' · ' + dist(s.length_m) +
        ' · ' + Math.round(s.duration_s / 60) + ' ' + L10.min +
        (s.cycle_days ? ' · ' + fmt(L10.day, {d: s.cycle_day, n: s.cycle_days}) : '')));
      b.addEventListener('click', function () { choose(s); });
      var li = el('li');
      li.appendChild(b);
      list.appendChild(li);
      if (i === 0) { choose(s); }
    });
  }

  function choose(s) {
    state.shift = s;
    state.progress = 0;
    document.querySelectorAll('#m-shifts button').forEach(function (b) {
      b.setAttribute('aria-pressed', String(Number(b.dataset.route) === s.id));
    });
    routeLayer.clearLayers();
    var latlngs = s.line.map(function (p) { return [p[0], p[1]]; });
    L.polyline(latlngs, {color: '#d7301f', weight: 4, opacity: 0.8}).addTo(routeLayer);
    if (latlngs.length) { L.circleMarker(latlngs[0], {radius: 7, color: '#1a7f37', fillOpacity: 0.9}).addTo(routeLayer); }
    guide();
  }

  // ------------------------------------------------------------ guidance along the route
  // Positions in metres on a local plane (the route is a few km across: flat is exact enough).
  function plane(lat0) {
    var kx = 111320 * Math.cos(lat0 * Math.PI / 180), ky = 110574;
    return function (lat, lon) { return [lon * kx, lat * ky]; };
  }

  /* Metres along the route of the point nearest ``p``: near the last progress first (a route passes
     some streets twice), anywhere when nothing is within 40 m there. */
  function along(s, lat, lon) {
    var P = plane(s.line[0][0]);
    var q = P(lat, lon);
    var best = function (lo, hi) {
      var b = {d: Infinity, m: 0};
      for (var i = 0; i + 1 < s.line.length; i++) {
        var a = s.line[i], c = s.line[i + 1];
        if (c[2] < lo || a[2] > hi) { continue; }
        var A = P(a[0], a[1]), C = P(c[0], c[1]);
        var dx = C[0] - A[0], dy = C[1] - A[1], len2 = dx * dx + dy * dy;
        var t = len2 ? Math.max(0, Math.min(1, ((q[0] - A[0]) * dx + (q[1] - A[1]) * dy) / len2)) : 0;
        var ex = A[0] + t * dx - q[0], ey = A[1] + t * dy - q[1], d = Math.sqrt(ex * ex + ey * ey);
        if (d < b.d) { b = {d: d, m: a[2] + t * (c[2] - a[2])}; }
      }
      return b;
    };
    var near = best(state.progress - 50, state.progress + 400);
    return near.d <= 40 ? near : best(-Infinity, Infinity);
  }

  function guide() {
    var next = document.getElementById('m-next'), left = document.getElementById('m-left');
    var s = state.shift;
    if (!s) { return; }
    var total = s.line.length ? s.line[s.line.length - 1][2] : 0;
    if (!state.gps) { next.textContent = s.steps.length ? s.steps[0].text : '—'; next.dataset.state = 'start'; left.textContent = dist(total); return; }
    var hit = along(s, state.gps.lat, state.gps.lon);
    state.progress = hit.m;
    var ahead = s.steps.filter(function (st) { return st.at_m > hit.m + 5; })[0];
    if (ahead) {
      next.textContent = L10.ahead + dist(ahead.at_m - hit.m) + (GP.lang === 'zh' ? '，' : ': ') + ahead.text;
      next.dataset.state = 'step';
      next.dataset.step = String(s.steps.indexOf(ahead));
    } else {
      next.textContent = L10.arrive;
      next.dataset.state = 'arrive';
    }
    left.textContent = dist(Math.max(0, total - hit.m));
    left.dataset.m = String(Math.round(Math.max(0, total - hit.m)));
  }

  function onFix(p) {
    state.gps = {lat: p.coords.latitude, lon: p.coords.longitude, acc: p.coords.accuracy};
    var ll = [state.gps.lat, state.gps.lon];
    if (!gpsDot) {
      gpsDot = L.circleMarker(ll, {radius: 8, color: '#fff', weight: 2, fillColor: '#1f6feb', fillOpacity: 1}).addTo(map);
    } else { gpsDot.setLatLng(ll); }
    if (!state.pos) { setPos(state.gps.lat, state.gps.lon, 'wgs84'); }
    guide();
    GPTrack.fix(p);
  }

  // ------------------------------------------------------------ the report's position (tap to move)
  /* crs: wgs84 for a GPS fix, the map's datum for a tap (they differ with GCJ-02 tiles). */
  function setPos(lat, lon, crs) {
    state.pos = {lat: lat, lon: lon, crs: crs};
    document.getElementById('m-pos').textContent = lat.toFixed(6) + ', ' + lon.toFixed(6);
    if (!posDot) { posDot = L.circleMarker([lat, lon], {radius: 7, color: '#b00020', fillOpacity: 0.8}).addTo(map); }
    else { posDot.setLatLng([lat, lon]); }
  }
  map.on('click', function (e) { setPos(e.latlng.lat, e.latlng.lng, (state.data && state.data.crs) || 'wgs84'); });
  document.getElementById('m-pos-gps').addEventListener('click', function () {
    if (state.gps) { setPos(state.gps.lat, state.gps.lon, 'wgs84'); }
  });

  // ------------------------------------------------------------ photos, resized on the phone
  var photos = [];
  function shrink(file) {
    return createImageBitmap(file).then(function (img) {
      var k = Math.min(1, 1280 / Math.max(img.width, img.height));
      var c = document.createElement('canvas');
      c.width = Math.round(img.width * k);
      c.height = Math.round(img.height * k);
      c.getContext('2d').drawImage(img, 0, 0, c.width, c.height);
      var q = 0.8, url = c.toDataURL('image/jpeg', q);
      while (url.length > 700000 && q > 0.3) { q -= 0.15; url = c.toDataURL('image/jpeg', q); }
      return url;
    });
  }
  document.getElementById('m-photos').addEventListener('change', function (e) {
    var files = Array.prototype.slice.call(e.target.files || [], 0, 4);
    var box = document.getElementById('m-photo-previews');
    Promise.all(files.map(shrink)).then(function (urls) {
      photos = urls;
      box.textContent = '';
      urls.forEach(function (u) { var img = document.createElement('img'); img.src = u; img.alt = ''; box.appendChild(img); });
    }, function (err) { msg(L10.refused + err.message, 'error'); });
  });

  // ------------------------------------------------------------ reports: queued first, then sent in order
  function msg(text, s) { var m = document.getElementById('m-report-msg'); m.textContent = text; m.dataset.state = s; }

  document.getElementById('m-report-form').addEventListener('submit', function (e) {
    e.preventDefault();
    if (!state.pos) { msg(L10.need_pos, 'error'); return; }
    var now = Date.now();
    var rep = {key: GPTrack.uuid(), created: now, reported_at: GPTrack.rfc3339(now), state: 'queued',
               category: document.getElementById('m-category').value, text: document.getElementById('m-text').value || null,
               lon: state.pos.lon, lat: state.pos.lat, crs: state.pos.crs, photos: photos};
    GPStore.put('reports', rep).then(function () {
      document.getElementById('m-text').value = '';
      document.getElementById('m-photos').value = '';
      document.getElementById('m-photo-previews').textContent = '';
      photos = [];
      msg(L10.queued, 'queued');
      return showQueue();
    }).then(flush);
  });

  function send(rep) {
    var body = {key: rep.key, category: rep.category, text: rep.text, lon: rep.lon, lat: rep.lat, crs: rep.crs,
                reported_at: rep.reported_at, photos: rep.photos};
    return fetch('/m/reports', {method: 'POST', credentials: 'same-origin',
                                headers: {'Content-Type': 'application/json', Accept: 'application/json', 'X-GridPatrol-Page': '1'},
                                body: JSON.stringify(body)}).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) { return {status: r.status, body: b}; });
    });
  }

  /* Send queued reports oldest first, one at a time; stop at the first without an answer (offline,
     server down, logged out) so none overtakes an earlier one. The key makes a resend harmless. */
  function flushOnce() {
    return GPStore.all('reports', 'created').then(function (reps) {
      var todo = reps.filter(function (r) { return r.state === 'queued'; });
      var step = function (i) {
        if (i >= todo.length) { return null; }
        var rep = todo[i];
        return send(rep).then(function (res) {
          if (res.status === 201 || res.status === 200) {
            rep.state = 'sent'; rep.incident_id = res.body.id; rep.grid_code = res.body.grid_code; rep.photos = [];
            if (i === todo.length - 1) { msg(L10.sent + res.body.id, 'sent'); }
          } else if (res.status === 401) {
            msg(L10.login, 'error');
            return null;
          } else if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
            rep.state = 'refused'; rep.error = String(res.body.detail || res.status);
            msg(L10.refused + rep.error, 'error');
          } else { return null; }
          return GPStore.put('reports', rep).then(function () { return step(i + 1); });
        }, function () { return null; });
      };
      return step(0);
    });
  }

  function flush() {
    if (state.flushing) { state.again = true; return state.flushing; }
    var run = function () { return flushOnce(); };
    var locked = navigator.locks ? navigator.locks.request('gp-m-reports', run) : run();
    state.flushing = Promise.resolve(locked).catch(function () { return null; }).then(function () {
      state.flushing = null;
      showQueue();
      if (state.again) { state.again = false; return flush(); }
    });
    return state.flushing;
  }

  function showQueue() {
    return GPStore.all('reports', 'created').then(function (reps) {
      var list = document.getElementById('m-queue');
      list.textContent = '';
      reps.slice().reverse().slice(0, 30).forEach(function (r) {
        var li = el('li');
        li.dataset.state = r.state;
        li.dataset.key = r.key;
        li.appendChild(el('span', GP.localTime(r.reported_at) + ' · ' + r.category + ' · '));
        li.appendChild(el('b', r.state === 'sent' ? L10.done + r.incident_id + (r.grid_code ? '（' + r.grid_code + '）' : '')
          : r.state === 'refused' ? L10.refused + r.error : L10.pending));
        list.appendChild(li);
      });
    });
  }
  document.getElementById('m-send-now').addEventListener('click', flush);

  // ------------------------------------------------------------ track recording
  var startBtn = document.getElementById('m-track-start'), stopBtn = document.getElementById('m-track-stop');
  function trackInfo() {
    GPTrack.counts().then(function (c) {
      startBtn.hidden = c.running;
      stopBtn.hidden = !c.running;
      var info = document.getElementById('m-track-info');
      info.textContent = c.fixes || c.chunks ? fmt(L10.fixes, {f: c.fixes, c: c.chunks}) : '';
      info.dataset.fixes = String(c.fixes);
      info.dataset.chunks = String(c.chunks);
    });
  }
  GPTrack.onChange(trackInfo);
  startBtn.addEventListener('click', function () {
    GPTrack.start(state.shift ? state.shift.id : null).then(function () {
      if (state.gps) { GPTrack.fix({coords: {latitude: state.gps.lat, longitude: state.gps.lon, accuracy: state.gps.acc}, timestamp: Date.now()}); }
    });
  });
  stopBtn.addEventListener('click', function () { GPTrack.stop(); });

  // ------------------------------------------------------------ start-up
  window.addEventListener('online', function () { online(); flush(); GPTrack.upload(); });
  window.addEventListener('offline', online);
  setInterval(function () { if (navigator.onLine) { flush(); GPTrack.upload(); } }, 20000);
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('/m/sw.js', {scope: '/m/'}).catch(function () { return null; });
  }
  if (navigator.geolocation) {
    navigator.geolocation.watchPosition(onFix, function () {
      document.getElementById('m-next').dataset.gps = 'none';
    }, {enableHighAccuracy: true, maximumAge: 5000, timeout: 30000});
  }
  window.gpPhone = {state: state, flush: flush, guide: guide};  // for tests and the browser console
  GPTrack.restore().then(trackInfo);
  load().then(function () {
    document.getElementById('gp-map').dataset.state = 'loaded';
    return showQueue();
  }).then(flush, function (err) { setStatus(GP.t('error') + ': ' + err.message, 'error'); });
})();
