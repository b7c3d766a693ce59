import { sql } from "drizzle-orm";
import { runBatch } from "../db/batch";
import type { Db } from "../db/client";
import { now } from "../lib/clock";

/** Raw points are kept this long, hourly roll-ups this long; daily roll-ups are kept for good. */
export const RAW_RETENTION_DAYS = 7;
export const HOURLY_RETENTION_DAYS = 90;
const DAY = 86_400_000;

/**
 * Keeps history bounded: raw points older than 7 days become one averaged point per hour, hourly
 * points older than 90 days one per day. Inserting the roll-up and deleting its inputs happen in
 * one transaction, and re-running it changes nothing.
 */
export async function rollUpHistory(db: Db, at = now()) {
  const rawCutoff = new Date(at - RAW_RETENTION_DAYS * DAY).toISOString();
  const hourCutoff = new Date(at - HOURLY_RETENTION_DAYS * DAY).toISOString();
  const results = await runBatch(db, [
    sql`
      INSERT INTO quote_history (source, source_id, resolution, at, asset_uid, price_usd, market_cap_usd, volume_24h_usd)
      SELECT source, source_id, 'hour', strftime('%Y-%m-%dT%H:00:00.000Z', at), MAX(asset_uid), AVG(price_usd), AVG(market_cap_usd), AVG(volume_24h_usd)
      FROM quote_history WHERE resolution = 'raw' AND at < ${rawCutoff}
      GROUP BY source, source_id, strftime('%Y-%m-%dT%H:00:00.000Z', at)
      ON CONFLICT DO NOTHING`,
    sql`DELETE FROM quote_history WHERE resolution = 'raw' AND at < ${rawCutoff}`,
    sql`
      INSERT INTO quote_history (source, source_id, resolution, at, asset_uid, price_usd, market_cap_usd, volume_24h_usd)
      SELECT source, source_id, 'day', strftime('%Y-%m-%dT00:00:00.000Z', at), MAX(asset_uid), AVG(price_usd), AVG(market_cap_usd), AVG(volume_24h_usd)
      FROM quote_history WHERE resolution = 'hour' AND at < ${hourCutoff}
      GROUP BY source, source_id, strftime('%Y-%m-%dT00:00:00.000Z', at)
      ON CONFLICT DO NOTHING`,
    sql`DELETE FROM quote_history WHERE resolution = 'hour' AND at < ${hourCutoff}`,
  ]);
  return {
    hourly_points_added: results[0].meta.changes,
    raw_points_removed: results[1].meta.changes,
    daily_points_added: results[2].meta.changes,
    hourly_points_removed: results[3].meta.changes,
  };
}
