import { and, gte, inArray, isNotNull, lt, notInArray, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { rollUp } from "../db/history-rollup";
import { rawPayloads, runParts } from "../db/schema";
import { now } from "../lib/clock";

/** Raw points are kept this long, hourly roll-ups this long; daily roll-ups are kept for good. */
export const RAW_POINTS_DAYS = 7;
export const HOURLY_POINTS_DAYS = 90;
const DAY = 86_400_000;

/** Keeps history bounded: raw points older than 7 days become hourly means, hourly ones older than 90 days daily means. */
export async function rollUpHistory(db: Db, at = now()) {
  const hourly = await rollUp(db, "raw", "hour", at - RAW_POINTS_DAYS * DAY);
  const daily = await rollUp(db, "hour", "day", at - HOURLY_POINTS_DAYS * DAY);
  return {
    hourly_points_added: hourly.points_added,
    raw_points_removed: hourly.points_removed,
    daily_points_added: daily.points_added,
    hourly_points_removed: daily.points_removed,
  };
}

/** Objects deleted per R2 call (its limit for a multi-key delete). */
const DELETE_BATCH = 1000;

/**
 * Deletes archived raw payloads older than `days`: their index rows, then their objects in R2. A payload
 * that a part finished since the cutoff still reads (an unchanged body is archived once) is kept for
 * replay. Choosing and deleting the rows is one statement, and a part that reuses a payload commits
 * only while its row is there (archive.ts): whichever comes first, no part points at a deleted
 * payload. An object goes only once its row has gone, so nothing can find it to reuse it after.
 */
export async function pruneRawArchive(db: Db, bucket: R2Bucket, days: number, at = now()) {
  const cutoff = new Date(at - days * DAY).toISOString();
  const recentlyRead = db
    .select({ id: sql`${runParts.rawId}` })
    .from(runParts)
    .where(and(isNotNull(runParts.rawId), gte(runParts.finishedAt, cutoff)));
  let deleted = 0;
  while (true) {
    const old = db
      .select({ id: rawPayloads.id })
      .from(rawPayloads)
      .where(and(lt(rawPayloads.fetchedAt, cutoff), notInArray(rawPayloads.id, recentlyRead)))
      .limit(DELETE_BATCH);
    const gone = await db.delete(rawPayloads).where(inArray(rawPayloads.id, old)).returning({ key: rawPayloads.key });
    if (!gone.length) break;
    await bucket.delete(gone.map((r) => r.key));
    deleted += gone.length;
    if (gone.length < DELETE_BATCH) break;
  }
  return { raw_payloads_deleted: deleted };
}
