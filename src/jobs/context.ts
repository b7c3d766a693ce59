import { type Config, getConfig } from "../config";
import { type Db, dbFor } from "../db/client";
import type { Env } from "../env";

/** What every job and route needs: bindings, parsed config, the drizzle handle, and the fetch to use upstream. */
export type Services = { env: Env; config: Config; db: Db; fetch: typeof fetch };

export function servicesFor(env: Env, fetchImpl: typeof fetch = (...a) => fetch(...a)): Services {
  return { env, config: getConfig(env), db: dbFor(env.DB), fetch: fetchImpl };
}
