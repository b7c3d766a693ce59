import type { RouteHandler } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import { SOURCES, type Source } from "../../config";
import { type SourceHealth, sourceHealth } from "../../db/queries/sources";
import { nowIso } from "../../lib/clock";
import type { AppEnv } from "../../lib/router";
import type { HealthRoute } from "./health.routes";

const probe = (p: Promise<unknown>) =>
  p.then(
    () => "ok" as const,
    () => "error" as const,
  );

export const health: RouteHandler<HealthRoute, AppEnv> = async (c) => {
  const s = c.get("services");
  const db = s.db;
  const [d1, kv, r2] = await Promise.all([
    probe(db.get(sql`SELECT 1`)),
    probe(s.env.KV.get("health:probe")),
    probe(s.env.BUCKET.head("health/probe")),
  ]);
  let sources: Record<Source, SourceHealth>;
  try {
    sources = d1 === "ok" ? await sourceHealth(db, s.config) : unknownSources();
  } catch {
    sources = unknownSources();
  }
  const model = d1 === "ok" ? await s.readModel().catch(() => null) : null;
  const consensus = { assets: model?.size ?? 0, single_source_assets: model?.singleSourceAssets() ?? 0 };
  const degraded = kv === "error" || r2 === "error" || Object.values(sources).some((h) => h.status === "failing" || h.status === "stale");
  const status = d1 === "error" ? "down" : degraded ? "degraded" : "ok";
  c.header("cache-control", "no-store");
  return c.json({ status, checks: { d1, kv, r2 }, sources, consensus, time: nowIso() }, d1 === "error" ? 503 : 200);
};

function unknownSources() {
  return Object.fromEntries(SOURCES.map((s) => [s, { status: "never", last_success_at: null, last_error: null, stale: false }])) as Record<
    Source,
    SourceHealth
  >;
}
