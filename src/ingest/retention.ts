import { and, gte, isNotNull, lt, notInArray, sql } from "drizzle-orm";
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
 * Deletes archived raw payloads older than `days` from R2, then their index rows. A payload that a
 * part finished since the cutoff still reads (an unchanged body is archived once) is kept for replay.
 */
export async function pruneRawArchive(db: Db, bucket: R2Bucket, days: number, at = now()) {
  const cutoff = new Date(at - days * DAY).toISOString();
  let deleted = 0;
  while (true) {
    const old = await db
      .select({ id: rawPayloads.id, key: rawPayloads.key })
      .from(rawPayloads)
      .where(
        and(
          lt(rawPayloads.fetchedAt, cutoff),
          notInArray(
            rawPayloads.id,
            db
              .select({ id: sql`${runParts.rawId}` })
              .from(runParts)
              .where(and(isNotNull(runParts.rawId), gte(runParts.finishedAt, cutoff))),
          ),
        ),
      )
      .limit(DELETE_BATCH);
    if (!old.length) break;
    await bucket.delete(old.map((r) => r.key));
    // One JSON parameter: D1 takes at most 100 bound parameters.
    await db.delete(rawPayloads).where(sql`${rawPayloads.id} IN (SELECT value FROM json_each(${JSON.stringify(old.map((r) => r.id))}))`);
    deleted += old.length;
    if (old.length < DELETE_BATCH) break;
  }
  return { raw_payloads_deleted: deleted };
}
