import { eq, sql } from "drizzle-orm";
import type { Source } from "../../config";
import { USAGE_KEYS, type Usage } from "../../lib/usage";
import type { Run } from "../../schemas/runs";
import type { Db } from "../client";
import { FINISHED_RUN_STATUSES, ingestionRuns, runParts } from "../schema";

type RunRow = typeof ingestionRuns.$inferSelect;

/** A run in one of these states is over: later deliveries of its messages do nothing. */
export const isFinished = (status: string) => (FINISHED_RUN_STATUSES as readonly string[]).includes(status);

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

export async function getRun(db: Db, runId: string) {
  return db.query.ingestionRuns.findFirst({ where: eq(ingestionRuns.runId, runId) });
}

/**
 * Runs as served: a run still going shows what its recorded parts cost so far (they are added to
 * the run itself when it closes).
 */
export async function runsWithUsage(db: Db, rows: RunRow[]): Promise<Run[]> {
  const open = rows.filter((r) => !isFinished(r.status)).map((r) => r.runId);
  const parts = new Map<string, Usage>();
  if (open.length) {
    const sums = sql.raw(USAGE_KEYS.map((k) => `COALESCE(SUM(usage_${k}), 0) AS ${k}`).join(", "));
    const got = await db.all<Usage & { run_id: string }>(
      sql`SELECT ${runParts.runId} AS run_id, ${sums} FROM ${runParts} WHERE ${runParts.runId} IN (SELECT value FROM json_each(${JSON.stringify(open)})) GROUP BY ${runParts.runId}`,
    );
    for (const g of got) parts.set(g.run_id, g);
  }
  return rows.map((r) => {
    const run = toRun(r);
    const p = parts.get(r.runId);
    if (p) for (const k of USAGE_KEYS) run.usage[k] += p[k];
    return run;
  });
}

export async function getRunView(db: Db, runId: string) {
  const row = await getRun(db, runId);
  return row ? (await runsWithUsage(db, [row]))[0] : null;
}
