// Swagger UI for the OpenAPI 3.1 document of this server. "Authorize" takes
// a token from POST /api/users/signin (bearerAuth) and sends it as
// "Authorization: Bearer <token>" with "Try it out"; it is kept in the
// browser's local storage across reloads.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("../openapi.json", window.location.href).pathname,
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
    tryItOutEnabled: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
