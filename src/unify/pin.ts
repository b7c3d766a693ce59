import { sql } from "drizzle-orm";
import type { Source } from "../config";
import { runBatch } from "../db/batch";
import type { Db } from "../db/client";
import type { ConsensusRules } from "../db/consensus";
import { withLease } from "../db/lease";
import { moveStoredQuotes, storedQuotesOf } from "../db/quote-store";
import { publishReadModel } from "../db/read-model";
import { nowIso } from "../lib/clock";
import { keysOf } from "./evidence";
import { retireStatements } from "./resolve";
import { nextSlotOf, nextSlotQuery } from "./slots";

/**
 * Pins (source, source_id) to an asset. The pin is stored in D1, read before every automatic
 * rule, and applied at once to the stored quote (history follows its slot). An asset left with no
 * mapping becomes an alias of the target, so its uid keeps answering. The read model is rebuilt.
 */
export async function pinMapping(
  db: Db,
  bucket: R2Bucket,
  rules: ConsensusRules,
  pin: { assetUid: string; source: Source; sourceId: string },
) {
  const { assetUid, source, sourceId } = pin;
  const now = nowIso();
  // Under the unify lease: a new mapping takes the next slot, which only that lease hands out.
  const before = await withLease(db, "unify", 60_000, 45_000, async () => {
    const [prev, next] = await runBatch<{ asset_uid: string; slot: number; next: number }>(db, [
      sql`SELECT asset_uid, slot FROM asset_mappings WHERE source = ${source} AND source_id = ${sourceId}`,
      nextSlotQuery(source),
    ]);
    const existing = prev.results[0];
    const slot = existing?.slot ?? nextSlotOf(next.results);
    const quote = existing ? (await storedQuotesOf(db, [{ source, sourceId, slot }]))[0] : undefined;
    const symbol = quote?.symbol ?? "";
    const name = quote?.name ?? "";
    const keys = keysOf({ source, sourceId, symbol, name, priceUsd: null, rank: null, marketCapUsd: null });
    await runBatch(db, [
      sql`
        INSERT INTO asset_mappings (source, source_id, asset_uid, rule, pinned, symbol_key, name_key, id_key, name, slot, created_at, updated_at)
        VALUES (${source}, ${sourceId}, ${assetUid}, 'pinned', 1, ${keys.sym}, ${keys.name}, ${keys.id}, ${name}, ${slot}, ${now}, ${now})
        ON CONFLICT (source, source_id) DO UPDATE SET asset_uid = excluded.asset_uid, rule = 'pinned', pinned = 1, updated_at = excluded.updated_at`,
      sql`DELETE FROM ambiguous_matches WHERE source = ${source} AND source_id = ${sourceId}`,
    ]);
    return { previous: existing?.asset_uid ?? null, slot };
  });
  await moveStoredQuotes(db, [{ source, sourceId, slot: before.slot, assetUid }], now);
  if (before.previous && before.previous !== assetUid) await retireIfEmpty(db, before.previous, assetUid, now);
  await publishReadModel(db, bucket, rules);
  return { source, source_id: sourceId, asset_uid: assetUid, pinned: true as const, previous_asset_uid: before.previous };
}

/** An asset with no mapping left is merged into `into`: its uid (and its own aliases) answer as aliases. */
async function retireIfEmpty(db: Db, uid: string, into: string, now: string) {
  const left = await db.get<{ n: number }>(sql`SELECT COUNT(*) AS n FROM asset_mappings WHERE asset_uid = ${uid}`);
  if (left?.n) return;
  await runBatch(db, retireStatements(uid, into, now));
}
