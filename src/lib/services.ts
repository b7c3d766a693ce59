import type { Services } from "../jobs/context";
import type { AppContext } from "./router";

/** The job-side services for a request: same env, config and db handle. */
export const servicesOf = (c: AppContext): Services => ({
  env: c.env,
  config: c.get("config"),
  db: c.get("db"),
  fetch: (...a) => fetch(...a),
});
