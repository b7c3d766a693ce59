import { and, count, desc, eq, inArray, type SQL, sql } from "drizzle-orm";
import { SOURCES, type Source } from "../../config";
import { USAGE_KEYS, type Usage } from "../../lib/usage";
import type { Run, RunStatus } from "../../schemas/runs";
import { runBatch } from "../batch";
import type { Db } from "../client";
import type { ReadModel } from "../read-model";
import { FINISHED_RUN_STATUSES, historyBuckets, ingestionRuns, SUCCEEDED_RUN_STATUSES } from "../schema";
import { runsWithUsage } from "./runs";

export type SourceStats = {
  source: Source;
  records: number;
  runs: number;
  finished: number;
  succeeded: number;
  failed: number;
  accepted: number;
  rejected: number;
  written: number;
  mean_duration_ms: number | null;
  duration_ms_sum: number;
  last_success_at: string | null;
  usage: Usage;
};

/** Totals and per-source aggregates: runs and history from D1, assets and quotes from the published read model. */
export async function collectStats(db: Db, model: ReadModel | null) {
  const usageSums = sql.raw(USAGE_KEYS.map((k) => `SUM(usage_${k}) AS usage_${k}`).join(", "));
  const results = await runBatch(db, [
    sql`SELECT COALESCE(SUM(${historyBuckets.count}), 0) AS history_points FROM ${historyBuckets}`,
    sql`SELECT status, COUNT(*) AS n FROM ingestion_runs GROUP BY status`,
    sql`
      SELECT source, COUNT(*) AS runs,
        SUM(${inArray(sql`status`, [...FINISHED_RUN_STATUSES])}) AS finished,
        SUM(${inArray(sql`status`, [...SUCCEEDED_RUN_STATUSES])}) AS succeeded, SUM(status = 'failed') AS failed,
        SUM(accepted) AS accepted, SUM(rejected) AS rejected, SUM(written) AS written,
        AVG(duration_ms) AS mean, COALESCE(SUM(duration_ms), 0) AS duration_ms_sum,
        MAX(CASE WHEN ${inArray(sql`status`, [...SUCCEEDED_RUN_STATUSES])} THEN finished_at END) AS last_success_at, ${usageSums}
      FROM ingestion_runs GROUP BY source`,
    sql`SELECT COUNT(*) AS n FROM dead_letters`,
    sql`SELECT COUNT(*) AS n FROM ambiguous_matches`,
    sql`SELECT COUNT(*) AS n FROM mapping_moves`,
  ]);
  const [totals, byStatus, bySource, dead, ambiguous, moves] = results.map((r) => r.results) as unknown as [
    { history_points: number }[],
    { status: RunStatus; n: number }[],
    (Omit<SourceStats, "records" | "mean_duration_ms" | "usage"> & { mean: number | null } & Record<string, number>)[],
    { n: number }[],
    { n: number }[],
    { n: number }[],
  ];
  const runs = { total: 0, queued: 0, running: 0, succeeded: 0, partial: 0, failed: 0 };
  for (const r of byStatus) {
    runs[r.status] = r.n;
    runs.total += r.n;
  }
  const sources = {} as Record<Source, SourceStats>;
  for (const source of SOURCES) {
    const s = bySource.find((x) => x.source === source);
    sources[source] = {
      source,
      records: model?.quotes[source] ?? 0,
      runs: s?.runs ?? 0,
      finished: s?.finished ?? 0,
      succeeded: s?.succeeded ?? 0,
      failed: s?.failed ?? 0,
      accepted: s?.accepted ?? 0,
      rejected: s?.rejected ?? 0,
      written: s?.written ?? 0,
      mean_duration_ms: s?.mean == null ? null : Math.round(s.mean),
      duration_ms_sum: s?.duration_ms_sum ?? 0,
      last_success_at: s?.last_success_at ?? null,
      usage: Object.fromEntries(USAGE_KEYS.map((k) => [k, s?.[`usage_${k}`] ?? 0])) as Usage,
    };
  }
  return {
    totals: {
      assets: model?.size ?? 0,
      quotes: Object.values(model?.quotes ?? {}).reduce((n, q) => n + q, 0),
      history_points: totals[0].history_points,
    },
    runs,
    sources,
    deadLetters: dead[0].n,
    ambiguous: ambiguous[0].n,
    moves: moves[0].n,
  };
}

export async function listRuns(db: Db, f: { source?: Source; status?: RunStatus; page: number; pageSize: number }) {
  const conds: SQL[] = [];
  if (f.source) conds.push(eq(ingestionRuns.source, f.source));
  if (f.status) conds.push(eq(ingestionRuns.status, f.status));
  const where = conds.length ? and(...conds) : undefined;
  const [rows, [{ total }]] = await db.batch([
    db
      .select()
      .from(ingestionRuns)
      .where(where)
      .orderBy(desc(ingestionRuns.createdAt), desc(ingestionRuns.runId))
      .limit(f.pageSize)
      .offset((f.page - 1) * f.pageSize),
    db.select({ total: count() }).from(ingestionRuns).where(where),
  ]);
  return { runs: await runsWithUsage(db, rows), total };
}

/** The newest run of each source, one batch. */
export async function lastRuns(db: Db) {
  const latest = await Promise.all(
    SOURCES.map((source) =>
      db.query.ingestionRuns.findFirst({ where: eq(ingestionRuns.source, source), orderBy: desc(ingestionRuns.createdAt) }),
    ),
  );
  const runs = await runsWithUsage(
    db,
    latest.filter((r) => r !== undefined),
  );
  return Object.fromEntries(SOURCES.map((source) => [source, runs.find((r) => r.source === source) ?? null])) as Record<Source, Run | null>;
}
