// The API page: Swagger UI, served from this origin, renders the OpenAPI document the page names.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: root.dataset.document,
    domNode: root,
    deepLinking: true,
    tryItOutEnabled: false,
  });
});
