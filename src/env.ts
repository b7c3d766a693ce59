import type { JobMessage } from "./jobs/messages";

/**
 * The Worker's bindings, vars and secrets, as `npm run cf-typegen` generates them from wrangler.toml
 * and .dev.vars.example (worker-configuration.d.ts). Only the job queue's message type is added:
 * the generator cannot know it. Vars and secrets arrive as strings and are parsed by config.ts.
 */
export type Env = Omit<Cloudflare.Env, "JOBS"> & { JOBS: Queue<JobMessage> };
