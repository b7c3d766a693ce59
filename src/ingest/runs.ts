import { and, eq, inArray, type SQL, sql } from "drizzle-orm";
import type { Source } from "../config";
import { runBatch, type Statement } from "../db/batch";
import { builder, col, type Db } from "../db/client";
import { getRun, isFinished } from "../db/queries/runs";
import { ingestionRuns, OPEN_RUN_STATUSES, runParts } from "../db/schema";
import { now, nowIso } from "../lib/clock";
import { newId } from "../lib/ids";
import { addUsage, isZero, measured, noUsage, USAGE_KEYS, type Usage, unmetered } from "../lib/usage";
import type { Trigger } from "../schemas/runs";

export { getRun, isFinished };

type RunRow = typeof ingestionRuns.$inferSelect;
export type PartCounts = { fetched: number; accepted: number; rejected: number; written: number };
/** The counts of a part that holds no records (reference data, a skipped payload, a marker). */
export const NO_RECORDS: PartCounts = { fetched: 0, accepted: 0, rejected: 0, written: 0 };
/** True while the run is open (queued or running): guards what only an open run may take or extend. */
export const runIsOpen = (runId: string) =>
  sql`EXISTS (SELECT 1 FROM ${ingestionRuns} WHERE ${eq(ingestionRuns.runId, runId)} AND ${inArray(ingestionRuns.status, [...OPEN_RUN_STATUSES])})`;

/**
 * A part's row, with its counts and what it cost: written once (a second delivery's insert does
 * nothing, and RETURNING tells it so), and only while `holds` (e.g. its checkpoint points past it).
 */
export function partRowStatement(p: {
  runId: string;
  part: string;
  counts: PartCounts;
  rawId?: string | null;
  at: string;
  usage: Usage;
  holds?: SQL;
}) {
  const r = runParts;
  const usageCols = sql.join(
    USAGE_KEYS.map((k) => col(r[k])),
    sql`, `,
  );
  const usageValues = sql.join(
    USAGE_KEYS.map((k) => sql`${p.usage[k]}`),
    sql`, `,
  );
  const c = p.counts;
  return sql`
    INSERT INTO ${r} (${col(r.runId)}, ${col(r.part)}, ${col(r.fetched)}, ${col(r.accepted)}, ${col(r.rejected)}, ${col(r.written)},
      ${col(r.finishedAt)}, ${col(r.rawId)}, ${usageCols})
    SELECT ${p.runId}, ${p.part}, ${c.fetched}, ${c.accepted}, ${c.rejected}, ${c.written}, ${p.at}, ${p.rawId ?? null}, ${usageValues}
    WHERE ${p.holds ?? sql`1`}
    ON CONFLICT DO NOTHING RETURNING ${col(r.part)}`;
}

/** A statement that goes in a run's close, with what it costs: the close records its cost before it runs. */
export type Costed = { statement: Statement; cost: Partial<Usage> };

/**
 * What the statements that record usage cost themselves, so that what they add is the whole cost:
 * an update of a run's usage columns (no index covers them), and the close with the statements
 * that go with it (the status moves in an index; a lease release or budget update is one row each).
 * test/usage.test.ts checks these against the binding's own counts.
 */
const USAGE_UPDATE_COST: Partial<Usage> = { d1_rows_read: 1, d1_rows_written: 1 };
const CLOSE_COST: Partial<Usage> = { d1_rows_read: 1, d1_rows_written: 2 };
const CLOSE_EXTRA_STATEMENT_COST: Partial<Usage> = { d1_rows_read: 1, d1_rows_written: 1 };
const closeCost = (extraStatements: number) =>
  addUsage(
    addUsage(noUsage(), CLOSE_COST),
    Object.fromEntries(USAGE_KEYS.map((k) => [k, (CLOSE_EXTRA_STATEMENT_COST[k] ?? 0) * extraStatements])),
  );

/** Only an open run takes usage: a message delivered again after the close leaves D1 as it was. */
const usageStatement = (runId: string, usage: Usage) =>
  builder
    .update(ingestionRuns)
    .set(Object.fromEntries(USAGE_KEYS.map((k) => [k, sql`${ingestionRuns[k]} + ${usage[k]}`])))
    .where(and(eq(ingestionRuns.runId, runId), inArray(ingestionRuns.status, [...OPEN_RUN_STATUSES])));

/** Runs a run's start (its row, lease, first message) and charges what that cost to the run. */
export async function startingRun<T>(db: Db, runId: string, start: () => Promise<T>) {
  const { result, usage } = await measured(start);
  await recordUsage(db, runId, usage);
  return result;
}

/** Adds what a message cost to its open run; the update's own row is part of what it adds. */
export async function recordUsage(db: Db, runId: string, usage: Usage) {
  if (isZero(usage)) return;
  await unmetered(() => runBatch(db, [usageStatement(runId, addUsage(usage, USAGE_UPDATE_COST))]));
}

export function newRunRow(source: Source, trigger: Trigger, origin: string, runId = newId("run")) {
  return { runId, source, trigger, status: "queued" as const, createdAt: nowIso(), origin };
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
 * already stored, with queued -> running and `also` (e.g. lease takes) in the same batch, whose
 * results come back in `also`.
 */
export async function openPart(db: Db, runId: string, part: string, also: SQL[] = []) {
  const [run, done, , ...rest] = await runBatch(db, [
    sql`SELECT status FROM ingestion_runs WHERE run_id = ${runId}`,
    sql`SELECT fetched FROM run_parts WHERE run_id = ${runId} AND part = ${part}`,
    markRunningStatement(runId),
    ...also,
  ]);
  return {
    status: (run.results[0] as { status: string } | undefined)?.status ?? null,
    done: (done.results[0] as { fetched: number } | undefined) ?? null,
    also: rest,
  };
}

export async function getPart(db: Db, runId: string, part: string) {
  return db.query.runParts.findFirst({ where: and(eq(runParts.runId, runId), eq(runParts.part, part)) });
}

/** The parts' counts and what they cost, summed: what a run's close adds up. */
export async function partTotals(db: Db, runId: string): Promise<PartCounts & { usage: Usage }> {
  const usageSums = sql.raw(USAGE_KEYS.map((k) => `COALESCE(SUM(usage_${k}), 0) AS ${k}`).join(", "));
  const row = await db.get<PartCounts & Usage>(sql`
    SELECT COALESCE(SUM(fetched), 0) AS fetched, COALESCE(SUM(accepted), 0) AS accepted,
      COALESCE(SUM(rejected), 0) AS rejected, COALESCE(SUM(written), 0) AS written, ${usageSums}
    FROM run_parts WHERE run_id = ${runId}`);
  const r = row ?? ({} as PartCounts & Usage);
  return {
    fetched: r.fetched ?? 0,
    accepted: r.accepted ?? 0,
    rejected: r.rejected ?? 0,
    written: r.written ?? 0,
    usage: Object.fromEntries(USAGE_KEYS.map((k) => [k, r[k] ?? 0])) as Usage,
  };
}

/**
 * Sums the parts into the run and closes it: `partial` when records were rejected, or when an error
 * ended a run that had already stored records (its `error` says why); `failed` when an error left it
 * with nothing stored. The close adds the parts' usage and `usage` (the closing message's own) to the run's, and
 * goes in one transaction with `also` (the lease release) and then `closing` (statements that read
 * the closed run, e.g. an upload taking its status), so a finished run already shows its whole cost.
 */
export async function finishRun(
  db: Db,
  runId: string,
  error: string | null = null,
  opts: { run?: RunRow; totals?: PartCounts & { usage: Usage }; also?: Statement[]; closing?: Costed[]; usage?: Usage } = {},
) {
  const closing = opts.closing ?? [];
  const run = opts.run ?? (await getRun(db, runId));
  if (!run || isFinished(run.status)) {
    await afterClose(db, closing);
    return run;
  }
  const totals = opts.totals ?? (await partTotals(db, runId));
  const finishedAt = nowIso();
  const startedAt = run.startedAt ?? run.createdAt;
  const status = error ? (totals.written > 0 ? "partial" : "failed") : totals.rejected > 0 ? "partial" : "succeeded";
  const also = opts.also ?? [];
  const { usage: partsUsage, ...counts } = totals;
  const closingCost = closing.reduce((sum, c) => addUsage(sum, c.cost), noUsage());
  const usage = addUsage(addUsage(addUsage(opts.usage ?? noUsage(), partsUsage), closeCost(also.length)), closingCost);
  const close = builder
    .update(ingestionRuns)
    .set({
      ...counts,
      status,
      error: error?.slice(0, 1000) ?? null,
      startedAt,
      finishedAt,
      durationMs: Math.max(0, now() - Date.parse(startedAt)),
      ...Object.fromEntries(USAGE_KEYS.map((k) => [k, sql`${ingestionRuns[k]} + ${usage[k]}`])),
    })
    // Only an open run closes: a second close racing this one (a dead letter, say) changes nothing.
    .where(and(eq(ingestionRuns.runId, runId), inArray(ingestionRuns.status, [...OPEN_RUN_STATUSES])));
  await unmetered(() => runBatch(db, [close, ...also, ...closing.map((c) => c.statement)]));
  return unmetered(() => getRun(db, runId));
}

/**
 * A close's `closing` statements when the run was closed already (by a dead letter, a rebuild, a
 * racing delivery): they run on their own, and what they cost is on no run, as any work after a close.
 */
export async function afterClose(db: Db, closing: Costed[]) {
  if (!closing.length) return;
  await runBatch(
    db,
    closing.map((c) => c.statement),
  );
}

/**
 * Closes the run whose source lease `taker` took over once it expired: that run stopped sending
 * heartbeats (its worker died), so it fails with the reason rather than staying "running" for good.
 */
export async function closeAbandoned(db: Db, previousHolder: string | null | undefined, taker: string) {
  if (previousHolder && previousHolder !== taker) await finishRun(db, previousHolder, TAKEN_OVER);
}

/** The error of a run closed by closeAbandoned. */
export const TAKEN_OVER = "abandoned: its lease expired without a heartbeat; a later run took over";
