import type { SQL } from "drizzle-orm";
import type { Statement } from "../db/batch";
import type { Db } from "../db/client";
import { type ResolvedQuote, storeQuotes, type TailStatements } from "../db/quote-store";
import { rejectionStatements } from "../db/rejections";
import { now, nowIso } from "../lib/clock";
import { log } from "../lib/log";
import { currentMeter, noUsage, type Usage } from "../lib/usage";
import type { Normalised } from "../sources/source-quote";
import { matchKey } from "../unify/matcher";
import { type Resolution, resolveAssets } from "../unify/resolve";
import { partRowStatement } from "./runs";

/** Quotes per transaction: big enough to amortise round trips, small enough for D1's statement and value limits. */
const CHUNK = 10_000;
/** Rules of ids mapped before this part: only their quotes can be stored already. */
const knownRules = new Set(["known", "pinned"]);
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
  p: {
    source: string;
    runId: string;
    part: string;
    fetched: number;
    normalised: Normalised;
    checkpoint?: Checkpoint;
    rawId?: string;
    /** Statements that belong in the part's transaction (its raw payload's index row). */
    also?: Statement[];
    /** Lease fences of the writer (its page, its run's source): in every transaction of the part that writes. */
    fences?: Statement[];
  },
) {
  const at = nowIso();
  // Records in time order (stable): an id listed at several times (a CSV of past days) advances
  // through each, so every one newer than what is stored adds its history point and the newest
  // stays as the quote. Identity is decided once per id, on its newest record.
  const ordered = [...p.normalised.quotes].sort((a, b) =>
    a.sourceUpdatedAt < b.sourceUpdatedAt ? -1 : a.sourceUpdatedAt > b.sourceUpdatedAt ? 1 : 0,
  );
  const quotes = [...new Map(ordered.map((q) => [q.sourceId, q])).values()];
  const t0 = now();
  // Resolved in slices so that every JSON parameter stays well under D1's 2 MB value limit.
  const resolution: Resolution = new Map();
  for (let i = 0; i < quotes.length; i += RESOLVE_CHUNK) {
    for (const [k, v] of await resolveAssets(db, kv, p.source, quotes.slice(i, i + RESOLVE_CHUNK))) resolution.set(k, v);
  }
  const t1 = now();
  const known: boolean[] = [];
  const resolved: ResolvedQuote[] = ordered.map((q) => {
    const r = resolution.get(matchKey(q))!;
    known.push(knownRules.has(r.rule));
    return { ...q, assetUid: r.assetUid, slot: r.slot };
  });
  let written = 0;
  const slices = Math.max(1, Math.ceil(resolved.length / CHUNK));
  for (let s = 0; s < slices; s++) {
    const last = s === slices - 1;
    const slice = resolved.slice(s * CHUNK, (s + 1) * CHUNK);
    // The part records what it cost up to its own transaction; that transaction's cost goes on with
    // the next part, message or close. Put back if the transaction does not happen.
    let usage: Usage | undefined;
    const stored = await storeQuotes(db, {
      source: p.source,
      runId: p.runId,
      quotes: slice,
      now: at,
      allKnown: known.slice(s * CHUNK, (s + 1) * CHUNK).every(Boolean),
      tail: (sliceWritten): TailStatements => {
        const fences = p.fences ?? [];
        if (!last) return sliceWritten ? { fences } : {};
        usage = currentMeter()?.take() ?? noUsage();
        return {
          fences,
          also: p.also ?? [],
          rejections: rejectionStatements(p.source, p.runId, p.normalised.rejected, at),
          checkpoint: p.checkpoint ? [p.checkpoint.advance] : [],
          part: [partStatement(p, written + sliceWritten, at, usage, p.checkpoint?.holds)],
        };
      },
    }).catch((e) => {
      if (usage) currentMeter()?.restore(usage);
      throw e;
    });
    written += stored.written;
    if (last && p.checkpoint && stored.tail.checkpoint?.[0]?.meta.changes === 0) {
      if (usage) currentMeter()?.restore(usage);
      throw new CheckpointMoved(`${p.part}: the checkpoint was moved by another delivery; resuming from it`);
    }
  }
  log("info", "chunk_stored", { run_id: p.runId, part: p.part, quotes: quotes.length, written, resolve_ms: t1 - t0, write_ms: now() - t1 });
  return { accepted: p.normalised.quotes.length, rejected: p.normalised.rejected.length, written };
}

/**
 * Counts the part once, in the transaction that stored it: a redelivery after a crash finds the
 * part (or the checkpoint past it) and counts nothing again.
 */
function partStatement(
  p: { runId: string; part: string; fetched: number; normalised: Normalised; rawId?: string },
  written: number,
  at: string,
  usage: Usage,
  holds?: SQL,
) {
  const counts = { fetched: p.fetched, accepted: p.normalised.quotes.length, rejected: p.normalised.rejected.length, written };
  return partRowStatement({ runId: p.runId, part: p.part, counts, rawId: p.rawId, at, usage, holds });
}

/**
 * A resume point stored in the same transaction as the rows: `advance` moves it only from where
 * this writer started (its `changes` say whether it did), `holds` is true once it points past
 * this part, so the part is counted only together with the move.
 */
export type Checkpoint = { advance: SQL; holds: SQL };

/** Another delivery of the same message moved the checkpoint first; this one must resume from it. */
export class CheckpointMoved extends Error {}
