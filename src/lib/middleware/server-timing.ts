import type { MiddlewareHandler } from "hono";
import { servicesFor } from "../../services";
import type { AppContext, AppEnv } from "../router";
import { Meter, serverTiming, withMeter } from "../usage";

/** The request's execution context, where there is one (app.request() in tests has none). */
function executionCtx(c: AppContext): ExecutionContext | undefined {
  try {
    return c.executionCtx as unknown as ExecutionContext;
  } catch {
    return undefined;
  }
}

/**
 * Gives the request its services, with every D1, KV, R2 and queue call reporting to one meter, and
 * says in `Server-Timing` what the request cost (SPEC §6: at least `d1;dur=…;desc="rows_read=…"`).
 */
export function meteredServices(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const meter = new Meter();
    await withMeter(meter, async () => {
      c.set("services", servicesFor(c.env, undefined, executionCtx(c)));
      await next();
    });
    c.res.headers.set("server-timing", serverTiming(meter));
  };
}
