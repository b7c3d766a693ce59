import { z } from "@hono/zod-openapi";
import { SourceSchema } from "../config";
import { RUN_STATUSES, RUN_TRIGGERS } from "../db/schema";
import { USAGE_KEYS, type UsageKey } from "../lib/usage";

export const RunStatusSchema = z.enum(RUN_STATUSES);
export const TriggerSchema = z.enum(RUN_TRIGGERS);

export const UsageSchema = z
  .object(Object.fromEntries(USAGE_KEYS.map((k) => [k, z.number().int()])) as Record<UsageKey, z.ZodNumber>)
  .openapi("Usage", {
    description:
      "What the run cost so far, in Cloudflare's billing units, summed over all its messages: D1 rows read and written (every index entry counts), R2 class B reads and class A writes, KV reads and writes, queue messages sent. Complete once the run has finished.",
  });

export const RunSchema = z
  .object({
    run_id: z.string(),
    source: SourceSchema,
    trigger: TriggerSchema,
    status: RunStatusSchema,
    started_at: z.string().nullable(),
    finished_at: z.string().nullable(),
    duration_ms: z.number().int().nullable(),
    records: z.object({
      fetched: z.number().int(),
      accepted: z.number().int(),
      rejected: z.number().int(),
      written: z.number().int(),
    }),
    usage: UsageSchema,
    error: z.string().nullable(),
    origin: z.enum(["live", "recorded"]).openapi({ description: "`recorded` when the upstream was the bundled sample data." }),
  })
  .openapi("Run");

export const UploadSchema = z
  .object({
    upload_id: z.string(),
    key: z.string(),
    filename: z.string(),
    bytes: z.number().int(),
    status: RunStatusSchema,
    run_id: z.string().nullable(),
    records: z.object({ accepted: z.number().int(), rejected: z.number().int() }),
    rejected_rows: z.array(z.object({ row: z.number().int(), reason: z.string() })),
    created_at: z.string(),
  })
  .openapi("Upload");

export const RawPayloadSchema = z
  .object({
    id: z.string(),
    source: SourceSchema,
    run_id: z.string(),
    fetched_at: z.string(),
    bytes: z.number().int(),
    records: z.number().int().nullable(),
    content_type: z.string(),
    origin: z.enum(["live", "recorded"]),
  })
  .openapi("RawPayload");

export const CheckpointSchema = z
  .object({
    source: SourceSchema,
    cursor: z.string().nullable(),
    last_run_id: z.string().nullable(),
    last_success_at: z.string().nullable(),
    updated_at: z.string().nullable(),
  })
  .openapi("Checkpoint");

export type Run = z.infer<typeof RunSchema>;
export type RunStatus = z.infer<typeof RunStatusSchema>;
export type Trigger = z.infer<typeof TriggerSchema>;
export type Upload = z.infer<typeof UploadSchema>;
export type Checkpoint = z.infer<typeof CheckpointSchema>;
