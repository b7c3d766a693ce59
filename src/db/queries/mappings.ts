import { sql } from "drizzle-orm";
import type { Source } from "../../config";
import type { Contract } from "../../schemas/contracts";
import { runBatch } from "../batch";
import { col, type Db } from "../client";
import { assetAliases, assetMappings } from "../schema";
import { assetsContractsStatement, type ContractListing, contractsByAsset } from "./contracts";

const m = assetMappings;

export type ExportMapping = { source: Source; source_id: string; rule: string; pinned: boolean };

/**
 * The mappings and contracts of a chunk of assets (an export streams these): the mappings through
 * their asset index, the contracts through the listings' primary key, one round trip each.
 */
export async function mappingsOfAssets(db: Db, uids: string[]) {
  const out = new Map<string, { mappings: ExportMapping[]; contracts: Contract[] }>();
  if (!uids.length) return out;
  const [rows, listings] = await runBatch(db, [
    sql`SELECT ${col(m.assetUid)} AS asset_uid, ${col(m.source)} AS source, ${col(m.sourceId)} AS source_id, ${col(m.rule)} AS rule,
        ${col(m.pinned)} AS pinned
      FROM ${m} WHERE ${col(m.assetUid)} IN (SELECT value FROM json_each(${JSON.stringify(uids)})) ORDER BY 1, 2, 3`,
    assetsContractsStatement(uids),
  ]);
  const contracts = contractsByAsset(listings.results as ContractListing[]);
  for (const uid of uids) out.set(uid, { mappings: [], contracts: contracts.get(uid) ?? [] });
  for (const r of rows.results as { asset_uid: string; source: Source; source_id: string; rule: string; pinned: number }[]) {
    out.get(r.asset_uid)?.mappings.push({ source: r.source, source_id: r.source_id, rule: r.rule, pinned: !!r.pinned });
  }
  return out;
}

/** Every alias by the asset it points to: few (one per merge or pin), read once per export. */
export async function aliasesByAsset(db: Db) {
  const rows = await db
    .select({ alias: assetAliases.aliasUid, uid: assetAliases.assetUid })
    .from(assetAliases)
    .orderBy(assetAliases.aliasUid);
  const out = new Map<string, string[]>();
  for (const r of rows) {
    const list = out.get(r.uid);
    if (list) list.push(r.alias);
    else out.set(r.uid, [r.alias]);
  }
  return out;
}
