import type { RouteHandler } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import { SOURCES } from "../../config";
import { collectStats } from "../../db/queries/stats";
import { lastSnapshotLoad } from "../../db/read-model";
import { now } from "../../lib/clock";
import type { AppEnv } from "../../lib/router";
import { USAGE_KEYS } from "../../lib/usage";
import type * as routes from "./metrics.routes";

type Sample = [labels: Record<string, string>, value: number];

function family(name: string, type: "counter" | "gauge", help: string, samples: Sample[]) {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
  for (const [labels, value] of samples) {
    const l = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`);
    lines.push(`${name}${l.length ? `{${l.join(",")}}` : ""} ${Number.isFinite(value) ? value : "NaN"}`);
  }
  return lines.join("\n");
}

export const metrics: RouteHandler<typeof routes.metrics, AppEnv> = async (c) => {
  const { readDb: db } = c.get("services");
  const loadingModel = c.get("services").readModel();
  const [s, byStatus, model] = await Promise.all([
    loadingModel.then((m) => collectStats(db, m)),
    db.all<{ source: string; status: string; n: number }>(
      sql`SELECT source, status, COUNT(*) AS n FROM ingestion_runs GROUP BY source, status`,
    ),
    loadingModel,
  ]);
  const t = now();
  const body = [
    family(
      "coinfuse_runs_total",
      "counter",
      "Ingestion runs by source and status.",
      byStatus.map((r) => [{ source: r.source, status: r.status }, r.n]),
    ),
    family(
      "coinfuse_records_total",
      "counter",
      "Records by source and outcome (accepted, rejected, written) over all finished runs.",
      SOURCES.flatMap((src) =>
        (["accepted", "rejected", "written"] as const).map((o): Sample => [{ source: src, outcome: o }, s.sources[src][o]]),
      ),
    ),
    family(
      "coinfuse_last_success_timestamp_seconds",
      "gauge",
      "Unix time of the source's last successful run (0 if never).",
      SOURCES.map((src) => [{ source: src }, s.sources[src].last_success_at ? Date.parse(s.sources[src].last_success_at!) / 1000 : 0]),
    ),
    family(
      "coinfuse_source_staleness_seconds",
      "gauge",
      "Seconds since the source's last successful run (NaN if never).",
      SOURCES.map((src) => [
        { source: src },
        s.sources[src].last_success_at ? (t - Date.parse(s.sources[src].last_success_at!)) / 1000 : Number.NaN,
      ]),
    ),
    family(
      "coinfuse_run_duration_milliseconds_sum",
      "counter",
      "Total duration of finished runs.",
      SOURCES.map((src) => [{ source: src }, s.sources[src].duration_ms_sum]),
    ),
    family(
      "coinfuse_run_duration_milliseconds_count",
      "counter",
      "Finished runs with a duration.",
      SOURCES.map((src) => [{ source: src }, s.sources[src].finished]),
    ),
    family(
      "coinfuse_usage_total",
      "counter",
      "What the runs cost, by source and billed unit (D1 rows read and written, R2, KV and queue operations).",
      SOURCES.flatMap((src) => USAGE_KEYS.map((k): Sample => [{ source: src, unit: k }, s.sources[src].usage[k]])),
    ),
    family("coinfuse_assets", "gauge", "Canonical assets with a price.", [[{}, s.totals.assets]]),
    family(
      "coinfuse_quotes",
      "gauge",
      "Latest quotes stored, by source.",
      SOURCES.map((src) => [{ source: src }, s.sources[src].records]),
    ),
    family("coinfuse_history_points", "gauge", "Stored history points.", [[{}, s.totals.history_points]]),
    family("coinfuse_dead_letters", "gauge", "Queue messages that exhausted their retries.", [[{}, s.deadLetters]]),
    family("coinfuse_ambiguous_matches", "gauge", "Records that could match more than one asset.", [[{}, s.ambiguous]]),
    family("coinfuse_read_model_bytes", "gauge", "Size of the /data snapshot this isolate serves.", [[{}, model?.bytes ?? 0]]),
    family(
      "coinfuse_read_model_derived_bytes",
      "gauge",
      "What this isolate derived from that snapshot on first use and keeps beside it (source-scoped orders, order positions).",
      [[{}, model?.derivedBytes ?? 0]],
    ),
    family("coinfuse_read_model_version", "gauge", "Version of the /data snapshot this isolate serves.", [[{}, model?.version ?? 0]]),
    family(
      "coinfuse_read_model_object_bytes",
      "gauge",
      "Size of the snapshot object in R2 (its sections deflated) as this isolate last fetched it.",
      [[{}, lastSnapshotLoad?.stored ?? 0]],
    ),
    family(
      "coinfuse_read_model_load_milliseconds",
      "gauge",
      "How long this isolate's last fetch of a snapshot from R2 took, views included (Worker wall time).",
      [[{}, lastSnapshotLoad?.ms ?? 0]],
    ),
    family("coinfuse_mapping_moves_total", "counter", "Mappings decided again on stronger evidence and moved.", [[{}, s.moves]]),
  ].join("\n\n");
  return c.text(`${body}\n`, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8", "cache-control": "no-store" }) as never;
};
