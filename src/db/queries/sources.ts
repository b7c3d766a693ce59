import { inArray, sql } from "drizzle-orm";
import { type Config, SOURCES, type Source } from "../../config";
import { now } from "../../lib/clock";
import type { Db } from "../client";
import { FINISHED_RUN_STATUSES, SUCCEEDED_RUN_STATUSES } from "../schema";

export type SourceHealth = {
  status: "ok" | "failing" | "stale" | "never";
  last_success_at: string | null;
  last_error: string | null;
  stale: boolean;
};

type Row = { source: Source; last_success_at: string | null; last_status: string | null; last_error: string | null };

/**
 * Per-source health from durable run records. Only scheduled and manual runs say whether a source
 * is failing: a user's malformed upload, or a replay, is not an outage of the source.
 */
export async function sourceHealth(db: Db, config: Config): Promise<Record<Source, SourceHealth>> {
  const rows = await db.all<Row>(sql`
    SELECT s.source,
      (SELECT finished_at FROM ingestion_runs r WHERE r.source = s.source AND ${inArray(sql`r.status`, [...SUCCEEDED_RUN_STATUSES])}
        ORDER BY r.finished_at DESC LIMIT 1) AS last_success_at,
      (SELECT status FROM ingestion_runs r WHERE r.source = s.source AND r.trigger IN ('cron', 'manual')
        AND ${inArray(sql`r.status`, [...FINISHED_RUN_STATUSES])} ORDER BY r.created_at DESC LIMIT 1) AS last_status,
      (SELECT error FROM ingestion_runs r WHERE r.source = s.source AND r.trigger IN ('cron', 'manual')
        AND r.status = 'failed' ORDER BY r.created_at DESC LIMIT 1) AS last_error
    FROM (SELECT 'coingecko' AS source UNION ALL SELECT 'coinpaprika' UNION ALL SELECT 'csv') s`);
  const out = {} as Record<Source, SourceHealth>;
  for (const source of SOURCES) {
    const r = rows.find((x) => x.source === source);
    const staleAfterMs = 3 * config.SOURCE_INTERVAL_MINUTES[source] * 60_000 + 5 * 60_000;
    // CSV arrives when people upload it; its age says nothing about its health.
    const stale = source !== "csv" && !!r?.last_success_at && now() - Date.parse(r.last_success_at) > staleAfterMs;
    const status: SourceHealth["status"] =
      r?.last_status === "failed" ? "failing" : !r?.last_success_at ? (r?.last_status ? "failing" : "never") : stale ? "stale" : "ok";
    out[source] = { status, last_success_at: r?.last_success_at ?? null, last_error: r?.last_error ?? null, stale };
  }
  return out;
}
