import { sql } from "drizzle-orm";
import type { Source } from "../config";
import { runBatch } from "../db/batch";
import type { Db } from "../db/client";
import { LISTING_SCOPES, refreshAssetStatements, totalsStatement } from "../ingest/store";
import { nowIso } from "../lib/clock";
import { idKey, nameKey, symbolKey } from "./keys";

/**
 * Pins (source, source_id) to an asset. The pin is stored in D1, read before every automatic
 * rule, and applied at once to the stored quote and its history. An asset left with no mapping
 * becomes an alias of the target, so its uid keeps answering.
 */
export async function pinMapping(db: Db, assetUid: string, source: Source, sourceId: string) {
  const now = nowIso();
  const before = await db.get<{ asset_uid: string }>(
    sql`SELECT asset_uid FROM asset_mappings WHERE source = ${source} AND source_id = ${sourceId}`,
  );
  const quote = await db.get<{ symbol: string; name: string }>(
    sql`SELECT symbol, name FROM source_quotes WHERE source = ${source} AND source_id = ${sourceId}`,
  );
  const symbol = quote?.symbol ?? "";
  const name = quote?.name ?? "";
  const previous = before?.asset_uid ?? null;
  const affected = sql`SELECT value FROM json_each(${JSON.stringify([assetUid, previous].filter(Boolean))})`;
  await runBatch(db, [
    sql`
      INSERT INTO asset_mappings (source, source_id, asset_uid, rule, pinned, symbol_key, name_key, id_key, name, created_at, updated_at)
      VALUES (${source}, ${sourceId}, ${assetUid}, 'pinned', 1, ${symbolKey(symbol)}, ${nameKey(name)}, ${idKey(source, sourceId, symbol)}, ${name}, ${now}, ${now})
      ON CONFLICT (source, source_id) DO UPDATE SET asset_uid = excluded.asset_uid, rule = 'pinned', pinned = 1, updated_at = excluded.updated_at`,
    sql`UPDATE source_quotes SET asset_uid = ${assetUid} WHERE source = ${source} AND source_id = ${sourceId}`,
    sql`UPDATE quote_history SET asset_uid = ${assetUid} WHERE source = ${source} AND source_id = ${sourceId}`,
    sql`DELETE FROM ambiguous_matches WHERE source = ${source} AND source_id = ${sourceId}`,
    ...refreshAssetStatements(affected, now),
  ]);
  if (previous && previous !== assetUid) await retireIfEmpty(db, previous, assetUid, now);
  await runBatch(db, [totalsStatement()]);
  return { source, source_id: sourceId, asset_uid: assetUid, pinned: true as const, previous_asset_uid: previous };
}

/** An asset with no mapping left is merged into `into`: its uid (and its own aliases) answer as aliases. */
async function retireIfEmpty(db: Db, uid: string, into: string, now: string) {
  const left = await db.get<{ n: number }>(sql`SELECT COUNT(*) AS n FROM asset_mappings WHERE asset_uid = ${uid}`);
  if (left?.n) return;
  await runBatch(db, [
    sql`INSERT OR REPLACE INTO asset_aliases (alias_uid, asset_uid, created_at) VALUES (${uid}, ${into}, ${now})`,
    sql`UPDATE asset_aliases SET asset_uid = ${into} WHERE asset_uid = ${uid}`,
    sql`DELETE FROM asset_listing WHERE scope IN ${LISTING_SCOPES} AND asset_uid = ${uid}`,
    sql`DELETE FROM assets WHERE asset_uid = ${uid}`,
  ]);
}
