import { corsFromConfig } from "./lib/middleware/cors";
import { notFound, onError } from "./lib/middleware/error-handler";
import { readRateLimit } from "./lib/middleware/rate-limit";
import { requestId } from "./lib/middleware/request-id";
import { requestLog } from "./lib/middleware/request-log";
import { meteredServices } from "./lib/middleware/server-timing";
import { createRouter } from "./lib/router";
import { assetsRouter } from "./routes/assets/assets.index";
import { currenciesRouter } from "./routes/currencies/currencies.index";
import { dataRouter } from "./routes/data/data.index";
import { docsRouter } from "./routes/docs";
import { etlRouter } from "./routes/etl/etl.index";
import { healthRouter } from "./routes/health/health.index";
import { mappingsRouter } from "./routes/mappings/mappings.index";
import { metricsRouter } from "./routes/metrics/metrics.index";
import { rawRouter } from "./routes/raw/raw.index";
import { statsRouter } from "./routes/stats/stats.index";
import { uploadsRouter } from "./routes/uploads/uploads.index";

export function createApp() {
  const app = createRouter();

  app.use("*", requestId(), requestLog(), meteredServices(), corsFromConfig(), readRateLimit());

  app
    .route("/", healthRouter)
    .route("/", rawRouter)
    .route("/", dataRouter)
    .route("/", currenciesRouter)
    .route("/", statsRouter)
    .route("/", metricsRouter)
    .route("/", etlRouter)
    .route("/", uploadsRouter)
    .route("/", assetsRouter)
    .route("/", mappingsRouter)
    .route("/", docsRouter);

  app.openAPIRegistry.registerComponent("securitySchemes", "adminToken", {
    type: "http",
    scheme: "bearer",
    description: "The ADMIN_TOKEN secret. Every write endpoint needs it.",
  });
  app.doc31("/openapi.json", (c) => ({
    openapi: "3.1.0",
    info: {
      title: "coinfuse",
      version: "1.0.0",
      description:
        "Unified crypto market data from CoinGecko, CoinPaprika and CSV files. Success bodies are `{data, metadata}`; every error is `{error: {code, message, details, request_id}}`.",
    },
    servers: [{ url: new URL(c.req.url).origin }],
  }));

  app.notFound(notFound);
  app.onError(onError);

  return app;
}
