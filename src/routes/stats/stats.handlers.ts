import type { RouteHandler, z } from "@hono/zod-openapi";
import { count, desc } from "drizzle-orm";
import { SOURCES, type Source } from "../../config";
import { listMoves } from "../../db/queries/assets";
import { collectStats, lastRuns, listRuns } from "../../db/queries/stats";
import { ambiguousMatches } from "../../db/schema";
import { readCheckpoints } from "../../ingest/checkpoints";
import { type AppEnv, envelope } from "../../lib/router";
import type * as routes from "./stats.routes";
import type { StatsSchema } from "./stats.routes";

export const stats: RouteHandler<typeof routes.stats, AppEnv> = async (c) => {
  const { readDb: db } = c.get("services");
  const [s, last, recent] = await Promise.all([
    c
      .get("services")
      .readModel()
      .then((model) => collectStats(db, model)),
    lastRuns(db),
    listRuns(db, { page: 1, pageSize: 10 }),
  ]);
  const sources = Object.fromEntries(
    SOURCES.map((source) => {
      const x = s.sources[source];
      return [
        source,
        {
          records: x.records,
          last_run: last[source],
          success_rate: x.finished ? x.succeeded / x.finished : null,
          mean_duration_ms: x.mean_duration_ms,
          last_success_at: x.last_success_at,
          runs: x.runs,
          failed_runs: x.failed,
          usage: x.usage,
        },
      ];
    }),
  ) as Record<Source, z.infer<typeof StatsSchema>["sources"][Source]>;
  return c.json(
    envelope(c, {
      totals: s.totals,
      runs: s.runs,
      sources,
      recent_runs: recent.runs,
      dead_letters: s.deadLetters,
      ambiguous_matches: s.ambiguous,
      mapping_moves: s.moves,
    }),
    200,
  );
};

export const runs: RouteHandler<typeof routes.runs, AppEnv> = async (c) => {
  const q = c.req.valid("query");
  const { runs, total } = await listRuns(c.get("services").readDb, {
    source: q.source,
    status: q.status,
    page: q.page,
    pageSize: q.page_size,
  });
  return c.json(envelope(c, runs, { page: q.page, page_size: q.page_size, total }), 200);
};

export const checkpoints: RouteHandler<typeof routes.checkpoints, AppEnv> = async (c) => {
  return c.json(envelope(c, await readCheckpoints(c.get("services").env.KV)), 200);
};

export const ambiguities: RouteHandler<typeof routes.ambiguities, AppEnv> = async (c) => {
  const { page, page_size } = c.req.valid("query");
  const db = c.get("services").readDb;
  const [rows, [{ total }]] = await db.batch([
    db
      .select()
      .from(ambiguousMatches)
      .orderBy(desc(ambiguousMatches.seenAt))
      .limit(page_size)
      .offset((page - 1) * page_size),
    db.select({ total: count() }).from(ambiguousMatches),
  ]);
  const data = rows.map((r) => ({
    source: r.source as Source,
    source_id: r.sourceId,
    asset_uid: r.assetUid,
    candidates: JSON.parse(r.candidates) as string[],
    rule: r.reason,
    seen_at: r.seenAt,
  }));
  return c.json(envelope(c, data, { page, page_size, total }), 200);
};

export const moves: RouteHandler<typeof routes.moves, AppEnv> = async (c) => {
  const { page, page_size } = c.req.valid("query");
  const { moves, total } = await listMoves(c.get("services").readDb, page, page_size);
  return c.json(envelope(c, moves, { page, page_size, total }), 200);
};
