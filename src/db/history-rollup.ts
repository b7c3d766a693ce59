import { and, asc, eq, lte } from "drizzle-orm";
import { groupBy } from "../lib/group-by";
import type { Db } from "./client";
import { type Point, periodStart, weightedMean } from "./history-codec";
import { inLease } from "./lease";
import {
  deleteHistoryRowStatement,
  historyRowsQuery,
  mergedHistoryStatements,
  QUOTES_LEASE,
  quotesLeaseName,
  rawRows,
} from "./quote-store";
import { historyBuckets, type Resolution } from "./schema";

/** Rows rolled up per transaction. */
const ROWS_PER_BATCH = 200;

/**
 * Rolls every `from` row whose period ended before `cutoff` into one `to` point per id and row (a
 * raw hour becomes an hourly point, an hourly day a daily point), weighted by how many raw points
 * it stands for, so an hour rolled up in two passes (late points are normal) gives the point one
 * pass over all of them would. Each slice reads its rows, merges and deletes them under the source's
 * quotes lease (the lease every writer of those rows holds) in one fenced transaction, so a point
 * stored meanwhile is never deleted unread, and re-running it changes nothing.
 */
export async function rollUp(db: Db, from: Resolution, to: Resolution, cutoff: number) {
  const periodMs = from === "raw" ? 3_600_000 : 86_400_000;
  let removed = 0;
  let added = 0;
  while (true) {
    const due = await db
      .select({ source: historyBuckets.source, bucket: historyBuckets.bucket, periodStart: historyBuckets.periodStart })
      .from(historyBuckets)
      .where(and(eq(historyBuckets.resolution, from), lte(historyBuckets.periodStart, new Date(cutoff - periodMs).toISOString())))
      .orderBy(asc(historyBuckets.periodStart))
      .limit(ROWS_PER_BATCH);
    if (!due.length) break;
    for (const [source, rows] of groupBy(due, (r) => r.source)) {
      const keys = rows.map((r) => ({ bucket: r.bucket, start: Date.parse(r.periodStart) }));
      const targets = keys.map((k) => ({ bucket: k.bucket, start: periodStart(to, k.start) }));
      const { value } = await inLease(
        db,
        quotesLeaseName(source),
        QUOTES_LEASE,
        [historyRowsQuery(db, source, from, keys), historyRowsQuery(db, source, to, targets)],
        async ([fromRes, toRes]) => {
          const inputs = rawRows(fromRes);
          const points: Point[] = [];
          let read = 0;
          for (const [key, ps] of inputs) {
            const start = Number(key.slice(key.indexOf("@") + 1));
            for (const [, slotPoints] of groupBy(ps, (p) => p.slot)) points.push(weightedMean(slotPoints, start));
            read += ps.length;
          }
          const writes = mergedHistoryStatements(source, to, points, rawRows(toRes));
          const deletes = [...inputs.keys()].map((k) => {
            const [bucket, start] = k.split("@").map(Number);
            return deleteHistoryRowStatement(source, bucket, from, start);
          });
          return { writes: [...writes, ...deletes], value: { read, rolled: points.length } };
        },
      );
      removed += value.read;
      added += value.rolled;
    }
    if (due.length < ROWS_PER_BATCH) break;
  }
  return { points_removed: removed, points_added: added };
}
