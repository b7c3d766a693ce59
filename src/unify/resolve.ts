import { sql } from "drizzle-orm";
import { runBatch, type Statement } from "../db/batch";
import { col, type Db } from "../db/client";
import { inLease } from "../db/lease";
import { storedQuotesOf } from "../db/quote-store";
import { ambiguousMatches, assetMappings } from "../db/schema";
import { nowIso } from "../lib/clock";
import type { SourceQuote } from "../sources/source-quote";
import { idKey, looseNameKey, nameKey, slugify, symbolKey } from "./keys";
import { readMapCache } from "./map-cache";
import { type Decision, decide, type KnownMapping, matchKey } from "./matcher";
import { nextSlotOf, nextSlotQuery } from "./slots";

type MappingRow = { source: string; source_id: string; asset_uid: string; name: string; symbol_key: string; slot: number };

export type Resolved = { assetUid: string; rule: string; slot: number };
export type Resolution = Map<string, Resolved>;

/**
 * Finds the asset of every quote. Known ids come from the KV map (hot path) or D1; new ids are
 * matched under the D1 "unify" lease, so concurrent consumers cannot both create the same coin.
 * Pinned mappings are read from D1 every time: they win over everything, including a stale KV map.
 */
export async function resolveAssets(db: Db, kv: KVNamespace, source: string, quotes: SourceQuote[]): Promise<Resolution> {
  const out: Resolution = new Map();
  const cache = await readMapCache(kv, source);
  // A copied uid may have been merged away since the copy (only a pin does that): quotes go where
  // its alias points. Mappings in D1 never point at an alias, so only the copy's uids are looked up.
  const copied = JSON.stringify([...new Set(quotes.flatMap((q) => cache.get(q.sourceId)?.assetUid ?? []))]);
  const [pinnedRes, aliasRes] = await runBatch(db, [
    pinnedMappings(source),
    sql`SELECT alias_uid, asset_uid FROM asset_aliases WHERE alias_uid IN (SELECT value FROM json_each(${copied}))`,
  ]);
  const pinned = new Map((pinnedRes.results as PinnedRow[]).map((r) => [r.source_id, { assetUid: r.asset_uid, slot: r.slot }]));
  const alias = new Map((aliasRes.results as { alias_uid: string; asset_uid: string }[]).map((a) => [a.alias_uid, a.asset_uid]));
  const unknown: SourceQuote[] = [];
  for (const q of quotes) {
    const pin = pinned.get(q.sourceId);
    const copy = cache.get(q.sourceId);
    if (pin) out.set(matchKey(q), { ...pin, rule: "pinned" });
    else if (copy) out.set(matchKey(q), { assetUid: alias.get(copy.assetUid) ?? copy.assetUid, slot: copy.slot, rule: "known" });
    else unknown.push(q);
  }
  // Ids missing from the KV copy are looked up in D1 inside the lease (matchAndCreate), once.
  if (unknown.length) for (const [k, v] of await matchAndCreate(db, source, unknown)) out.set(k, v);
  return out;
}

type PinnedRow = { source_id: string; asset_uid: string; slot: number };

/** Pins of one source: few, and read on every unification (through a partial index). */
export const pinnedMappings = (source: string) =>
  sql`SELECT source_id, asset_uid, slot FROM asset_mappings INDEXED BY mappings_pinned_idx WHERE source = ${source} AND pinned = 1`;

/** The unify lease: one writer of mappings (and so of slots and new uids) at a time, across every source. */
const UNIFY_LEASE = { ttlMs: 60_000, waitMs: 45_000 };

/**
 * Under the unify lease, taken in the same round trip as the reads (what is mapped, what could
 * match, which uids are taken, the next slot) and released with the writes: decide, then write.
 */
async function matchAndCreate(db: Db, source: string, quotes: SourceQuote[]) {
  const choices = new Map(quotes.map((q) => [q.sourceId, uidCandidates(q)]));
  const first = (q: SourceQuote) => choices.get(q.sourceId)![0];
  const reads = [
    sql`SELECT source_id, asset_uid, slot FROM asset_mappings
      WHERE source = ${source} AND source_id IN (SELECT value FROM json_each(${JSON.stringify(quotes.map((q) => q.sourceId))}))`,
    candidatesQuery(quotes),
    // First choices only: the others are looked up below for the few records whose first is taken.
    takenUidsQuery(quotes.map(first)),
    nextSlotQuery(source),
  ];
  const { value } = await inLease(db, "unify", UNIFY_LEASE, reads, (results) => decideAndWrite(db, source, quotes, choices, results));
  return value;
}

async function decideAndWrite(
  db: Db,
  source: string,
  quotes: SourceQuote[],
  choices: Map<string, string[]>,
  [mappedRes, candidateRes, takenRes, nextRes]: D1Result[],
): Promise<{ writes: Statement[]; value: Resolution }> {
  const out: Resolution = new Map();
  const first = (q: SourceQuote) => choices.get(q.sourceId)![0];
  // Another consumer may have mapped some of these while we waited for the lease.
  const mapped = new Map((mappedRes.results as { source_id: string; asset_uid: string; slot: number }[]).map((m) => [m.source_id, m]));
  const todo = quotes.filter((q) => {
    const m = mapped.get(q.sourceId);
    if (m) out.set(matchKey(q), { assetUid: m.asset_uid, slot: m.slot, rule: "known" });
    return !m;
  });
  if (!todo.length) return { writes: [], value: out };

  const decisions = decide(todo, await withEvidence(db, candidateRes.results as MappingRow[]), new Map());
  const takenUids = new Set((takenRes.results as { uid: string }[]).map((r) => r.uid));
  // New assets whose first-choice uid is taken, or wanted by another new asset of this batch.
  const fresh = todo.filter((q) => !decisions.get(matchKey(q))?.assetUid);
  const wanted = new Map<string, number>();
  for (const q of fresh) wanted.set(first(q), (wanted.get(first(q)) ?? 0) + 1);
  const contested = fresh.filter((q) => takenUids.has(first(q)) || wanted.get(first(q))! > 1);
  // Only uids looked up in D1 may be handed out; anything else gets a random suffix.
  const checked = new Set(quotes.map(first));
  if (contested.length) {
    const others = contested.flatMap((q) => choices.get(q.sourceId)!.slice(1));
    for (const r of await db.all<{ uid: string }>(takenUidsQuery(others))) takenUids.add(r.uid);
    for (const u of others) checked.add(u);
  }
  const now = nowIso();
  let slot = nextSlotOf(nextRes.results as { next: number }[]);
  const mappings: NewMapping[] = [];
  const ambiguous: NewAmbiguity[] = [];
  const created = new Set<string>();
  const ordered = [...todo].sort((a, b) => (a.rank ?? 1e12) - (b.rank ?? 1e12) || (a.sourceId < b.sourceId ? -1 : 1));
  for (const q of ordered) {
    const d = decisions.get(matchKey(q)) as Decision;
    let uid = d.assetUid;
    if (!uid) {
      const options = choices.get(q.sourceId)!;
      uid = options.find((u) => checked.has(u) && !takenUids.has(u)) ?? `${options[0]}-${crypto.randomUUID().slice(0, 8)}`;
      takenUids.add(uid);
      created.add(uid);
    }
    out.set(matchKey(q), { assetUid: uid, rule: d.rule, slot });
    mappings.push({
      sourceId: q.sourceId,
      assetUid: uid,
      rule: d.rule,
      symbolKey: symbolKey(q.symbol),
      nameKey: nameKey(q.name),
      idKey: idKey(source, q.sourceId, q.symbol),
      name: q.name,
      slot: slot++,
    });
    if (d.ambiguous) ambiguous.push({ sourceId: q.sourceId, assetUid: uid, candidates: JSON.stringify(d.ambiguous), reason: d.rule });
  }
  return {
    writes: [
      insertMappingsStatement(source, mappings, now),
      createAssetsStatement([...created], now),
      ambiguitiesStatement(source, ambiguous, now),
    ],
    value: out,
  };
}

type NewMapping = Pick<
  typeof assetMappings.$inferInsert,
  "sourceId" | "assetUid" | "rule" | "symbolKey" | "nameKey" | "idKey" | "name" | "slot"
>;
type NewAmbiguity = Pick<typeof ambiguousMatches.$inferInsert, "sourceId" | "assetUid" | "candidates" | "reason">;

/** Rows travel as one JSON parameter of objects keyed by the schema's own property names. */
const field = (name: string) => sql`j.value ->> ${name}`;

function insertMappingsStatement(source: string, rows: NewMapping[], now: string) {
  const m = assetMappings;
  return sql`
    INSERT INTO ${m} (${col(m.source)}, ${col(m.sourceId)}, ${col(m.assetUid)}, ${col(m.rule)}, ${col(m.pinned)}, ${col(m.symbolKey)},
      ${col(m.nameKey)}, ${col(m.idKey)}, ${col(m.name)}, ${col(m.slot)}, ${col(m.createdAt)}, ${col(m.updatedAt)})
    SELECT ${source}, ${field("sourceId")}, ${field("assetUid")}, ${field("rule")}, 0, ${field("symbolKey")}, ${field("nameKey")},
      ${field("idKey")}, ${field("name")}, ${field("slot")}, ${now}, ${now}
    FROM json_each(${JSON.stringify(rows)}) j WHERE true
    ON CONFLICT DO NOTHING`;
}

function ambiguitiesStatement(source: string, rows: NewAmbiguity[], now: string) {
  const a = ambiguousMatches;
  return sql`
    INSERT INTO ${a} (${col(a.source)}, ${col(a.sourceId)}, ${col(a.assetUid)}, ${col(a.candidates)}, ${col(a.reason)}, ${col(a.seenAt)})
    SELECT ${source}, ${field("sourceId")}, ${field("assetUid")}, ${field("candidates")}, ${field("reason")}, ${now}
    FROM json_each(${JSON.stringify(rows)}) j WHERE true
    ON CONFLICT DO UPDATE SET ${col(a.assetUid)} = excluded.${col(a.assetUid)}, ${col(a.candidates)} = excluded.${col(a.candidates)},
      ${col(a.reason)} = excluded.${col(a.reason)}, ${col(a.seenAt)} = excluded.${col(a.seenAt)}`;
}

/**
 * Mappings that could match: same symbol, or a name or id key equal to the record's name or id key
 * (a provider's name is often another's id slug), plus every other mapping of those assets.
 */
function candidatesQuery(quotes: SourceQuote[]) {
  const symbols = JSON.stringify([...new Set(quotes.map((q) => symbolKey(q.symbol)).filter(Boolean))]);
  const keys = JSON.stringify([
    ...new Set(quotes.flatMap((q) => [nameKey(q.name), looseNameKey(q.name), idKey(q.source, q.sourceId, q.symbol)]).filter(Boolean)),
  ]);
  return sql`
    WITH hit AS (
      SELECT asset_uid FROM asset_mappings WHERE symbol_key IN (SELECT value FROM json_each(${symbols}))
      UNION SELECT asset_uid FROM asset_mappings WHERE name_key IN (SELECT value FROM json_each(${keys}))
      UNION SELECT asset_uid FROM asset_mappings WHERE id_key IN (SELECT value FROM json_each(${keys}))
    )
    SELECT m.source, m.source_id, m.asset_uid, m.name, m.symbol_key, m.slot
    FROM asset_mappings m WHERE m.asset_uid IN (SELECT asset_uid FROM hit)`;
}

/** Candidate mappings with the price, rank and market cap of their latest stored quotes: the matcher's evidence. */
async function withEvidence(db: Db, rows: MappingRow[]): Promise<KnownMapping[]> {
  const quotes = await storedQuotesOf(
    db,
    rows.map((m) => ({ source: m.source, sourceId: m.source_id, slot: m.slot })),
  );
  const byKey = new Map(quotes.map((q) => [`${q.source}\u0000${q.sourceId}`, q]));
  return rows.map((m) => {
    const q = byKey.get(`${m.source}\u0000${m.source_id}`);
    return {
      source: m.source,
      sourceId: m.source_id,
      assetUid: m.asset_uid,
      symbol: m.symbol_key,
      name: m.name,
      priceUsd: q?.priceUsd ?? null,
      rank: q?.rank ?? null,
      marketCapUsd: q?.marketCapUsd ?? null,
    };
  });
}

/** Identity rows of new assets (their prices live in the quote buckets). */
export const createAssetsStatement = (uids: string[], now: string) =>
  sql`INSERT INTO assets (asset_uid, created_at) SELECT value, ${now} FROM json_each(${JSON.stringify(uids)}) WHERE true ON CONFLICT DO NOTHING`;

/** Readable uid choices for a new asset: name slug, then qualified by symbol, then by source id. */
function uidCandidates(q: SourceQuote) {
  const name = slugify(q.name) || slugify(q.symbol) || slugify(q.sourceId) || "asset";
  const sym = slugify(q.symbol);
  const out = [name];
  if (sym && sym !== name) out.push(`${name}-${sym}`);
  out.push(`${name}-${slugify(q.sourceId) || "x"}`.slice(0, 80));
  return out;
}

/** Uids already taken: by an asset, an alias, or a mapping. */
function takenUidsQuery(uids: string[]) {
  const list = JSON.stringify([...new Set(uids)]);
  return sql`
    SELECT asset_uid AS uid FROM assets WHERE asset_uid IN (SELECT value FROM json_each(${list}))
    UNION SELECT alias_uid FROM asset_aliases WHERE alias_uid IN (SELECT value FROM json_each(${list}))
    UNION SELECT asset_uid FROM asset_mappings WHERE asset_uid IN (SELECT value FROM json_each(${list}))`;
}
