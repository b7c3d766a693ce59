import { type Config, getConfig } from "../config";
import { type Db, dbFor } from "../db/client";
import type { Env } from "../env";
import { meteredEnv } from "../lib/usage";

/** What every job and route needs: metered bindings, parsed config, the drizzle handle, and the fetch to use upstream. */
export type Services = { env: Env; config: Config; db: Db; fetch: typeof fetch; ctx?: ExecutionContext };

const metered = new WeakMap<Env, Env>();

export function servicesFor(env: Env, fetchImpl: typeof fetch = (...a) => fetch(...a), ctx?: ExecutionContext): Services {
  let m = metered.get(env);
  if (!m) {
    m = meteredEnv(env);
    metered.set(env, m);
  }
  return { env: m, config: getConfig(env), db: dbFor(m.DB), fetch: fetchImpl, ctx };
}
