import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Env } from "../env";
import type { Services } from "../services";
import { ApiError } from "./errors";

export type AppEnv = {
  Bindings: Env;
  Variables: { requestId: string; startedAt: number; services: Services };
};
export type AppContext = Context<AppEnv>;

/** Every router validates with zod and turns a failed validation into the SPEC's 400 `validation_error`. */
export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        const issues = result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
        const first = issues[0];
        throw new ApiError("validation_error", first ? `${first.path || "body"}: ${first.message}` : "invalid request", issues);
      }
    },
  });
}

/** The JSON success envelope: `{ data, metadata: { request_id, api_latency_ms, ...extra } }`. */
export function envelope<T, M extends object = object>(c: AppContext, data: T, extra?: M) {
  return {
    data,
    metadata: {
      request_id: c.get("requestId"),
      api_latency_ms: Math.round((performance.now() - c.get("startedAt")) * 100) / 100,
      ...(extra ?? ({} as M)),
    },
  };
}
