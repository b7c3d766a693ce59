import { createRoute, z } from "@hono/zod-openapi";
import { SOURCES, SourceSchema } from "../../config";
import { errorResponses, jsonEnvelope, PageQuery } from "../../lib/openapi";
import { MappingMoveSchema } from "../../schemas/assets";
import { CheckpointSchema, RunSchema, RunStatusSchema, UsageSchema } from "../../schemas/runs";

const SourceStatsSchema = z.object({
  records: z.number().int().openapi({ description: "Quotes currently stored from this source." }),
  last_run: RunSchema.nullable(),
  success_rate: z.number().nullable().openapi({ description: "Finished runs that succeeded (fully or partially), 0..1." }),
  mean_duration_ms: z.number().nullable(),
  last_success_at: z.string().nullable(),
  runs: z.number().int(),
  failed_runs: z.number().int(),
  usage: UsageSchema.openapi({ description: "What every run of this source cost, summed." }),
});

export const StatsSchema = z
  .object({
    totals: z.object({ assets: z.number().int(), quotes: z.number().int(), history_points: z.number().int() }),
    runs: z.object({
      total: z.number().int(),
      queued: z.number().int(),
      running: z.number().int(),
      succeeded: z.number().int(),
      partial: z.number().int(),
      failed: z.number().int(),
    }),
    sources: z.record(z.enum(SOURCES), SourceStatsSchema),
    recent_runs: z.array(RunSchema),
    dead_letters: z.number().int().openapi({ description: "Queue messages that exhausted their retries." }),
    ambiguous_matches: z
      .number()
      .int()
      .openapi({ description: "Records that could belong to more than one asset; see /stats/ambiguities." }),
    mapping_moves: z
      .number()
      .int()
      .openapi({ description: "Mappings decided again on stronger evidence and moved to another asset; see /stats/moves." }),
  })
  .openapi("Stats");

export const stats = createRoute({
  method: "get",
  path: "/stats",
  tags: ["Operations"],
  summary: "Ingestion and data totals",
  responses: { 200: jsonEnvelope(StatsSchema, "Statistics"), ...errorResponses() },
});

export const runs = createRoute({
  method: "get",
  path: "/stats/runs",
  tags: ["Operations"],
  summary: "Ingestion runs, newest first",
  request: {
    query: z.object({
      ...PageQuery,
      source: SourceSchema.optional().openapi({ description: "Runs of this source only.", example: "coingecko" }),
      status: RunStatusSchema.optional().openapi({ description: "Runs in this status only.", example: "failed" }),
    }),
  },
  responses: { 200: jsonEnvelope(z.array(RunSchema), "Runs", true), ...errorResponses("validation_error") },
});

export const checkpoints = createRoute({
  method: "get",
  path: "/stats/checkpoints",
  tags: ["Operations"],
  summary: "Per-source ingestion checkpoints (from KV)",
  responses: { 200: jsonEnvelope(z.array(CheckpointSchema), "One checkpoint per source"), ...errorResponses() },
});

const AmbiguitySchema = z.object({
  source: SourceSchema,
  source_id: z.string(),
  asset_uid: z.string().openapi({ description: "Where the record went." }),
  candidates: z.array(z.string()).openapi({ description: "Every asset it could have matched." }),
  rule: z.string(),
  seen_at: z.string(),
});

export const ambiguities = createRoute({
  method: "get",
  path: "/stats/ambiguities",
  tags: ["Operations"],
  summary: "Records that could match more than one asset",
  description: "Reported rather than guessed silently; pin the right mapping with PUT /assets/{asset_uid}/mappings.",
  request: { query: z.object(PageQuery) },
  responses: { 200: jsonEnvelope(z.array(AmbiguitySchema), "Ambiguous records", true), ...errorResponses("validation_error") },
});

export const moves = createRoute({
  method: "get",
  path: "/stats/moves",
  tags: ["Operations"],
  summary: "Mappings moved to another asset, newest first",
  description:
    "A mapping made on weak evidence is provisional: when a later record brings stronger evidence, it is decided again and may move. Each move names its rule and scored evidence; the uid it left keeps answering.",
  request: { query: z.object(PageQuery) },
  responses: { 200: jsonEnvelope(z.array(MappingMoveSchema), "Moves", true), ...errorResponses("validation_error") },
});
