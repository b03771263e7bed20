/* Track recording of the phone page: GPS fixes to IndexedDB while a patrol runs, uploaded in chunks to POST /tracks. */
(function () {
  'use strict';
  var CHUNK = 20;  // fixes per chunk
  var current = null;  // {k: 'track', track_id, seq, route_id}
  var uploading = null;
  var listeners = [];

  function uuid() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  /* An RFC 3339 time with the phone's offset, e.g. 2026-12-06T16:30:05.123+08:00. */
  function rfc3339(ms) {
    var d = new Date(ms);
    var off = -d.getTimezoneOffset();
    var pad = function (n, w) { return String(Math.abs(n)).padStart(w || 2, '0'); };
    var local = new Date(ms + off * 60000).toISOString().slice(0, 23);
    return local + (off >= 0 ? '+' : '-') + pad(Math.floor(Math.abs(off) / 60)) + ':' + pad(Math.abs(off) % 60);
  }

  function notify() { listeners.forEach(function (f) { f(); }); }

  function restore() {
    return GPStore.get('meta', 'track').then(function (m) { current = m && m.running ? m : null; notify(); return current; });
  }

  function start(routeId) {
    current = {k: 'track', track_id: uuid(), seq: 0, route_id: routeId === undefined ? null : routeId, running: true};
    return GPStore.put('meta', current).then(notify);
  }

  function seal() {
    if (!current) { return Promise.resolve(null); }
    var cur = current;
    return GPStore.chunkFixes(cur.track_id, function (fixes) {
      var chunk = {track_id: cur.track_id, seq: cur.seq, route_id: cur.route_id,
                   device: (navigator.userAgent || 'browser').slice(0, 200),
                   points: fixes.map(function (f) { return {lon: f.lon, lat: f.lat, t: f.t, acc: f.acc}; }),
                   state: 'queued'};
      cur.seq += 1;
      return chunk;
    }).then(function (chunk) { return GPStore.put('meta', cur).then(function () { return chunk; }); });
  }

  function stop() {
    if (!current) { return Promise.resolve(); }
    return seal().then(function () {
      current.running = false;
      return GPStore.put('meta', current);
    }).then(function () { current = null; notify(); return upload(); });
  }

  /* A GPS fix (WGS-84 from the browser) while a patrol runs; a full chunk is sealed and sent. */
  function fix(pos) {
    if (!current) { return Promise.resolve(); }
    var c = pos.coords;
    var rec = {track_id: current.track_id, lon: c.longitude, lat: c.latitude, t: rfc3339(pos.timestamp || Date.now()),
               acc: typeof c.accuracy === 'number' ? Math.round(c.accuracy * 10) / 10 : null};
    return GPStore.put('fixes', rec).then(function () {
      return GPStore.all('fixes', 'track');
    }).then(function (fixes) {
      var mine = fixes.filter(function (f) { return current && f.track_id === current.track_id; });
      notify();
      if (mine.length >= CHUNK) { return seal().then(upload); }
    });
  }

  /* Send the queued chunks in order; stops at the first that cannot be sent (no network, no /tracks yet). */
  function upload() {
    if (uploading) { return uploading; }
    uploading = GPStore.all('chunks').then(function (chunks) {
      chunks.sort(function (a, b) { return a.track_id === b.track_id ? a.seq - b.seq : 0; });
      var step = function (i) {
        if (i >= chunks.length) { return null; }
        var c = chunks[i];
        var body = {track_id: c.track_id, seq: c.seq, device: c.device, route_id: c.route_id, points: c.points};
        return fetch('/tracks', {method: 'POST', credentials: 'same-origin',
                                 headers: {'Content-Type': 'application/json', Accept: 'application/json', 'X-GridPatrol-Page': '1'},
                                 body: JSON.stringify(body)}).then(function (r) {
          if (r.status === 201 || r.status === 200) { return GPStore.del('chunks', [c.track_id, c.seq]).then(function () { return step(i + 1); }); }
          c.state = r.status === 404 || r.status === 405 ? 'waiting' : 'failed';
          c.last_status = r.status;
          return GPStore.put('chunks', c);
        }, function () { return null; });
      };
      return step(0);
    }).then(function () { uploading = null; notify(); }, function () { uploading = null; notify(); });
    return uploading;
  }

  function counts() {
    return Promise.all([GPStore.all('fixes'), GPStore.all('chunks')]).then(function (r) {
      return {fixes: r[0].length, chunks: r[1].length, running: !!current};
    });
  }

  window.GPTrack = {start: start, stop: stop, fix: fix, upload: upload, restore: restore, counts: counts,
                    running: function () { return !!current; }, onChange: function (f) { listeners.push(f); },
                    uuid: uuid, rfc3339: rfc3339};
})();
