import { type Config, getConfig } from "./config";
import { type Db, dbFor, sessionDb } from "./db/client";
import { currentReadModel, type ReadModel } from "./db/read-model";
import type { Env } from "./env";
import { type Behind, behindRequest } from "./lib/behind";
import { meteredEnv } from "./lib/usage";

/**
 * What every job and route needs: metered bindings, parsed config, the drizzle handle, and the fetch
 * to use upstream. `readDb` reads through a D1 session that may answer from the nearest read
 * replica (a few seconds behind the primary at most): for public reads that need not see a write
 * made in the same request.
 */
export type Services = {
  env: Env;
  config: Config;
  db: Db;
  readonly readDb: Db;
  /** The /data read model as this isolate serves it (see currentReadModel); a request never waits to refresh a copy it has. */
  readModel(): Promise<ReadModel | null>;
  fetch: typeof fetch;
  ctx?: ExecutionContext;
  /** Work left behind the request (none without one: tests, tools). */
  behind?: Behind;
};

const metered = new WeakMap<Env, Env>();

export function servicesFor(env: Env, fetchImpl: typeof fetch = (...a) => fetch(...a), ctx?: ExecutionContext): Services {
  let m = metered.get(env);
  if (!m) {
    m = meteredEnv(env);
    metered.set(env, m);
  }
  const d1 = m.DB;
  let readDb: Db | undefined;
  const services: Services = {
    env: m,
    config: getConfig(env),
    db: dbFor(d1),
    get readDb() {
      readDb ??= typeof d1.withSession === "function" ? sessionDb(d1.withSession("first-unconstrained")) : dbFor(d1);
      return readDb;
    },
    readModel: () => currentReadModel(services.readDb, m.BUCKET, m.KV, services.behind),
    fetch: fetchImpl,
    ctx,
    behind: ctx ? behindRequest(ctx) : undefined,
  };
  return services;
}
