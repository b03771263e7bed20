/* Service worker of the phone page (scope /m/): the page, its scripts and the worker's map data work offline.
   Page and data: network first, the cached copy when offline. Static files: cache first. Nothing else is touched
   (reports and tracks are POSTs the page queues in IndexedDB itself). */
'use strict';
var CACHE = 'gp-m-v1';
var SHELL = ['/m/', '/m/data', '/m/manifest.webmanifest', '/static/vendor/leaflet/leaflet.js',
             '/static/vendor/leaflet/leaflet.css', '/static/css/pages.css', '/static/css/phone.css',
             '/static/js/common.js', '/static/js/phone_store.js', '/static/js/phone_track.js', '/static/js/phone.js'];

self.addEventListener('install', function (e) {
  e.waitUntil(caches.open(CACHE).then(function (c) {
    return Promise.all(SHELL.map(function (u) {
      return fetch(u, {credentials: 'same-origin'}).then(function (r) {
        if (r.ok && !r.redirected) { return c.put(u, r); }
        return null;
      }).catch(function () { return null; });
    }));
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener('activate', function (e) {
  e.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k !== CACHE; }).map(function (k) { return caches.delete(k); }));
  }).then(function () { return self.clients.claim(); }));
});

function networkFirst(req, key) {
  return fetch(req).then(function (r) {
    if (r.ok && !r.redirected) {
      var copy = r.clone();
      caches.open(CACHE).then(function (c) { return c.put(key, copy); });
    }
    return r;
  }).catch(function () {
    return caches.match(key).then(function (hit) { return hit || Response.error(); });
  });
}

function cacheFirst(req) {
  return caches.match(req, {ignoreSearch: true}).then(function (hit) {
    return hit || fetch(req).then(function (r) {
      if (r.ok) { var copy = r.clone(); caches.open(CACHE).then(function (c) { return c.put(req, copy); }); }
      return r;
    });
  });
}

self.addEventListener('fetch', function (e) {
  var req = e.request;
  if (req.method !== 'GET') { return; }
  var url = new URL(req.url);
  if (url.origin !== self.location.origin) { return; }
  if (url.pathname === '/m/' || url.pathname === '/m/data' || url.pathname === '/m/manifest.webmanifest') {
    e.respondWith(networkFirst(req, url.pathname));
  } else if (url.pathname.indexOf('/static/') === 0) {
    e.respondWith(cacheFirst(req));
  }
});
