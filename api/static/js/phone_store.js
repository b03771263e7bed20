/* IndexedDB for the phone page: queued reports, GPS fixes and track chunks (promises over the raw API). */
(function () {
  'use strict';
  var DB = 'gridpatrol-m';
  var opening = null;

  function open() {
    if (opening) { return opening; }
    opening = new Promise(function (resolve, reject) {
      var req = indexedDB.open(DB, 1);
      req.onupgradeneeded = function () {
        var db = req.result;
        // reports: one per client key, sent in the order they were made (created: ms since the epoch)
        var r = db.createObjectStore('reports', {keyPath: 'key'});
        r.createIndex('created', 'created');
        // fixes of the running track, not yet in a chunk
        var f = db.createObjectStore('fixes', {keyPath: 'n', autoIncrement: true});
        f.createIndex('track', 'track_id');
        // chunks waiting for POST /tracks: [track_id, seq]
        db.createObjectStore('chunks', {keyPath: ['track_id', 'seq']});
        db.createObjectStore('meta', {keyPath: 'k'});
      };
      req.onsuccess = function () { resolve(req.result); };
      req.onerror = function () { reject(req.error); };
    });
    return opening;
  }

  function tx(store, mode, work) {
    return open().then(function (db) {
      return new Promise(function (resolve, reject) {
        var t = db.transaction(store, mode);
        var out;
        t.oncomplete = function () { resolve(out); };
        t.onerror = function () { reject(t.error); };
        t.onabort = function () { reject(t.error); };
        out = work(t.objectStore(store));
      });
    });
  }

  function request(r) {
    var box = {};
    r.onsuccess = function () { box.value = r.result; };
    return box;
  }

  function put(store, value) { return tx(store, 'readwrite', function (s) { s.put(value); }); }
  function del(store, key) { return tx(store, 'readwrite', function (s) { s.delete(key); }); }
  function get(store, key) {
    var box;
    return tx(store, 'readonly', function (s) { box = request(s.get(key)); }).then(function () { return box.value; });
  }
  /* Every value of a store (by an index when given), in key order. */
  function all(store, index) {
    var box;
    return tx(store, 'readonly', function (s) { box = request((index ? s.index(index) : s).getAll()); })
      .then(function () { return box.value || []; });
  }
  /* Move fixes into a chunk in one transaction: the chunk is written and the fixes deleted together. */
  function chunkFixes(trackId, makeChunk) {
    return open().then(function (db) {
      return new Promise(function (resolve, reject) {
        var t = db.transaction(['fixes', 'chunks'], 'readwrite');
        var chunk = null;
        t.oncomplete = function () { resolve(chunk); };
        t.onerror = function () { reject(t.error); };
        var req = t.objectStore('fixes').index('track').getAll(trackId);
        req.onsuccess = function () {
          var fixes = req.result || [];
          if (!fixes.length) { return; }
          chunk = makeChunk(fixes);
          t.objectStore('chunks').put(chunk);
          fixes.forEach(function (f) { t.objectStore('fixes').delete(f.n); });
        };
      });
    });
  }

  window.GPStore = {open: open, put: put, del: del, get: get, all: all, chunkFixes: chunkFixes};
})();
