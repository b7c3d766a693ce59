import { sql } from "drizzle-orm";
import { runBatch, type Statement } from "../db/batch";
import { col, type Db } from "../db/client";
import { type HeldLease, inLease } from "../db/lease";
import { storedQuotesOf, takeQuotesToMove } from "../db/quote-store";
import { ambiguousMatches, assetAliases, assetMappings, assets, mappingMoves } from "../db/schema";
import { nowIso } from "../lib/clock";
import type { SourceQuote } from "../sources/source-quote";
import { type Identity, keysOf } from "./evidence";
import { byRank } from "./grouping";
import { slugify } from "./keys";
import { readMapCache } from "./map-cache";
import { type Decision, decide, type KnownMapping, matchKey, type Placement } from "./matcher";
import { nextSlotOf, nextSlotQuery } from "./slots";

type MappingRow = {
  source: string;
  source_id: string;
  asset_uid: string;
  name: string;
  symbol_key: string;
  slot: number;
  pinned: number;
  created_at: string;
};

export type Resolved = { assetUid: string; rule: string; slot: number };
export type Resolution = Map<string, Resolved>;

/**
 * Finds the asset of every quote. Known ids come from the KV map (hot path) or D1; new ids are
 * matched under the D1 "unify" lease, so concurrent consumers cannot both create the same coin.
 * Pinned mappings are read from D1 every time: they win over everything, including a stale KV map.
 */
export async function resolveAssets(db: Db, kv: KVNamespace, source: string, quotes: SourceQuote[]): Promise<Resolution> {
  const out: Resolution = new Map();
  const copy = await readMapCache(kv, source);
  const cache = copy.map;
  // A copied uid may have been merged away since the copy: quotes go where its alias points, and an
  // id moved since the copy goes where the move took it. Mappings in D1 never point at an alias.
  const copied = JSON.stringify([...new Set(quotes.flatMap((q) => cache.get(q.sourceId)?.assetUid ?? []))]);
  const [pinnedRes, movedRes, aliasRes] = await runBatch(db, [
    pinnedMappings(source),
    movesSinceQuery(copy.lastMove, source),
    copiedAliasesQuery(copied),
  ]);
  const pinned = new Map((pinnedRes.results as PinnedRow[]).map((r) => [r.source_id, { assetUid: r.asset_uid, slot: r.slot }]));
  const movedTo = new Map((movedRes.results as { source_id: string; to_uid: string }[]).map((m) => [m.source_id, m.to_uid]));
  const alias = new Map((aliasRes.results as { alias_uid: string; asset_uid: string }[]).map((a) => [a.alias_uid, a.asset_uid]));
  const current = (uid: string) => alias.get(uid) ?? uid;
  const unknown: SourceQuote[] = [];
  for (const q of quotes) {
    const pin = pinned.get(q.sourceId);
    const hit = cache.get(q.sourceId);
    if (pin) out.set(matchKey(q), { ...pin, rule: "pinned" });
    else if (hit) out.set(matchKey(q), { assetUid: current(movedTo.get(q.sourceId) ?? hit.assetUid), slot: hit.slot, rule: "known" });
    else unknown.push(q);
  }
  // Ids missing from the KV copy are looked up in D1 inside the lease (matchAndCreate), once.
  if (!unknown.length) return out;
  const { resolution, moved } = await matchAndCreate(db, source, unknown);
  for (const [k, v] of resolution) out.set(k, v);
  // Ids of this batch that the new ones just moved go to their new asset.
  for (const m of moved) {
    const r = out.get(matchKey(m));
    if (r) out.set(matchKey(m), { ...r, assetUid: m.assetUid });
  }
  return out;
}

type PinnedRow = { source_id: string; asset_uid: string; slot: number };

/** Aliases among the copy's uids, each found by key. */
export const copiedAliasesQuery = (copiedUids: string) =>
  sql`SELECT ${col(assetAliases.aliasUid)}, ${col(assetAliases.assetUid)} FROM ${assetAliases}
    WHERE ${assetAliases.aliasUid} IN (SELECT value FROM json_each(${copiedUids}))`;

/** Ids moved since the copy (by rowid), with the alias their new uid may have become since. */
export const movesSinceQuery = (lastMove: number, source: string) => {
  const v = mappingMoves;
  const a = assetAliases;
  return sql`
    SELECT v.${col(v.sourceId)}, COALESCE(a.${col(a.assetUid)}, v.${col(v.toUid)}) AS to_uid
    FROM ${v} v LEFT JOIN ${a} a ON a.${col(a.aliasUid)} = v.${col(v.toUid)}
    WHERE v.${col(v.id)} > ${lastMove} AND v.${col(v.source)} = ${source} ORDER BY v.${col(v.id)}`;
};

/** Pins of one source: few, and read on every unification (through a partial index). */
export const pinnedMappings = (source: string) =>
  sql`SELECT source_id, asset_uid, slot FROM asset_mappings INDEXED BY mappings_pinned_idx WHERE source = ${source} AND pinned = 1`;

/** The unify lease: one writer of mappings (and so of slots and new uids) at a time, across every source. */
const UNIFY_LEASE = { ttlMs: 60_000, waitMs: 45_000 };

/** A critical section under the unify lease (see inLease): the lease is taken with `reads` and released with the writes. */
export const inUnifyLease = <T>(
  db: Db,
  reads: Statement[],
  work: (readResults: D1Result[]) => Promise<{ writes: Statement[]; value: T; also?: HeldLease[] }>,
) => inLease(db, "unify", UNIFY_LEASE, reads, work);

/**
 * Under the unify lease, taken in the same round trip as the reads (what is mapped, what could
 * match, which uids are taken, the next slot) and released with the writes: decide, then write.
 * Known mappings the decision moves get their stored quotes rewritten in the same transaction,
 * under their sources' quotes leases too.
 */
async function matchAndCreate(db: Db, source: string, quotes: SourceQuote[]) {
  // First choices only: the others are looked up later for the few new assets whose first is taken.
  const firstChoices = quotes.map((q) => uidCandidates(q)[0]);
  const reads = [
    sql`SELECT ${col(assetMappings.sourceId)}, ${col(assetMappings.assetUid)}, ${col(assetMappings.slot)} FROM ${assetMappings}
      WHERE ${assetMappings.source} = ${source}
        AND ${assetMappings.sourceId} IN (SELECT value FROM json_each(${JSON.stringify(quotes.map((q) => q.sourceId))}))`,
    candidatesQuery(quotes),
    takenUidsQuery(firstChoices),
    nextSlotQuery(source),
  ];
  const { value } = await inUnifyLease(db, reads, (results) => decideAndWrite(db, source, quotes, new Set(firstChoices), results));
  return value;
}

type Moved = { source: string; sourceId: string; slot: number; assetUid: string };

async function decideAndWrite(
  db: Db,
  source: string,
  quotes: SourceQuote[],
  checkedUids: Set<string>,
  [mappedRes, candidateRes, takenRes, nextRes]: D1Result[],
): Promise<{ writes: Statement[]; value: { resolution: Resolution; moved: Moved[] }; also?: HeldLease[] }> {
  const out: Resolution = new Map();
  // Another consumer may have mapped some of these while we waited for the lease.
  const mapped = new Map((mappedRes.results as { source_id: string; asset_uid: string; slot: number }[]).map((m) => [m.source_id, m]));
  const todo = quotes.filter((q) => {
    const m = mapped.get(q.sourceId);
    if (m) out.set(matchKey(q), { assetUid: m.asset_uid, slot: m.slot, rule: "known" });
    return !m;
  });
  if (!todo.length) return { writes: [], value: { resolution: out, moved: [] } };

  const candidates = candidateRes.results as MappingRow[];
  const outcome = decide(todo, await withEvidence(db, candidates));
  const now = nowIso();
  const freshUids = await freshUidsFor(db, outcome.fresh, checkedUids, takenRes.results as { uid: string }[]);
  const uidOf = (p: Placement) => ("assetUid" in p ? p.assetUid : freshUids[p.fresh]);

  let slot = nextSlotOf(nextRes.results as { next: number }[]);
  const mappings: NewMapping[] = [];
  const ambiguous: NewAmbiguity[] = [];
  const ordered = [...todo].sort(byRank);
  for (const q of ordered) {
    const d = outcome.decisions.get(matchKey(q)) as Decision;
    const uid = d.assetUid ?? freshUids[d.fresh!];
    const keys = keysOf(q);
    out.set(matchKey(q), { assetUid: uid, rule: d.rule, slot });
    mappings.push({
      sourceId: q.sourceId,
      assetUid: uid,
      rule: d.rule,
      symbolKey: keys.sym,
      nameKey: keys.name,
      idKey: keys.id,
      name: q.name,
      slot: slot++,
    });
    if (d.ambiguous) ambiguous.push({ sourceId: q.sourceId, assetUid: uid, candidates: JSON.stringify(d.ambiguous), reason: d.rule });
  }

  const slotOf = new Map(candidates.map((m) => [matchKey({ source: m.source, sourceId: m.source_id }), m.slot]));
  const moves: NewMove[] = outcome.moves.map((m) => ({
    source: m.source,
    sourceId: m.sourceId,
    fromUid: m.from,
    toUid: uidOf(m.to),
    rule: m.rule,
    evidence: m.evidence ? JSON.stringify({ ...m.evidence, with: m.with?.replace("\u0000", ":") }) : null,
  }));
  const moved = moves.map((m) => ({
    source: m.source,
    sourceId: m.sourceId,
    slot: slotOf.get(matchKey(m))!,
    assetUid: m.toUid,
  }));
  const retired = outcome.retired.map((r) => ({ uid: r.uid, into: uidOf(r.into) }));
  // Last: nothing may throw once the quotes leases are taken (they are released with the write batch).
  const move = moved.length ? await takeQuotesToMove(db, moved, now) : { writes: [], leases: [] };
  return {
    writes: [
      insertMappingsStatement(source, mappings, now),
      createAssetsStatement(freshUids, now),
      ...(moves.length ? [moveMappingsStatement(moves, now), recordMovesStatement(moves, now)] : []),
      ...move.writes,
      ...retired.flatMap((r) => retireStatements(r.uid, r.into, now)),
      ambiguitiesStatement(source, ambiguous, now),
    ],
    value: { resolution: out, moved },
    also: move.leases,
  };
}

/** Uids for the new assets, from their namers' names: the first free readable choice, else a random suffix. */
async function freshUidsFor(db: Db, namers: Identity[], checked: Set<string>, takenFirst: { uid: string }[]) {
  const choices = namers.map((r) => uidCandidates(r));
  const takenUids = new Set(takenFirst.map((r) => r.uid));
  // Only uids looked up in D1 may be handed out: `checked` (the batch's first choices) were, the rest are looked up now.
  const wanted = new Map<string, number>();
  for (const c of choices) wanted.set(c[0], (wanted.get(c[0]) ?? 0) + 1);
  const unsure = choices.filter((c) => !checked.has(c[0]) || takenUids.has(c[0]) || wanted.get(c[0])! > 1).flat();
  if (unsure.length) {
    for (const r of await db.all<{ uid: string }>(takenUidsQuery(unsure))) takenUids.add(r.uid);
    for (const u of unsure) checked.add(u);
  }
  const order = namers.map((r, i) => ({ r, i })).sort((a, b) => byRank(a.r, b.r));
  const out: string[] = [];
  for (const { i } of order) {
    const uid = choices[i].find((u) => checked.has(u) && !takenUids.has(u)) ?? `${choices[i][0]}-${crypto.randomUUID().slice(0, 8)}`;
    takenUids.add(uid);
    out[i] = uid;
  }
  return out;
}

type NewMapping = Pick<
  typeof assetMappings.$inferInsert,
  "sourceId" | "assetUid" | "rule" | "symbolKey" | "nameKey" | "idKey" | "name" | "slot"
>;
type NewAmbiguity = Pick<typeof ambiguousMatches.$inferInsert, "sourceId" | "assetUid" | "candidates" | "reason">;
type NewMove = Pick<typeof mappingMoves.$inferInsert, "source" | "sourceId" | "fromUid" | "toUid" | "rule" | "evidence">;

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
    ON CONFLICT (${col(m.source)}, ${col(m.sourceId)}) DO NOTHING`;
}

/** Moved mappings take their new asset and the rule that moved them; a pin never moves (the decision keeps pinned ids). */
function moveMappingsStatement(rows: NewMove[], now: string) {
  const m = assetMappings;
  return sql`
    UPDATE ${m} SET ${col(m.assetUid)} = ${field("toUid")}, ${col(m.rule)} = ${field("rule")}, ${col(m.updatedAt)} = ${now}
    FROM json_each(${JSON.stringify(rows)}) j
    WHERE ${m.source} = ${field("source")} AND ${m.sourceId} = ${field("sourceId")} AND ${m.pinned} = 0`;
}

function recordMovesStatement(rows: NewMove[], now: string) {
  const v = mappingMoves;
  return sql`
    INSERT INTO ${v} (${col(v.source)}, ${col(v.sourceId)}, ${col(v.fromUid)}, ${col(v.toUid)}, ${col(v.rule)}, ${col(v.evidence)}, ${col(v.movedAt)})
    SELECT ${field("source")}, ${field("sourceId")}, ${field("fromUid")}, ${field("toUid")}, ${field("rule")}, ${field("evidence")}, ${now}
    FROM json_each(${JSON.stringify(rows)}) j`;
}

/** An asset left with no mapping is merged into `into`: its uid (and its own aliases) answer as aliases. */
export function retireStatements(uid: string, into: string, now: string): Statement[] {
  const a = assetAliases;
  return [
    sql`INSERT OR REPLACE INTO ${a} (${col(a.aliasUid)}, ${col(a.assetUid)}, ${col(a.createdAt)}) VALUES (${uid}, ${into}, ${now})`,
    sql`UPDATE ${a} SET ${col(a.assetUid)} = ${into} WHERE ${a.assetUid} = ${uid}`,
    sql`DELETE FROM ${assets} WHERE ${assets.assetUid} = ${uid}`,
  ];
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
 * Mappings that could match: the same symbol (or its "OLD" ticker), a name or id key equal to one
 * of the record's (a provider's name is often another's id slug), a name made of the record's
 * leading words or starting with them, plus every other mapping of those assets: the whole
 * neighbourhood that grouping.ts decides again. Keys are evidence.ts's, so what is looked up here is
 * what the matcher compares.
 */
export function candidatesQuery(quotes: SourceQuote[]) {
  const lookups = { s: new Set<string>(), n: new Set<string>(), i: new Set<string>(), p: new Set<string>() };
  for (const q of quotes) {
    for (const key of keysOf(q).lookup) lookups[key[0] as keyof typeof lookups]?.add(key.slice(2));
  }
  const list = (set: Set<string>) => JSON.stringify([...set]);
  const m = assetMappings;
  return sql`
    WITH hit AS (
      SELECT ${col(m.assetUid)} FROM ${m} WHERE ${m.symbolKey} IN (SELECT value FROM json_each(${list(lookups.s)}))
      UNION SELECT ${col(m.assetUid)} FROM ${m} WHERE ${m.nameKey} IN (SELECT value FROM json_each(${list(lookups.n)}))
      UNION SELECT ${col(m.assetUid)} FROM ${m} WHERE ${m.idKey} IN (SELECT value FROM json_each(${list(lookups.i)}))
      -- CROSS JOIN keeps json_each outside, so each prefix is one range of the name index.
      UNION SELECT ${col(m.assetUid)} FROM json_each(${list(lookups.p)}) p CROSS JOIN ${m}
        WHERE ${m.nameKey} > p.value AND ${m.nameKey} < p.value || '{'
    )
    SELECT ${col(m.source)}, ${col(m.sourceId)}, ${col(m.assetUid)}, ${col(m.name)}, ${col(m.symbolKey)}, ${col(m.slot)}, ${col(m.pinned)},
      ${col(m.createdAt)}
    FROM ${m} WHERE ${m.assetUid} IN (SELECT ${col(m.assetUid)} FROM hit)`;
}

/** Candidate mappings with the price, rank and market cap of their latest stored quotes: the matcher's evidence. */
async function withEvidence(db: Db, rows: MappingRow[]): Promise<KnownMapping[]> {
  const quotes = await storedQuotesOf(
    db,
    rows.map((m) => ({ source: m.source, sourceId: m.source_id, slot: m.slot })),
  );
  const byKey = new Map(quotes.map((q) => [matchKey(q), q]));
  return rows.map((m) => {
    const q = byKey.get(matchKey({ source: m.source, sourceId: m.source_id }));
    return {
      source: m.source,
      sourceId: m.source_id,
      assetUid: m.asset_uid,
      pinned: Boolean(m.pinned),
      createdAt: m.created_at,
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
  sql`INSERT INTO ${assets} (${col(assets.assetUid)}, ${col(assets.createdAt)})
    SELECT value, ${now} FROM json_each(${JSON.stringify(uids)}) WHERE true ON CONFLICT DO NOTHING`;

/** Readable uid choices for a new asset: name slug, then qualified by symbol, then by source id. */
function uidCandidates(q: { name: string; symbol: string; sourceId: string }) {
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
    SELECT ${col(assets.assetUid)} AS uid FROM ${assets} WHERE ${assets.assetUid} IN (SELECT value FROM json_each(${list}))
    UNION SELECT ${col(assetAliases.aliasUid)} FROM ${assetAliases} WHERE ${assetAliases.aliasUid} IN (SELECT value FROM json_each(${list}))
    UNION SELECT ${col(assetMappings.assetUid)} FROM ${assetMappings} WHERE ${assetMappings.assetUid} IN (SELECT value FROM json_each(${list}))`;
}
