import { sql } from "drizzle-orm";
import type { Db } from "../db/client";

const key = (source: string) => `map:${source}`;

/**
 * The hot-path copy of the unification map: one KV value per source, { source_id: asset_uid },
 * read once per message. D1's asset_mappings is the record; a KV miss falls back to it, and
 * pinned mappings are always read from D1, so a stale copy can only be incomplete, never wrong.
 */
export async function readMapCache(kv: KVNamespace, source: string): Promise<Map<string, string>> {
  try {
    const stored = await kv.get<Record<string, string>>(key(source), { type: "json", cacheTtl: 60 });
    return new Map(Object.entries(stored ?? {}));
  } catch {
    return new Map();
  }
}

export async function publishMapCache(db: Db, kv: KVNamespace, source: string) {
  const rows = await db.all<{ source_id: string; asset_uid: string }>(sql`
    SELECT m.source_id, COALESCE(a.asset_uid, m.asset_uid) AS asset_uid
    FROM asset_mappings m LEFT JOIN asset_aliases a ON a.alias_uid = m.asset_uid
    WHERE m.source = ${source} AND m.pinned = 0`);
  await kv.put(key(source), JSON.stringify(Object.fromEntries(rows.map((r) => [r.source_id, r.asset_uid]))));
  return rows.length;
}
