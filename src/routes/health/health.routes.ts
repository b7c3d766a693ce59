import { createRoute, z } from "@hono/zod-openapi";
import { SOURCES } from "../../config";

const Check = z.enum(["ok", "error"]);
const SourceHealthSchema = z.object({
  status: z.enum(["ok", "failing", "stale", "never"]),
  last_success_at: z.string().nullable(),
  last_error: z.string().nullable(),
  stale: z.boolean(),
});
export const HealthSchema = z
  .object({
    status: z.enum(["ok", "degraded", "down"]),
    checks: z.object({ d1: Check, kv: Check, r2: Check }),
    sources: z.record(z.enum(SOURCES), SourceHealthSchema),
    consensus: z
      .object({ assets: z.number().int(), single_source_assets: z.number().int() })
      .openapi({ description: "Assets in the published read model, and those whose consensus rests on one fresh source." }),
    time: z.string(),
  })
  .openapi("Health");

export const health = createRoute({
  method: "get",
  path: "/health",
  tags: ["Operations"],
  summary: "Liveness, dependencies and per-source freshness",
  description: "`degraded` when a source is failing or stale or KV/R2 fail; `down` (503) only when D1 is unreachable.",
  responses: {
    200: { description: "ok or degraded", content: { "application/json": { schema: HealthSchema } } },
    503: { description: "down: D1 unreachable", content: { "application/json": { schema: HealthSchema } } },
  },
});
export type HealthRoute = typeof health;
