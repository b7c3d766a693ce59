import { createRoute, z } from "@hono/zod-openapi";
import { errorResponses } from "../../lib/openapi";

export const metrics = createRoute({
  method: "get",
  path: "/metrics",
  tags: ["Operations"],
  summary: "Prometheus metrics, derived from durable state",
  description: "Computed from D1 on each scrape, so every isolate reports the same numbers.",
  responses: {
    200: { description: "Prometheus text exposition format 0.0.4", content: { "text/plain": { schema: z.string() } } },
    ...errorResponses(),
  },
});
