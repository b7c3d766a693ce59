import { type SQL, sql } from "drizzle-orm";
import { runBatch } from "../db/batch";
import type { Db } from "../db/client";
import { now, nowIso } from "../lib/clock";
import { log } from "../lib/log";
import type { Normalised } from "../sources/source-quote";
import { matchKey } from "../unify/matcher";
import { type Resolution, resolveAssets } from "../unify/resolve";
import { quoteStatements, type ResolvedQuote, rejectionStatement } from "./store";

/** Quotes per transaction: big enough to amortise round trips, small enough for D1's statement limits. */
const CHUNK = 2000;
/** Quotes unified per lease: bounds the size of the key lists sent to D1. */
const RESOLVE_CHUNK = 5000;

/**
 * unify -> upsert for one part of a run (a page, a CSV block, a replayed payload). Each slice is one
 * D1 batch (a transaction) that also records the part's counts and `extra` (e.g. the CSV resume
 * offset), so a crash leaves either all of a slice or none of it.
 */
export async function storeNormalised(
  db: Db,
  kv: KVNamespace,
  p: { source: string; runId: string; part: string; fetched: number; normalised: Normalised; checkpoint?: Checkpoint },
) {
  const at = nowIso();
  // The newest record wins when one id appears twice in a payload.
  const byId = new Map(p.normalised.quotes.map((q) => [q.sourceId, q]));
  const quotes = [...byId.values()];
  const t0 = now();
  // Resolved in slices so that every JSON parameter stays well under D1's 2 MB value limit.
  const resolution: Resolution = new Map();
  for (let i = 0; i < quotes.length; i += RESOLVE_CHUNK) {
    for (const [k, v] of await resolveAssets(db, kv, p.source, quotes.slice(i, i + RESOLVE_CHUNK))) resolution.set(k, v);
  }
  const t1 = now();
  let written = 0;
  // D1's own execution time of the statements; the rest of write_ms is round trips and commits.
  let sqlMs = 0;
  const slices = Math.max(1, Math.ceil(quotes.length / CHUNK));
  for (let s = 0; s < slices; s++) {
    const slice: ResolvedQuote[] = quotes
      .slice(s * CHUNK, (s + 1) * CHUNK)
      .map((q) => ({ ...q, assetUid: resolution.get(matchKey(q))!.assetUid }));
    const last = s === slices - 1;
    const { statements, upsertIndex } = quoteStatements(p.source, p.runId, slice, at);
    const tail: SQL[] = [];
    let advanceAt = -1;
    if (last) {
      for (let r = 0; r < p.normalised.rejected.length; r += CHUNK) {
        tail.push(rejectionStatement(p.source, p.runId, p.normalised.rejected.slice(r, r + CHUNK), at));
      }
      if (p.checkpoint) advanceAt = statements.length + tail.push(p.checkpoint.advance) - 1;
      tail.push(
        partStatement(
          p,
          quotes.map((q) => q.sourceId),
          at,
          p.checkpoint?.holds,
        ),
      );
    }
    const results = await runBatch(db, [...statements, ...tail]);
    written += results[upsertIndex]?.meta?.changes ?? 0;
    sqlMs += results.reduce((sum, r) => sum + (r.meta.duration ?? 0), 0);
    if (advanceAt >= 0 && results[advanceAt].meta.changes === 0) {
      throw new CheckpointMoved(`${p.part}: the checkpoint was moved by another delivery; resuming from it`);
    }
  }
  log("info", "chunk_stored", {
    run_id: p.runId,
    part: p.part,
    quotes: quotes.length,
    written,
    resolve_ms: t1 - t0,
    write_ms: now() - t1,
    sql_ms: Math.round(sqlMs),
  });
  return { accepted: p.normalised.quotes.length, rejected: p.normalised.rejected.length, written };
}

/**
 * Counts the part once. `written` is the number of its quotes that now carry this run's id, which
 * is the same whether the part's message was delivered once or again after a crash.
 */
function partStatement(
  p: { source: string; runId: string; part: string; fetched: number; normalised: Normalised },
  ids: string[],
  now: string,
  holds: SQL = sql`1`,
) {
  return sql`
    INSERT INTO run_parts (run_id, part, fetched, accepted, rejected, written, finished_at)
    SELECT ${p.runId}, ${p.part}, ${p.fetched}, ${p.normalised.quotes.length}, ${p.normalised.rejected.length},
      (SELECT COUNT(*) FROM source_quotes WHERE source = ${p.source} AND run_id = ${p.runId}
        AND source_id IN (SELECT value FROM json_each(${JSON.stringify(ids)}))), ${now}
    WHERE ${holds}
    ON CONFLICT DO NOTHING`;
}

/**
 * A resume point stored in the same transaction as the rows: `advance` moves it only from where
 * this writer started (its `changes` say whether it did), `holds` is true once it points past
 * this part, so the part is counted only together with the move.
 */
export type Checkpoint = { advance: SQL; holds: SQL };

/** Another delivery of the same message moved the checkpoint first; this one must resume from it. */
export class CheckpointMoved extends Error {}
