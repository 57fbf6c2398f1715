// The API docs page: Swagger UI (installed from npm, served from our origin) reading
// our own OpenAPI document. No validator badge (it would call another site).
window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: root.dataset.spec,
    domNode: root,
    validatorUrl: null,
    deepLinking: false,
    tryItOutEnabled: false,
  });
});
