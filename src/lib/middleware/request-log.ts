import type { MiddlewareHandler } from "hono";
import { log } from "../log";
import type { AppEnv } from "../router";

/** One structured log line per request, written once the response (an error's too) is known. */
export function requestLog(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    await next();
    log("info", "request", {
      request_id: c.get("requestId"),
      method: c.req.method,
      route: c.req.routePath,
      path: c.req.path,
      status: c.res.status,
      duration_ms: Math.round((performance.now() - c.get("startedAt")) * 100) / 100,
    });
  };
}
