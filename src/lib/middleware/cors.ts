import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { AppEnv } from "../router";

/** One CORS middleware per configured origin list, built on first use rather than per request. */
const corsByOrigins = new Map<string, MiddlewareHandler>();
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

/** CORS for the origins in `CORS_ORIGINS` (`*` by default). */
export function corsFromConfig(): MiddlewareHandler<AppEnv> {
  return (c, next) => corsFor(c.get("services").config.CORS_ORIGINS)(c, next);
}
