import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { servicesFor } from "./jobs/context";
import { ApiError, errorBody } from "./lib/errors";
import { log } from "./lib/log";
import { type AppContext, createRouter } from "./lib/router";
import { Meter, serverTiming, withMeter } from "./lib/usage";
import { assetsRouter } from "./routes/assets/assets.index";
import { dataRouter } from "./routes/data/data.index";
import { docsHtml } from "./routes/docs";
import { etlRouter } from "./routes/etl/etl.index";
import { healthRouter } from "./routes/health/health.index";
import { metricsRouter } from "./routes/metrics/metrics.index";
import { rawRouter } from "./routes/raw/raw.index";
import { statsRouter } from "./routes/stats/stats.index";
import { uploadsRouter } from "./routes/uploads/uploads.index";

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/** One CORS middleware per configured origin list, built on first use rather than per request. */
const corsByOrigins = new Map<string, ReturnType<typeof cors>>();
function corsFor(origins: string) {
  let mw = corsByOrigins.get(origins);
  if (!mw) {
    mw = cors({
      origin: origins === "*" ? "*" : origins.split(",").map((o) => o.trim()),
      allowHeaders: ["authorization", "content-type", "if-none-match", "x-request-id"],
      allowMethods: ["GET", "HEAD", "POST", "PUT", "OPTIONS"],
      exposeHeaders: ["x-request-id", "etag", "retry-after", "server-timing"],
      maxAge: 600,
    });
    corsByOrigins.set(origins, mw);
  }
  return mw;
}

/** The request's execution context, where there is one (app.request() in tests has none). */
function executionCtx(c: AppContext): ExecutionContext | undefined {
  try {
    return c.executionCtx as unknown as ExecutionContext;
  } catch {
    return undefined;
  }
}

export function createApp() {
  const app = createRouter();

  app.use("*", async (c, next) => {
    const incoming = c.req.header("x-request-id");
    const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    c.set("requestId", requestId);
    c.set("startedAt", performance.now());
    c.header("x-request-id", requestId);
    await next();
    c.res.headers.set("x-request-id", requestId);
    log("info", "request", {
      request_id: requestId,
      method: c.req.method,
      route: c.req.routePath,
      path: c.req.path,
      status: c.res.status,
      duration_ms: Math.round((performance.now() - c.get("startedAt")) * 100) / 100,
    });
  });

  // Every D1 call of the request reports to its meter: Server-Timing says what the request cost.
  app.use("*", async (c, next) => {
    const meter = new Meter();
    await withMeter(meter, async () => {
      c.set("services", servicesFor(c.env, undefined, executionCtx(c)));
      await next();
    });
    c.res.headers.set("server-timing", serverTiming(meter));
  });

  app.use("*", (c, next) => corsFor(c.get("services").config.CORS_ORIGINS)(c, next));

  // Public reads are limited per client; writes are already behind the admin token.
  app.use("*", async (c, next) => {
    const limiter = c.env.READ_LIMITER;
    if (c.req.method === "GET" && limiter && c.get("services").config.READ_RATE_LIMIT === "on") {
      const key = c.req.header("cf-connecting-ip") ?? c.req.header("x-forwarded-for")?.split(",")[0].trim() ?? "anonymous";
      const { success } = await limiter.limit({ key });
      if (!success) throw new ApiError("rate_limited", "too many requests; slow down", [], { "retry-after": "60" });
    }
    await next();
  });

  app
    .route("/", healthRouter)
    .route("/", rawRouter)
    .route("/", dataRouter)
    .route("/", statsRouter)
    .route("/", metricsRouter)
    .route("/", etlRouter)
    .route("/", uploadsRouter)
    .route("/", assetsRouter);

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
  app.get("/docs", (c) => c.html(docsHtml));

  app.notFound(async (c) => {
    // The dashboard and vendored scripts are static assets; everything else unknown is a JSON 404.
    if ((c.req.method === "GET" || c.req.method === "HEAD") && c.env.ASSETS) {
      const res = await c.env.ASSETS.fetch(c.req.raw);
      if (res.status !== 404) {
        const out = new Response(res.body, res);
        out.headers.set("x-request-id", c.get("requestId"));
        return out;
      }
    }
    const e = new ApiError("not_found", `no route for ${c.req.method} ${c.req.path}`);
    return c.json(errorBody(e.code, e.message, [], c.get("requestId")), 404);
  });

  app.onError((err, c) => {
    const requestId = c.get("requestId") ?? crypto.randomUUID();
    let e: ApiError;
    if (err instanceof ApiError) e = err;
    else if (err instanceof HTTPException && err.status < 500) {
      e = new ApiError(err.status === 401 ? "unauthorized" : err.status === 413 ? "payload_too_large" : "validation_error", err.message);
    } else {
      log("error", "unhandled", { request_id: requestId, path: c.req.path, error: (err as Error).message, stack: (err as Error).stack });
      e = new ApiError("internal", "internal error; quote the request id when reporting it");
    }
    if (e.code === "internal" && err instanceof ApiError) log("error", "internal", { request_id: requestId, error: e.message });
    return c.json(errorBody(e.code, e.message, e.details, requestId), e.status, { ...e.headers, "x-request-id": requestId });
  });

  return app;
}
