/* Starts swagger-ui on /docs from our own files (no inline script, so the page's CSP holds). */
(function () {
  'use strict';
  var box = document.getElementById('swagger-ui');
  window.ui = SwaggerUIBundle({
    url: box.dataset.openapiUrl, dom_id: '#swagger-ui', persistAuthorization: true,
    layout: 'BaseLayout', deepLinking: true, showExtensions: true, showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]
  });
})();
