import { and, eq, type SQL, sql } from "drizzle-orm";
import { sha256 } from "../lib/digest";
import type { ContractRow, PlatformContracts } from "../sources/contracts";
import { jsonSlices, runBatch, type Statement } from "./batch";
import { col, type Db } from "./client";
import { contractPlatforms, contractRedecisions, sourceContracts } from "./schema";

const c = sourceContracts;
const p = contractPlatforms;
const r = contractRedecisions;

/**
 * Records ids (`ids`: SQL that gives a JSON array of source ids) of `source` to be decided again: a
 * statement of the transaction that changes their contracts.
 */
const addRedecisionsStatement = (source: string, ids: SQL) => sql`
  INSERT INTO ${r} (${col(r.source)}, ${col(r.ids)}) SELECT ${source}, ids FROM (SELECT ${ids} AS ids) WHERE json_array_length(ids) > 0`;

/** The ids of `source` still to be decided again (each once, in order), and the rows they were read from. */
export async function pendingRedecisions(db: Db, source: string) {
  const rows = await db.select({ id: r.id, ids: r.ids }).from(r).where(eq(r.source, source));
  if (!rows.length) return null;
  return { ids: [...new Set(rows.flatMap((x) => x.ids))].sort(), rows: rows.map((x) => x.id) };
}

/** Deletes the rows read and decided; rows recorded since stay. */
export const clearRedecisionsStatement = (rows: number[]) =>
  sql`DELETE FROM ${r} WHERE ${r.id} IN (SELECT value FROM json_each(${JSON.stringify(rows)}))`;

/** What is stored of one platform of a provider: the chain its rows are under and the digest of its list. */
export type StoredPlatform = { chain: string; digest: string | null };

const keyOf = (r: { sourceId: string; chain: string; address: string }) => `${r.sourceId}\u0000${r.chain}\u0000${r.address}`;

/** SHA-256 of a platform's list in a fixed order: equal lists, in any order, have equal digests. */
export async function contractsDigest(list: PlatformContracts) {
  const lines = list.rows.map((r) => `${keyOf(r)}\u0000${r.active ? 1 : 0}`).sort();
  return sha256(new TextEncoder().encode(`${list.chain}\n${lines.join("\n")}`));
}

/** Every platform of a provider with stored contracts (or listed and still to be fetched). */
export async function storedPlatforms(db: Db, source: string) {
  const rows = await db.select({ platform: p.platform, chain: p.chain, digest: p.digest }).from(p).where(eq(p.source, source));
  return new Map<string, StoredPlatform>(rows.map((r) => [r.platform, { chain: r.chain, digest: r.digest }]));
}

/**
 * The statements that make one platform's stored contracts equal `list`, from what is stored: rows
 * added or whose `active` changed are upserted, rows no longer listed are deleted, and the platform's
 * digest is updated. An unchanged row is not written. Stored rows are read through (chain, address)
 * under the chain they are stored under, and the new chain when the platform was mapped to another.
 */
export async function replacePlatformStatements(
  db: Db,
  source: string,
  list: PlatformContracts,
  digest: string,
  prev: StoredPlatform | undefined,
  at: string,
): Promise<{ statements: Statement[]; added: number; changed: number; removed: number; ids: string[] }> {
  const chains = [...new Set([list.chain, ...(prev ? [prev.chain] : [])])];
  // Through (chain, address): the planner would otherwise walk the source's whole key range for each platform.
  const stored = prev
    ? await db.all<{ source_id: string; chain: string; address: string; active: number }>(sql`
        SELECT ${col(c.sourceId)} AS source_id, ${col(c.chain)} AS chain, ${col(c.address)} AS address, ${col(c.active)} AS active
        FROM ${c} INDEXED BY contracts_address_idx
        WHERE ${col(c.chain)} IN (SELECT value FROM json_each(${JSON.stringify(chains)})) AND ${col(c.source)} = ${source}
          AND ${col(c.platform)} = ${list.platform}`)
    : [];
  const before = new Map(
    stored.map((r) => {
      const row = { sourceId: r.source_id, chain: r.chain, address: r.address, active: !!r.active };
      return [keyOf(row), row];
    }),
  );
  const upserts: ContractRow[] = [];
  let added = 0;
  for (const row of list.rows) {
    const old = before.get(keyOf(row));
    before.delete(keyOf(row));
    if (!old) added++;
    if (!old || old.active !== row.active) upserts.push(row);
  }
  const removed = [...before.values()];
  const statements: Statement[] = [
    ...jsonSlices(upserts.map((r) => JSON.stringify([r.sourceId, r.chain, r.address, r.active ? 1 : 0]))).map((json) =>
      upsertStatement(source, list.platform, json),
    ),
    ...jsonSlices(removed.map((r) => JSON.stringify([r.sourceId, r.chain, r.address]))).map((json) => deleteStatement(source, json)),
    sql`INSERT INTO ${p} (${col(p.source)}, ${col(p.platform)}, ${col(p.chain)}, ${col(p.digest)}, ${col(p.contracts)}, ${col(p.updatedAt)})
      VALUES (${source}, ${list.platform}, ${list.chain}, ${digest}, ${list.rows.length}, ${at})
      ON CONFLICT (${col(p.source)}, ${col(p.platform)}) DO UPDATE SET ${col(p.chain)} = excluded.${col(p.chain)},
        ${col(p.digest)} = excluded.${col(p.digest)}, ${col(p.contracts)} = excluded.${col(p.contracts)}, ${col(p.updatedAt)} = excluded.${col(p.updatedAt)}`,
  ];
  // The ids whose contracts this changes: what unification weighs again (resolve.ts redecideContracts),
  // recorded in the same transaction.
  const ids = [...new Set([...upserts, ...removed].map((x) => x.sourceId))].sort();
  if (ids.length) statements.push(addRedecisionsStatement(source, sql`${JSON.stringify(ids)}`));
  return { statements, added, changed: upserts.length - added, removed: removed.length, ids };
}

/** Rows as JSON `[source_id, chain, address, active]`; a row another platform of the provider held moves to this one. */
const upsertStatement = (source: string, platform: string, json: string) => sql`
  INSERT INTO ${c} (${col(c.source)}, ${col(c.sourceId)}, ${col(c.chain)}, ${col(c.address)}, ${col(c.platform)}, ${col(c.active)})
  SELECT ${source}, j.value ->> 0, j.value ->> 1, j.value ->> 2, ${platform}, j.value ->> 3 FROM json_each(${json}) j WHERE true
  ON CONFLICT (${col(c.source)}, ${col(c.sourceId)}, ${col(c.chain)}, ${col(c.address)}) DO UPDATE
    SET ${col(c.active)} = excluded.${col(c.active)}, ${col(c.platform)} = excluded.${col(c.platform)}`;

/** Rows as JSON `[source_id, chain, address]`, each found by its key (a row value IN its list: one key lookup a row). */
const deleteStatement = (source: string, json: string) => sql`
  DELETE FROM ${c} WHERE (${col(c.source)}, ${col(c.sourceId)}, ${col(c.chain)}, ${col(c.address)})
    IN (SELECT ${source}, j.value ->> 0, j.value ->> 1, j.value ->> 2 FROM json_each(${json}) j)`;

/**
 * Stored platforms the provider's listing no longer names: their contracts (found through their chain)
 * and their rows go, in one transaction with `fence`. Returns how many went and the ids whose contracts
 * went: what unification weighs again.
 */
export async function removeUnlisted(
  db: Db,
  source: string,
  stored: Map<string, StoredPlatform>,
  listed: { platform: string }[],
  fence: Statement[],
) {
  const names = new Set(listed.map((x) => x.platform));
  const gone = [...stored].filter(([platform]) => !names.has(platform));
  return { removed: gone.length, ids: await removePlatforms(db, source, gone, fence) };
}

export async function removePlatforms(db: Db, source: string, gone: [platform: string, stored: StoredPlatform][], fence: Statement[]) {
  if (!gone.length) return [];
  const results = await runBatch<{ source_id: string }>(db, [
    ...fence,
    ...gone.flatMap(([platform, stored]) => [
      // The ids whose contracts go, recorded to be decided again before they go.
      addRedecisionsStatement(
        source,
        sql`(SELECT json_group_array(DISTINCT ${col(c.sourceId)}) FROM ${c} INDEXED BY contracts_address_idx
          WHERE ${c.chain} = ${stored.chain} AND ${c.source} = ${source} AND ${c.platform} = ${platform})`,
      ),
      sql`DELETE FROM ${c} INDEXED BY contracts_address_idx WHERE ${c.chain} = ${stored.chain} AND ${c.source} = ${source} AND ${c.platform} = ${platform}
        RETURNING ${col(c.sourceId)} AS source_id`,
      sql`DELETE FROM ${p} WHERE ${p.source} = ${source} AND ${p.platform} = ${platform}`,
    ]),
  ]);
  return [...new Set(results.flatMap((r) => r.results.map((row) => row.source_id)))].sort();
}

/** Platforms a provider lists, entered with no digest (their contracts still to fetch); known ones are left as they are. */
export const listPlatformsStatement = (source: string, platforms: { platform: string; chain: string }[], at: string) => sql`
  INSERT INTO ${p} (${col(p.source)}, ${col(p.platform)}, ${col(p.chain)}, ${col(p.digest)}, ${col(p.contracts)}, ${col(p.updatedAt)})
  SELECT ${source}, j.value ->> 0, j.value ->> 1, NULL, 0, ${at} FROM json_each(${JSON.stringify(platforms.map((x) => [x.platform, x.chain]))}) j WHERE true
  ON CONFLICT DO NOTHING`;

/** The next `limit` platforms of a provider after `after`, in id order: the work list of a per-platform refresh. */
export async function platformsAfter(db: Db, source: string, after: string | undefined, limit: number) {
  return db
    .select({ platform: p.platform, chain: p.chain, digest: p.digest })
    .from(p)
    .where(and(eq(p.source, source), after === undefined ? undefined : sql`${p.platform} > ${after}`))
    .orderBy(p.platform)
    .limit(limit);
}

/** An active contract of one id, as activeContractsQuery reads it. */
export type ActiveContractRow = { source: string; source_id: string; chain: string; address: string };

/**
 * The active contracts listed for these (source, source_id)s, each id's found by primary-key prefix:
 * a read per listed contract, whatever the table's size. What contract evidence weighs.
 */
export function activeContractsQuery(ids: { source: string; sourceId: string }[]) {
  // Each distinct id once, as a JSON array of [source, source_id].
  const keys = `[${[...new Set(ids.map((i) => JSON.stringify([i.source, i.sourceId])))].join(",")}]`;
  return sql`
    SELECT s.${col(c.source)} AS source, s.${col(c.sourceId)} AS source_id, s.${col(c.chain)} AS chain, s.${col(c.address)} AS address
    FROM json_each(${keys}) j CROSS JOIN ${c} s ON s.${col(c.source)} = j.value ->> 0 AND s.${col(c.sourceId)} = j.value ->> 1
    WHERE s.${col(c.active)} = 1 ORDER BY 1, 2, 3, 4`;
}
