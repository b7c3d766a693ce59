import { and, eq, type SQL, sql } from "drizzle-orm";
import type { Source } from "../config";
import { runBatch, type Statement } from "../db/batch";
import { builder, type Db } from "../db/client";
import { ingestionRuns, runParts } from "../db/schema";
import { now, nowIso } from "../lib/clock";
import { newId } from "../lib/ids";
import { addUsage, isZero, noUsage, USAGE_KEYS, type Usage, unmetered } from "../lib/usage";
import type { Run, Trigger } from "../schemas/runs";

type RunRow = typeof ingestionRuns.$inferSelect;
export type PartCounts = { fetched: number; accepted: number; rejected: number; written: number };

/** A run in one of these states is over: later deliveries of its messages do nothing. */
export const isFinished = (status: string) => status === "succeeded" || status === "partial" || status === "failed";

export function toRun(r: RunRow): Run {
  return {
    run_id: r.runId,
    source: r.source as Source,
    trigger: r.trigger,
    status: r.status,
    started_at: r.startedAt,
    finished_at: r.finishedAt,
    duration_ms: r.durationMs,
    records: { fetched: r.fetched, accepted: r.accepted, rejected: r.rejected, written: r.written },
    usage: Object.fromEntries(USAGE_KEYS.map((k) => [k, r[k]])) as Usage,
    error: r.error,
    origin: r.origin === "recorded" ? "recorded" : "live",
  };
}

/**
 * What the statements that record usage cost themselves, so that what they add is the whole cost:
 * an update of a run's usage columns (no index covers them), and the close (status moves in two indexes).
 * test/usage.test.ts checks both against the binding's own counts.
 */
export const USAGE_UPDATE_COST: Partial<Usage> = { d1_rows_read: 1, d1_rows_written: 1 };
export const CLOSE_COST: Partial<Usage> = { d1_rows_read: 2, d1_rows_written: 6 };
export const LEASE_RELEASE_COST: Partial<Usage> = { d1_rows_read: 1, d1_rows_written: 2 };

const usageStatement = (runId: string, usage: Usage) =>
  builder
    .update(ingestionRuns)
    .set(Object.fromEntries(USAGE_KEYS.map((k) => [k, sql`${ingestionRuns[k]} + ${usage[k]}`])))
    .where(eq(ingestionRuns.runId, runId));

/** Adds what a message cost to its run; the update's own row is part of what it adds. */
export async function recordUsage(db: Db, runId: string, usage: Usage) {
  if (isZero(usage)) return;
  await unmetered(() => runBatch(db, [usageStatement(runId, addUsage(usage, USAGE_UPDATE_COST))]));
}

export function newRunRow(source: Source, trigger: Trigger, origin: string, runId = newId("run")) {
  return { runId, source, trigger, status: "queued" as const, createdAt: nowIso(), origin };
}

export async function getRun(db: Db, runId: string) {
  return db.query.ingestionRuns.findFirst({ where: eq(ingestionRuns.runId, runId) });
}

/** queued -> running, once; later deliveries keep the first start time. */
export const markRunningStatement = (runId: string) => sql`
  UPDATE ingestion_runs SET status = 'running', started_at = COALESCE(started_at, ${nowIso()})
  WHERE run_id = ${runId} AND status = 'queued'`;

export async function markRunning(db: Db, runId: string) {
  await db.run(markRunningStatement(runId));
}

/**
 * The start of one part in one round trip: the run's status and the part's counts if it was
 * already stored, with queued -> running and `also` (e.g. a lease heartbeat) in the same batch.
 */
export async function openPart(db: Db, runId: string, part: string, also: SQL[] = []) {
  const [run, done] = await runBatch(db, [
    sql`SELECT status FROM ingestion_runs WHERE run_id = ${runId}`,
    sql`SELECT fetched FROM run_parts WHERE run_id = ${runId} AND part = ${part}`,
    markRunningStatement(runId),
    ...also,
  ]);
  return {
    status: (run.results[0] as { status: string } | undefined)?.status ?? null,
    done: (done.results[0] as { fetched: number } | undefined) ?? null,
  };
}

export async function getPart(db: Db, runId: string, part: string) {
  return db.query.runParts.findFirst({ where: and(eq(runParts.runId, runId), eq(runParts.part, part)) });
}

export async function partTotals(db: Db, runId: string) {
  const totals = await db.get<PartCounts>(sql`
    SELECT COALESCE(SUM(fetched), 0) AS fetched, COALESCE(SUM(accepted), 0) AS accepted,
      COALESCE(SUM(rejected), 0) AS rejected, COALESCE(SUM(written), 0) AS written
    FROM run_parts WHERE run_id = ${runId}`);
  return totals ?? { fetched: 0, accepted: 0, rejected: 0, written: 0 };
}

/**
 * Sums the parts into the run and closes it: `partial` when records were rejected, `failed` with an
 * error. The close, `release` (the lease) and the usage of the message that closes it are one
 * transaction, so a finished run already shows its whole cost.
 */
export async function finishRun(
  db: Db,
  runId: string,
  error: string | null = null,
  opts: { totals?: PartCounts; release?: Statement; usage?: Usage } = {},
) {
  const run = await getRun(db, runId);
  if (!run || isFinished(run.status)) return run;
  const totals = opts.totals ?? (await partTotals(db, runId));
  const finishedAt = nowIso();
  const startedAt = run.startedAt ?? run.createdAt;
  const status = error ? "failed" : totals.rejected > 0 ? "partial" : "succeeded";
  const close = builder
    .update(ingestionRuns)
    .set({ ...totals, status, error: error?.slice(0, 1000) ?? null, startedAt, finishedAt, durationMs: Math.max(0, now() - Date.parse(startedAt)) })
    .where(eq(ingestionRuns.runId, runId));
  let usage = addUsage(addUsage(opts.usage ?? noUsage(), CLOSE_COST), USAGE_UPDATE_COST);
  if (opts.release) usage = addUsage(usage, LEASE_RELEASE_COST);
  await unmetered(() => runBatch(db, [close, ...(opts.release ? [opts.release] : []), usageStatement(runId, usage)]));
  return getRun(db, runId);
}
