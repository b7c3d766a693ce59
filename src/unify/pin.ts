import { sql } from "drizzle-orm";
import type { Source } from "../config";
import type { Db } from "../db/client";
import type { ConsensusRules } from "../db/consensus";
import { storedQuotesOf, takeQuotesToMove } from "../db/quote-store";
import { publishReadModel } from "../db/read-model";
import { nowIso } from "../lib/clock";
import { log } from "../lib/log";
import { keysOf } from "./evidence";
import { insertMappingsStatement, inUnifyLease, retireStatements } from "./resolve";
import { nextSlotOf, nextSlotQuery } from "./slots";

/**
 * Pins (source, source_id) to an asset. The pin is stored in D1, read before every automatic
 * rule, and applied to the stored quote in the same transaction (history follows its slot), under
 * the unify lease and the source's quotes lease, both fenced. An asset left with no mapping becomes
 * an alias of the target, so its uid keeps answering. The read model is then rebuilt.
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
  const reads = [
    sql`SELECT asset_uid, slot,
        (SELECT COUNT(*) FROM asset_mappings o WHERE o.asset_uid = m.asset_uid) AS on_asset
      FROM asset_mappings m WHERE source = ${source} AND source_id = ${sourceId}`,
    nextSlotQuery(source),
  ];
  const { value: before } = await inUnifyLease(db, reads, async ([prev, next]) => {
    const existing = prev.results[0] as { asset_uid: string; slot: number; on_asset: number } | undefined;
    const slot = existing?.slot ?? nextSlotOf(next.results as { next: number }[]);
    const quote = existing ? (await storedQuotesOf(db, [{ source, sourceId, slot }]))[0] : undefined;
    const symbol = quote?.symbol ?? "";
    const name = quote?.name ?? "";
    const keys = keysOf({ source, sourceId, symbol, name, priceUsd: null, rank: null, marketCapUsd: null });
    const previous = existing?.asset_uid ?? null;
    // The previous asset is retired when this id was its last mapping.
    const retire = previous && previous !== assetUid && existing?.on_asset === 1 ? retireStatements(previous, assetUid, now) : [];
    const move = await takeQuotesToMove(db, [{ source, sourceId, slot, assetUid }], now);
    return {
      writes: [
        insertMappingsStatement(
          source,
          [{ sourceId, assetUid, rule: "pinned", symbolKey: keys.sym, nameKey: keys.name, idKey: keys.id, name, slot }],
          now,
          true,
        ),
        sql`DELETE FROM ambiguous_matches WHERE source = ${source} AND source_id = ${sourceId}`,
        ...move.writes,
        ...retire,
      ],
      also: move.leases,
      value: { previous },
    };
  });
  // The pin is stored whatever happens next; a publish that fails is redone by the next run's.
  await publishReadModel(db, bucket, rules).catch((e) => log("error", "read_model_publish_failed", { after: "pin", error: String(e) }));
  return { source, source_id: sourceId, asset_uid: assetUid, pinned: true as const, previous_asset_uid: before.previous };
}
