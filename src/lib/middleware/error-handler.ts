import type { ErrorHandler, NotFoundHandler } from "hono";
import { ApiError, errorBody, toApiError } from "../errors";
import { log } from "../log";
import type { AppEnv } from "../router";

/** Every error, thrown or not found, leaves in the SPEC's one shape with the request id. */
export const onError: ErrorHandler<AppEnv> = (err, c) => {
  const requestId = c.get("requestId") ?? crypto.randomUUID();
  const e = toApiError(err);
  if (!(err instanceof ApiError) && e.status >= 500) {
    log("error", "unhandled", { request_id: requestId, path: c.req.path, error: (err as Error).message, stack: (err as Error).stack });
  } else if (e.code === "internal") {
    log("error", "internal", { request_id: requestId, error: e.message });
  }
  return c.json(errorBody(e.code, e.message, e.details, requestId), e.status, { ...e.headers, "x-request-id": requestId });
};

/** The dashboard and vendored scripts are static assets; anything else unknown is a 404 `not_found` through onError. */
export const notFound: NotFoundHandler<AppEnv> = async (c) => {
  if ((c.req.method === "GET" || c.req.method === "HEAD") && c.env.ASSETS) {
    const res = await c.env.ASSETS.fetch(c.req.raw);
    if (res.status !== 404) return new Response(res.body, res);
  }
  return onError(new ApiError("not_found", `no route for ${c.req.method} ${c.req.path}`), c);
};
