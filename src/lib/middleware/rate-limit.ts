import type { MiddlewareHandler } from "hono";
import { ApiError } from "../errors";
import type { AppEnv } from "../router";

/** Public reads are limited per client (the READ_LIMITER binding); writes are already behind the admin token. */
export function readRateLimit(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const limiter = c.env.READ_LIMITER;
    if (c.req.method === "GET" && limiter && c.get("services").config.READ_RATE_LIMIT === "on") {
      const key = c.req.header("cf-connecting-ip") ?? c.req.header("x-forwarded-for")?.split(",")[0].trim() ?? "anonymous";
      const { success } = await limiter.limit({ key });
      if (!success) throw new ApiError("rate_limited", "too many requests; slow down", [], { "retry-after": "60" });
    }
    await next();
  };
}
