import { SwaggerUI } from "@hono/swagger-ui";
import { createRouter } from "../lib/router";

// @hono/swagger-ui links `{baseUrl}/swagger-ui-dist/swagger-ui.css` and `…/swagger-ui-bundle.js`; the
// files are served by this Worker from public/vendor/swagger-ui (swagger-ui-dist 5.35.0's, unchanged),
// never a CDN, so /docs works offline.
const ASSETS_BASE = "/vendor";

const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>coinfuse API: Swagger UI</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
</head>
<body>
${SwaggerUI({ url: "/openapi.json", baseUrl: ASSETS_BASE, deepLinking: true })}
</body>
</html>`;

/** Swagger UI for /openapi.json, from files the Worker serves itself. */
export const docsRouter = createRouter()
  .get("/docs", (c) => c.html(page))
  .get(`${ASSETS_BASE}/swagger-ui-dist/:file`, async (c) => {
    const res = await c.env.ASSETS.fetch(new URL(`${ASSETS_BASE}/swagger-ui/${c.req.param("file")}`, c.req.url));
    return new Response(res.body, res);
  });
