import { sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { now } from "../lib/clock";

const key = (source: string) => `map:${source}`;

/** Parsed copies kept in the isolate for this long: well inside KV's own ~60 s staleness, and a CSV file's blocks parse it once. */
const MEMO_MS = 30_000;
export type MappedId = { assetUid: string; slot: number };
const memo = new Map<string, { at: number; map: Map<string, MappedId> }>();

/**
 * The hot-path copy of the unification map: one KV value per source, { source_id: [asset_uid, slot] }.
 * D1's asset_mappings is the record; a KV miss falls back to it, and pinned mappings are always
 * read from D1, so a stale copy can only be incomplete, never wrong.
 */
export async function readMapCache(kv: KVNamespace, source: string): Promise<Map<string, MappedId>> {
  const hit = memo.get(source);
  if (hit && now() - hit.at < MEMO_MS) return hit.map;
  let map = new Map<string, MappedId>();
  try {
    const stored = await kv.get<Record<string, [string, number]>>(key(source), { type: "json", cacheTtl: 60 });
    map = new Map(Object.entries(stored ?? {}).map(([id, [assetUid, slot]]) => [id, { assetUid, slot }]));
  } catch {
    // A KV outage only means every id is looked up in D1.
  }
  memo.set(source, { at: now(), map });
  return map;
}

/** Above this many ids the copy is not published (KV values stop at 25 MiB); D1 answers instead. */
const MAX_PUBLISHED = 100_000;

export async function publishMapCache(db: Db, kv: KVNamespace, source: string) {
  const rows = await db.all<{ source_id: string; asset_uid: string; slot: number }>(sql`
    SELECT m.source_id, COALESCE(a.asset_uid, m.asset_uid) AS asset_uid, m.slot
    FROM asset_mappings m LEFT JOIN asset_aliases a ON a.alias_uid = m.asset_uid
    WHERE m.source = ${source} AND m.pinned = 0
    LIMIT ${MAX_PUBLISHED + 1}`);
  if (rows.length > MAX_PUBLISHED) {
    await kv.delete(key(source));
    return 0;
  }
  await kv.put(key(source), JSON.stringify(Object.fromEntries(rows.map((r) => [r.source_id, [r.asset_uid, r.slot]]))));
  memo.delete(source);
  return rows.length;
}
