import { createApp } from "./app";
import type { Env } from "./env";
import type { JobMessage } from "./jobs/messages";
import { handleQueue } from "./jobs/queue";
import { handleScheduled } from "./jobs/scheduled";

const app = createApp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
  scheduled: async (controller, env) => handleScheduled(controller, env),
  queue: async (batch, env, ctx) => handleQueue(batch as MessageBatch<unknown>, env, undefined, ctx),
} satisfies ExportedHandler<Env, JobMessage>;
