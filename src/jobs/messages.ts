import { z } from "zod";
import { HTTP_SOURCES, SOURCES } from "../config";
import { USAGE_KEYS, type UsageKey } from "../lib/usage";

/** What a message carries of the previous message's cost, for its own part or close to record. */
const CarriedUsage = z.object(Object.fromEntries(USAGE_KEYS.map((k) => [k, z.number().int()])) as Record<UsageKey, z.ZodNumber>);

/** Queue messages. Each names the run it belongs to; the work it resumes from lives in D1. */
export const JobMessageSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("fetch_page"),
    run_id: z.string(),
    source: z.enum(HTTP_SOURCES),
    page: z.number().int().min(1),
    /** The earliest time (ms) this page may call upstream: the previous page's call plus the budget's interval. */
    not_before: z.number().int().optional(),
    /** What the previous page cost after its part was recorded; this page records it with its own. */
    usage: CarriedUsage.optional(),
  }),
  z.object({
    type: z.literal("fetch_contracts"),
    run_id: z.string(),
    source: z.enum(HTTP_SOURCES),
    /** 0: the provider's listing; then one per PLATFORMS_PER_MESSAGE platforms of a per-platform provider. */
    step: z.number().int().min(0),
    /** The platform the previous step ended at: this step fetches the ones after it. */
    after: z.string().optional(),
    /** Platforms whose lists could not be fetched so far in this refresh. */
    failed: z.number().int().optional(),
    not_before: z.number().int().optional(),
    usage: CarriedUsage.optional(),
  }),
  z.object({ type: z.literal("csv_upload"), run_id: z.string(), upload_id: z.string() }),
  z.object({ type: z.literal("csv_sweep"), run_id: z.string() }),
  z.object({ type: z.literal("replay"), run_id: z.string(), raw_ids: z.array(z.string()).min(1) }),
  z.object({
    type: z.literal("rebuild"),
    run_id: z.string(),
    /** The rebuild's run of each source; the rebuild lease and each source's lease are held by them. */
    runs: z.object(Object.fromEntries(SOURCES.map((s) => [s, z.string()])) as Record<(typeof SOURCES)[number], z.ZodString>),
    step: z.enum(["start", "list", "replay"]),
    /** list: the R2 prefix being listed and R2's cursor in it. */
    prefix: z.string().optional(),
    cursor: z.string().optional(),
    /** replay: the (time, key) of the last archived object replayed; the next one is the first after it. */
    after: z.tuple([z.string(), z.string()]).optional(),
    /** replay: an upload whose ingestion went on in its own message; the rebuild waits for its run to close. */
    waiting: z.string().optional(),
  }),
]);
export type JobMessage = z.infer<typeof JobMessageSchema>;

/** Messages whose run holds its source's lease while they run (a rebuild's leases are its own): a dead letter releases it. */
export const HOLDS_SOURCE_LEASE: ReadonlySet<JobMessage["type"]> = new Set(["fetch_page", "fetch_contracts", "csv_sweep", "replay"]);
