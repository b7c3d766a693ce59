import { type SQL, sql } from "drizzle-orm";
import type { Source } from "../../config";
import type { Contract, ContractRef } from "../../schemas/contracts";
import { explorerUrl } from "../../sources/chains";
import { col, type Db } from "../client";
import type { ReadModel } from "../read-model";
import { assetMappings, sourceContracts } from "../schema";

const c = sourceContracts;
const m = assetMappings;

/**
 * The assets whose ids list any of `refs`: each pair found through (chain, address), each listing's
 * id through the mappings' primary key, so a lookup reads a few rows per pair whatever the tables' size.
 */
async function assetUidsByContracts(db: Db, refs: ContractRef[]) {
  if (!refs.length) return [];
  const pairs = JSON.stringify(refs.map((r) => [r.chain, r.address]));
  const rows = await db.all<{ uid: string }>(sql`
    SELECT DISTINCT mp.${col(m.assetUid)} AS uid FROM json_each(${pairs}) j
    JOIN ${c} s ON s.${col(c.chain)} = j.value ->> 0 AND s.${col(c.address)} = j.value ->> 1
    JOIN ${m} mp ON mp.${col(m.source)} = s.${col(c.source)} AND mp.${col(m.sourceId)} = s.${col(c.sourceId)}
    ORDER BY 1`);
  return rows.map((r) => r.uid);
}

/**
 * The `ids` filter of a /data request, with `contract=` applied: the assets listing those contracts
 * (with `ids` too, only those among the assets `ids` names). Unchanged without `contract`.
 */
export async function idsFilter(
  s: { readDb: Db; readModel(): Promise<ReadModel | null> },
  q: { ids?: string[]; contract?: ContractRef[] },
): Promise<string[] | undefined> {
  if (!q.contract) return q.ids;
  const uids = await assetUidsByContracts(s.readDb, q.contract);
  if (!q.ids || !uids.length) return uids;
  const model = await s.readModel();
  const named = model?.list({ ids: q.ids, page: 1, pageSize: q.ids.length, sort: "rank", order: "asc" }).items ?? [];
  const within = new Set(named.map((a) => a.asset_uid));
  return uids.filter((u) => within.has(u));
}

export type ContractListing = { asset_uid: string; chain: string; address: string; source: string; active: number };

/** The contracts listed for the ids mapped to the assets `where` selects (a condition on the mappings `mp`). */
const listingsQuery = (where: SQL) => sql`
  SELECT mp.${col(m.assetUid)} AS asset_uid, s.${col(c.chain)} AS chain, s.${col(c.address)} AS address,
    s.${col(c.source)} AS source, s.${col(c.active)} AS active
  FROM ${m} mp JOIN ${c} s ON s.${col(c.source)} = mp.${col(m.source)} AND s.${col(c.sourceId)} = mp.${col(m.sourceId)}
  WHERE ${where}
  ORDER BY 1, 2, 3, 4`;

/** The contracts of one asset (`target` evaluates to its uid), for its detail's batch. */
export const assetContractsStatement = (target: SQL) => listingsQuery(sql`mp.${col(m.assetUid)} = ${target}`);

/** One contract a row, with every source that lists it; active while any of them says so. */
export function groupContracts(rows: Omit<ContractListing, "asset_uid">[]): Contract[] {
  const out = new Map<string, Contract>();
  for (const r of rows) {
    const key = `${r.chain}\u0000${r.address}`;
    let x = out.get(key);
    if (!x) {
      x = { chain: r.chain, address: r.address, sources: [], active: false, explorer_url: explorerUrl(r.chain, r.address) };
      out.set(key, x);
    }
    if (!x.sources.includes(r.source as Source)) x.sources.push(r.source as Source);
    x.active ||= !!r.active;
  }
  return [...out.values()];
}

/** The contracts of many assets at once (an export's chunk): the statement, and its rows by asset. */
export const assetsContractsStatement = (uids: string[]) =>
  listingsQuery(sql`mp.${col(m.assetUid)} IN (SELECT value FROM json_each(${JSON.stringify(uids)}))`);

export function contractsByAsset(rows: ContractListing[]) {
  const out = new Map<string, Contract[]>();
  let from = 0;
  for (let i = 1; i <= rows.length; i++) {
    if (i < rows.length && rows[i].asset_uid === rows[from].asset_uid) continue;
    out.set(rows[from].asset_uid, groupContracts(rows.slice(from, i)));
    from = i;
  }
  return out;
}
