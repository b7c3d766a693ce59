import { sql } from "drizzle-orm";
import { runBatch } from "../db/batch";
import type { Db } from "../db/client";
import { now } from "../lib/clock";
import { nextSlotOf, nextSlotQuery } from "./slots";

const key = (source: string) => `map:${source}`;

/** The newest move's id (a rowid: the last index entry, one row read). */
const lastMoveQuery = sql`SELECT id AS last FROM mapping_moves ORDER BY id DESC LIMIT 1`;

/** Parsed copies kept in the isolate for this long: well inside KV's own ~60 s staleness, and a CSV file's blocks parse it once. */
const MEMO_MS = 30_000;
export type MappedId = { assetUid: string; slot: number };
/** `last_move`: the last mapping_moves id the copy reflects; moves after it are read from D1 on top of it. */
type Published = { next_slot: number; last_move: number; ids: Record<string, [string, number]> };
export type MapCopy = { at: number; map: Map<string, MappedId>; nextSlot: number; lastMove: number };
const memo = new Map<string, MapCopy>();
/** Drops the isolate's parsed copies: for when the map they copy is wiped (a test's fresh database). */
export const forgetMapCopies = () => memo.clear();

/**
 * The hot-path copy of the unification map: one KV value per source, { next_slot, last_move, ids: { source_id: [asset_uid, slot] } }.
 * D1's asset_mappings is the record; a KV miss falls back to it, and pinned mappings and the moves
 * made since the copy are always read from D1, so a stale copy can only be incomplete, never wrong.
 */
export async function readMapCache(kv: KVNamespace, source: string): Promise<MapCopy> {
  const hit = memo.get(source);
  if (hit && now() - hit.at < MEMO_MS) return hit;
  let map = new Map<string, MappedId>();
  let nextSlot = -1;
  let lastMove = 0;
  try {
    const stored = await kv.get<Published>(key(source), { type: "json", cacheTtl: 60 });
    // A copy in another layout (an earlier build's) is no copy: every id is looked up in D1.
    if (stored && typeof stored.next_slot === "number" && typeof stored.last_move === "number" && stored.ids) {
      map = new Map(Object.entries(stored.ids).map(([id, [assetUid, slot]]) => [id, { assetUid, slot }]));
      nextSlot = stored.next_slot;
      lastMove = stored.last_move;
    }
  } catch {
    // A KV outage only means every id is looked up in D1.
  }
  const entry = { at: now(), map, nextSlot, lastMove };
  memo.set(source, entry);
  return entry;
}

/** Above this many ids the copy is not published (KV values stop at 25 MiB); D1 answers instead. */
const MAX_PUBLISHED = 100_000;

/** Publishes the map when ids were mapped or moved since the copy in KV was made (slots and move ids only grow). */
export async function publishMapCache(db: Db, kv: KVNamespace, source: string) {
  const [slots, moves] = await runBatch<{ next: number; last: number }>(db, [nextSlotQuery(source), lastMoveQuery]);
  const next = nextSlotOf(slots.results);
  const lastMove = moves.results[0]?.last ?? 0;
  const copy = await readMapCache(kv, source);
  if (next === copy.nextSlot && lastMove === copy.lastMove) return null;
  const rows = await db.all<{ source_id: string; asset_uid: string; slot: number }>(sql`
    SELECT m.source_id, COALESCE(a.asset_uid, m.asset_uid) AS asset_uid, m.slot
    FROM asset_mappings m LEFT JOIN asset_aliases a ON a.alias_uid = m.asset_uid
    WHERE m.source = ${source} AND m.pinned = 0
    LIMIT ${MAX_PUBLISHED + 1}`);
  if (rows.length > MAX_PUBLISHED) {
    await kv.delete(key(source));
    return 0;
  }
  const published: Published = {
    next_slot: next,
    last_move: lastMove,
    ids: Object.fromEntries(rows.map((r) => [r.source_id, [r.asset_uid, r.slot]])),
  };
  await kv.put(key(source), JSON.stringify(published));
  memo.delete(source);
  return rows.length;
}
