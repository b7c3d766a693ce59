import { createMiddleware } from "hono/factory";
import { ApiError } from "./errors";
import type { AppEnv } from "./router";

/** Writes need `Authorization: Bearer <ADMIN_TOKEN>`; with no token configured they fail closed. */
export const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  const expected = c.get("services").config.ADMIN_TOKEN;
  if (!expected) throw new ApiError("admin_disabled", "write endpoints are disabled: no ADMIN_TOKEN is configured");
  const header = c.req.header("authorization") ?? "";
  const given = header.startsWith("Bearer ") ? header.slice(7) : "";
  if (!given || !(await constantTimeEqual(given, expected))) {
    throw new ApiError("unauthorized", "a valid admin bearer token is required", [], { "www-authenticate": "Bearer" });
  }
  await next();
});

/** Compares digests rather than the strings, so neither length nor content leaks through timing. */
async function constantTimeEqual(a: string, b: string) {
  const enc = new TextEncoder();
  const [da, db] = await Promise.all([crypto.subtle.digest("SHA-256", enc.encode(a)), crypto.subtle.digest("SHA-256", enc.encode(b))]);
  return crypto.subtle.timingSafeEqual(da, db);
}
