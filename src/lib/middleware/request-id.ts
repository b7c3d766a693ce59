import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../router";

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/** Keeps the caller's `x-request-id` when it is a plain token, otherwise makes one; every response carries it. */
export function requestId(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const incoming = c.req.header("x-request-id");
    const id = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    c.set("requestId", id);
    c.set("startedAt", performance.now());
    c.header("x-request-id", id);
    await next();
    c.res.headers.set("x-request-id", id);
  };
}
