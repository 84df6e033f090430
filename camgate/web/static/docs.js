// The interactive API docs at /docs: Swagger UI served by camgate itself (works offline).
// Requests made with "Try it out" carry the token this browser keeps for the dashboard.
"use strict";

(function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    requestInterceptor(request) {
      const headers = CamgateAuth.headers({});
      if (headers.Authorization && !request.headers.Authorization) {
        request.headers.Authorization = headers.Authorization;
      }
      return request;
    },
  });
})();
