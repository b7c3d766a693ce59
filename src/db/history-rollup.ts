import { and, asc, eq, lte } from "drizzle-orm";
import { groupBy } from "../lib/group-by";
import { runBatch } from "./batch";
import type { Db } from "./client";
import { blobBytes, decodePoints, type Point, periodStart } from "./history-codec";
import { deleteHistoryRowStatement, historyStatements, withQuotesLease } from "./quote-store";
import { historyBuckets, type Resolution } from "./schema";

/** Rows rolled up per transaction. */
const ROWS_PER_BATCH = 200;

const mean = (xs: (number | null)[]) => {
  const known = xs.filter((x): x is number => x !== null);
  return known.length ? known.reduce((a, b) => a + b, 0) / known.length : null;
};

/**
 * Rolls every `from` row whose period ended before `cutoff` into one averaged `to` point per id and
 * row (a raw hour becomes an hourly point, an hourly day a daily point). The new points and the
 * deletion of their inputs are one transaction per slice, so re-running it changes nothing.
 */
export async function rollUp(db: Db, from: Resolution, to: Resolution, cutoff: number) {
  const periodMs = from === "raw" ? 3_600_000 : 86_400_000;
  let removed = 0;
  let added = 0;
  while (true) {
    const rows = await db
      .select({
        source: historyBuckets.source,
        bucket: historyBuckets.bucket,
        periodStart: historyBuckets.periodStart,
        points: historyBuckets.points,
      })
      .from(historyBuckets)
      .where(and(eq(historyBuckets.resolution, from), lte(historyBuckets.periodStart, new Date(cutoff - periodMs).toISOString())))
      .orderBy(asc(historyBuckets.periodStart))
      .limit(ROWS_PER_BATCH);
    if (!rows.length) break;
    for (const [source, sourceRows] of groupBy(rows, (r) => r.source)) {
      const points: Point[] = [];
      for (const r of sourceRows) {
        const start = Date.parse(r.periodStart);
        const bySlot = new Map<number, Point[]>();
        for (const p of decodePoints(start, r.bucket, blobBytes(r.points))) {
          const list = bySlot.get(p.slot);
          if (list) list.push(p);
          else bySlot.set(p.slot, [p]);
          removed++;
        }
        for (const [slot, ps] of bySlot) {
          points.push({
            slot,
            at: periodStart(from, ps[0].at),
            priceUsd: mean(ps.map((p) => p.priceUsd))!,
            marketCapUsd: mean(ps.map((p) => p.marketCapUsd)),
            volume24hUsd: mean(ps.map((p) => p.volume24hUsd)),
          });
        }
      }
      await withQuotesLease(db, source, async () => {
        const writes = await historyStatements(db, source, to, points);
        const deletes = sourceRows.map((r) => deleteHistoryRowStatement(source, r.bucket, from, Date.parse(r.periodStart)));
        await runBatch(db, [...writes, ...deletes]);
      });
      added += points.length;
    }
    if (rows.length < ROWS_PER_BATCH) break;
  }
  return { points_removed: removed, points_added: added };
}
