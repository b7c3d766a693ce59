import { type SQL, sql } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { runBatch, type Statement } from "../db/batch";
import { col, type Db } from "../db/client";
import { type ActiveContractRow, activeContractsQuery } from "../db/contract-store";
import { QUOTES_PER_BUCKET } from "../db/history-codec";
import { type HeldLease, inLease } from "../db/lease";
import { takeQuotesToMove } from "../db/quote-store";
import {
  ambiguousMatches,
  assetAliases,
  assetMappings,
  assets,
  type Figures,
  mappingMoves,
  quoteBuckets,
  sourceContracts,
} from "../db/schema";
import { nowIso } from "../lib/clock";
import type { SourceQuote } from "../sources/source-quote";
import { type Contract, type Identity, keysOf, PRICE_VETO } from "./evidence";
import { byRank } from "./grouping";
import { slugify } from "./keys";
import { type MapCopy, readMapCache } from "./map-cache";
import { type Decision, decide, type KnownMapping, matchKey, type Outcome, type Placement, Reach } from "./matcher";
import { nextSlotOf, nextSlotQuery } from "./slots";

/** A mapping that could match, with the figures of its stored quote (Figures as JSON). */
type MappingRow = {
  source: string;
  source_id: string;
  asset_uid: string;
  name: string;
  symbol_key: string;
  slot: number;
  pinned: number;
  created_at: string;
  figures: string | null;
  /** Its active contracts as JSON `[[chain, address], …]`. */
  contracts: string | null;
};

export type Resolved = { assetUid: string; rule: string; slot: number };
export type Resolution = Map<string, Resolved>;

/**
 * Finds the asset of every quote. Known ids come from the KV map (hot path) or D1; new ids are
 * matched under the D1 "unify" lease, so concurrent consumers cannot both create the same coin.
 * Pinned mappings are read from D1 every time: they win over everything, including a stale KV map.
 */
export async function resolveAssets(db: Db, kv: KVNamespace, source: string, quotes: SourceQuote[]): Promise<Resolution> {
  const copy = await readMapCache(kv, source);
  const placing = placeKnown(source, quotes, copy);
  // Ids missing from the KV copy are looked up in D1 inside the lease (matchAndCreate), together with
  // what places the known ones: one round trip either way.
  const uncopied = quotes.filter((q) => !copy.map.has(q.sourceId));
  if (!uncopied.length) return placing.place(await runBatch(db, placing.reads)).out;
  return matchAndCreate(db, source, uncopied, placing);
}

/**
 * Places the ids of a batch that the KV copy or a pin knows, from `reads` (the pins, the moves since
 * the copy, the aliases among its uids): a pin wins; a copied uid may have been merged away since the
 * copy, so quotes go where its alias points, and an id moved since the copy goes where the move took
 * it. Mappings in D1 never point at an alias. The rest are `unknown`.
 */
function placeKnown(source: string, quotes: SourceQuote[], copy: MapCopy) {
  const cache = copy.map;
  const copied = JSON.stringify([...new Set(quotes.flatMap((q) => cache.get(q.sourceId)?.assetUid ?? []))]);
  const reads = [pinnedMappings(source), movesSinceQuery(copy.lastMove, source), copiedAliasesQuery(copied)];
  const place = ([pinnedRes, movedRes, aliasRes]: D1Result[]) => {
    const pinned = new Map((pinnedRes.results as PinnedRow[]).map((r) => [r.source_id, { assetUid: r.asset_uid, slot: r.slot }]));
    const movedTo = new Map((movedRes.results as { source_id: string; to_uid: string }[]).map((m) => [m.source_id, m.to_uid]));
    const alias = new Map((aliasRes.results as { alias_uid: string; asset_uid: string }[]).map((a) => [a.alias_uid, a.asset_uid]));
    const current = (uid: string) => alias.get(uid) ?? uid;
    const out: Resolution = new Map();
    const unknown: SourceQuote[] = [];
    for (const q of quotes) {
      const pin = pinned.get(q.sourceId);
      const hit = cache.get(q.sourceId);
      if (pin) out.set(matchKey(q), { ...pin, rule: "pinned" });
      else if (hit) out.set(matchKey(q), { assetUid: current(movedTo.get(q.sourceId) ?? hit.assetUid), slot: hit.slot, rule: "known" });
      else unknown.push(q);
    }
    return { out, unknown };
  };
  return { reads, place };
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
 * Under the unify lease, taken in the same round trip as the reads (what is mapped, what the batch
 * could match, which uids are taken, the next slot) and released with the writes: decide, then write.
 * Known mappings the decision moves get their stored quotes rewritten in the same transaction,
 * under their sources' quotes leases too.
 */
async function matchAndCreate(db: Db, source: string, uncopied: SourceQuote[], placing: ReturnType<typeof placeKnown>) {
  // Every readable choice of every record: a new asset is then named without another round trip.
  const choices = [...new Set(uncopied.flatMap((q) => uidCandidates(q)))];
  const reads = [
    ...placing.reads,
    sql`SELECT ${col(assetMappings.sourceId)}, ${col(assetMappings.assetUid)}, ${col(assetMappings.slot)} FROM ${assetMappings}
      WHERE ${assetMappings.source} = ${source}
        AND ${assetMappings.sourceId} IN (SELECT value FROM json_each(${JSON.stringify(uncopied.map((q) => q.sourceId))}))`,
    candidatesQuery(uncopied),
    takenUidsQuery(choices),
    nextSlotQuery(source),
    activeContractsQuery(uncopied),
  ];
  const known = placing.reads.length;
  const { value } = await inUnifyLease(db, reads, async (results) => {
    const { out, unknown } = placing.place(results.slice(0, known));
    const decided = await decideAndWrite(db, source, unknown, new Set(choices), results.slice(known));
    for (const [k, v] of decided.value.resolution) out.set(k, v);
    // Ids of this batch that the new ones just moved go to their new asset.
    for (const m of decided.value.moved) {
      const r = out.get(matchKey(m));
      if (r) out.set(matchKey(m), { ...r, assetUid: m.assetUid });
    }
    return { ...decided, value: out };
  });
  return value;
}

type Moved = { source: string; sourceId: string; slot: number; assetUid: string };

async function decideAndWrite(
  db: Db,
  source: string,
  quotes: SourceQuote[],
  checkedUids: Set<string>,
  [mappedRes, candidateRes, takenRes, nextRes, contractRes]: D1Result[],
): Promise<{ writes: Statement[]; value: { resolution: Resolution; moved: Moved[] }; also?: HeldLease[] }> {
  const out: Resolution = new Map();
  // Another consumer may have mapped some of these while we waited for the lease.
  const mapped = new Map((mappedRes.results as { source_id: string; asset_uid: string; slot: number }[]).map((m) => [m.source_id, m]));
  const contractsOf = contractsById(contractRes.results as ActiveContractRow[]);
  const todo: (SourceQuote & Identity)[] = [];
  for (const q of quotes) {
    const m = mapped.get(q.sourceId);
    if (m) out.set(matchKey(q), { assetUid: m.asset_uid, slot: m.slot, rule: "known" });
    else todo.push(withContracts(q, contractsOf.get(matchKey(q))));
  }
  if (!todo.length) return { writes: [], value: { resolution: out, moved: [] } };

  const { rows, known } = await neighbourhoodOf(db, todo, candidateRes.results as MappingRow[]);
  const outcome = decide(todo, known, undefined, { allReached: true });
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

  const moving = await moveStatements(db, outcome, rows, uidOf, now);
  return {
    writes: [
      insertMappingsStatement(source, mappings, now),
      createAssetsStatement(freshUids, now),
      ...moving.writes,
      ambiguitiesStatement(source, ambiguous, now),
    ],
    value: { resolution: out, moved: moving.moved },
    also: moving.leases,
  };
}

/**
 * The writes of a decision's moves: mappings take their new asset, each move is recorded with its
 * evidence, their stored quotes are rewritten (under their sources' quotes leases, taken last:
 * nothing may throw once they are held, as they are released with the write batch), emptied uids retire.
 */
async function moveStatements(
  db: Db,
  outcome: Outcome,
  rows: Map<string, MappingRow>,
  uidOf: (p: Placement) => string,
  now: string,
): Promise<{ writes: Statement[]; moved: Moved[]; leases: HeldLease[] }> {
  const slotOf = new Map([...rows].map(([key, m]) => [key, m.slot]));
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
  const move = moved.length ? await takeQuotesToMove(db, moved, now) : { writes: [], leases: [] };
  return {
    writes: [
      ...(moves.length ? [moveMappingsStatement(moves, now), recordMovesStatement(moves, now)] : []),
      ...move.writes,
      ...retired.flatMap((r) => retireStatements(r.uid, r.into, now)),
    ],
    moved,
    leases: move.leases,
  };
}

/** Ids per re-decision: a market page's worth, so one costs what a page's resolve does. */
const REDECIDE_BATCH = 250;

/**
 * Decides again the mapped ids of `source` whose contracts changed (a refresh stored them after
 * names decided): each batch under the unify lease, the way a page is resolved, with `fence` (the
 * refreshing run's lease) in its write batch. Mappings that move are recorded in mapping_moves
 * with the evidence that moved them (a shared contract names it); their quotes move in the same
 * transaction. Returns how many mappings moved.
 */
export async function redecideContracts(db: Db, source: string, sourceIds: string[], fence: Statement[] = []) {
  let total = 0;
  for (let i = 0; i < sourceIds.length; i += REDECIDE_BATCH) {
    const ids = sourceIds.slice(i, i + REDECIDE_BATCH).map((sourceId) => ({ source, sourceId }));
    const { value } = await inUnifyLease(db, [candidatesQuery([], { ids })], async ([own]) => {
      const mine = own.results as MappingRow[];
      if (!mine.length) return { writes: [], value: 0 };
      const records = mine.map(knownOf);
      const { rows, known } = await neighbourhoodOf(db, records, mine);
      const outcome = decide(records, known, undefined, { allReached: true });
      if (!outcome.moves.length) return { writes: [], value: 0 };
      const now = nowIso();
      const freshUids = await freshUidsFor(db, outcome.fresh, new Set(), []);
      const uidOf = (p: Placement) => ("assetUid" in p ? p.assetUid : freshUids[p.fresh]);
      const moving = await moveStatements(db, outcome, rows, uidOf, now);
      return {
        writes: [...fence, createAssetsStatement(freshUids, now), ...moving.writes],
        value: outcome.moves.length,
        also: moving.leases,
      };
    });
    total += value;
  }
  return total;
}

/**
 * Uids for the new assets, from their namers' names: the first free readable choice, else a random
 * suffix. Only uids looked up in D1 may be handed out: `checked` were (every choice of the batch's
 * records); a namer from outside the batch (a group split off known mappings) has its own looked up now.
 */
async function freshUidsFor(db: Db, namers: Identity[], checked: Set<string>, takenRows: { uid: string }[]) {
  const choices = namers.map((r) => uidCandidates(r));
  const taken = new Set(takenRows.map((r) => r.uid));
  const unchecked = [...new Set(choices.flat().filter((u) => !checked.has(u)))];
  if (unchecked.length) {
    for (const r of await db.all<{ uid: string }>(takenUidsQuery(unchecked))) taken.add(r.uid);
    for (const u of unchecked) checked.add(u);
  }
  const order = namers.map((r, i) => ({ r, i })).sort((a, b) => byRank(a.r, b.r));
  const out: string[] = [];
  for (const { i } of order) {
    const uid = choices[i].find((u) => !taken.has(u)) ?? `${choices[i][0]}-${crypto.randomUUID().slice(0, 8)}`;
    taken.add(uid);
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

/** New mappings; with `pin`, pinned ones that take over an existing mapping of the id (its slot stays). */
export function insertMappingsStatement(source: string, rows: NewMapping[], now: string, pin = false) {
  const m = assetMappings;
  const onConflict = pin
    ? sql`DO UPDATE SET ${col(m.assetUid)} = excluded.${col(m.assetUid)}, ${col(m.rule)} = excluded.${col(m.rule)}, ${col(m.pinned)} = 1,
        ${col(m.updatedAt)} = excluded.${col(m.updatedAt)}`
    : sql`DO NOTHING`;
  return sql`
    INSERT INTO ${m} (${col(m.source)}, ${col(m.sourceId)}, ${col(m.assetUid)}, ${col(m.rule)}, ${col(m.pinned)}, ${col(m.symbolKey)},
      ${col(m.nameKey)}, ${col(m.idKey)}, ${col(m.name)}, ${col(m.slot)}, ${col(m.createdAt)}, ${col(m.updatedAt)})
    SELECT ${source}, ${field("sourceId")}, ${field("assetUid")}, ${field("rule")}, ${pin ? 1 : 0}, ${field("symbolKey")}, ${field("nameKey")},
      ${field("idKey")}, ${field("name")}, ${field("slot")}, ${now}, ${now}
    FROM json_each(${JSON.stringify(rows)}) j WHERE true
    ON CONFLICT (${col(m.source)}, ${col(m.sourceId)}) ${onConflict}`;
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
 * The known mappings a batch could move, read ring by ring under the lease. The first ring (read
 * with the lease) is what the batch's records could pair with: mappings of the other sources sharing
 * a key with one of them, priced close enough (candidatesQuery). Each next ring is read around the
 * mappings reached since (matcher.ts Reach: through a scored pair or a shared asset): the other
 * mappings of their assets, and what could pair with them (their rivals). A ticker's crowd that
 * pairs with nothing the batch reaches is not read, so the work follows the batch, not the size of
 * the map or of a symbol's crowd.
 */
async function neighbourhoodOf(db: Db, records: Identity[], firstRing: MappingRow[]) {
  const rows = new Map<string, MappingRow>();
  // Nothing known to pair with: the batch only has itself (a first run's first source).
  if (!firstRing.length) return { rows, known: [] };
  const reach = new Reach();
  const read = (ring: MappingRow[]) => {
    const known: KnownMapping[] = [];
    for (const m of ring) {
      const key = matchKey({ source: m.source, sourceId: m.source_id });
      if (rows.has(key)) continue;
      rows.set(key, m);
      // A mapping decided again is one of the records already (redecideContracts): not decoded twice.
      const node = reach.node(key);
      if (!node || !("assetUid" in node)) known.push(knownOf(m));
    }
    reach.add(known);
  };
  reach.add(records);
  reach.from(records);
  read(firstRing);
  while (true) {
    const frontier = reach.takeNew().filter((r): r is KnownMapping => "assetUid" in r);
    if (!frontier.length) break;
    const seen = [...rows.values()].map((m) => `${m.source}:${m.source_id}`);
    read(await db.all<MappingRow>(candidatesQuery(frontier, { mates: frontier.map((m) => m.assetUid), read: seen })));
  }
  const known = [...reach.reached].filter((r) => rows.has(matchKey(r))) as KnownMapping[];
  return { rows, known };
}

/** The active contracts listed for ids, by key. */
function contractsById(rows: ActiveContractRow[]) {
  const out = new Map<string, Contract[]>();
  for (const r of rows) {
    const key = matchKey({ source: r.source, sourceId: r.source_id });
    const list = out.get(key);
    if (list) list.push({ chain: r.chain, address: r.address });
    else out.set(key, [{ chain: r.chain, address: r.address }]);
  }
  return out;
}

const withContracts = <T extends Identity>(r: T, contracts: Contract[] | undefined): T => (contracts?.length ? { ...r, contracts } : r);

function knownOf(m: MappingRow): KnownMapping {
  const [priceUsd, rank, marketCapUsd] = m.figures ? (JSON.parse(m.figures) as Figures) : [];
  const contracts = m.contracts ? (JSON.parse(m.contracts) as [string, string][]).map(([chain, address]) => ({ chain, address })) : [];
  return {
    ...(contracts.length ? { contracts } : {}),
    source: m.source,
    sourceId: m.source_id,
    assetUid: m.asset_uid,
    pinned: Boolean(m.pinned),
    createdAt: m.created_at,
    symbol: m.symbol_key,
    name: m.name,
    priceUsd: priceUsd ?? null,
    rank: rank ?? null,
    marketCapUsd: marketCapUsd ?? null,
  };
}

/**
 * Mappings of other sources (or other CSV ids) than each of `nodes` sharing a key with it: the
 * same symbol (or its "OLD" ticker), a name or id key equal to one of its (a provider's name is
 * often another's id slug), a name made of its leading words or starting with them; plus every
 * mapping of the `mates` assets, every mapping listing an active contract one of `nodes` lists, and the `ids` themselves; less the `read` ones (`{source}:{source_id}`). Keys are evidence.ts's,
 * so what is looked up here is what the matcher compares. Each row comes with its figures, and a
 * row whose price is too far from every price that looked it up (evidence.ts's price veto: no pair
 * can be made) is left in D1: a ticker's crowd of namesakes costs index reads, not rows.
 */
export function candidatesQuery(
  nodes: Identity[],
  { mates = [], read = [], ids: own = [] }: { mates?: string[]; read?: string[]; ids?: { source: string; sourceId: string }[] } = {},
) {
  type Lookup = [key: string, other: string, low: number | null, high: number | null];
  const lookups = {
    s: new Map<string, Lookup>(),
    n: new Map<string, Lookup>(),
    i: new Map<string, Lookup>(),
    p: new Map<string, Lookup>(),
  };
  for (const r of nodes) {
    // A CSV id pairs with other CSV ids too.
    const other = r.source === "csv" ? "" : r.source;
    const price = r.priceUsd != null && r.priceUsd > 0 ? r.priceUsd : null;
    for (const key of keysOf(r).lookup) {
      const kind = lookups[key[0] as keyof typeof lookups];
      if (!kind) continue;
      const id = `${key}\u0000${other}`;
      const seen = kind.get(id);
      if (!seen) kind.set(id, [key.slice(2), other, price, price]);
      // The price range of the records that look a key up; an unknown price leaves it open.
      else if (price === null || seen[2] === null) seen[2] = seen[3] = null;
      else [seen[2], seen[3]] = [Math.min(seen[2], price), Math.max(seen[3]!, price)];
    }
  }
  const list = (kind: keyof typeof lookups) => JSON.stringify([...lookups[kind].values()]);
  const m = assetMappings;
  const cols = sql`${col(m.source)}, ${col(m.sourceId)}, ${col(m.assetUid)}, ${col(m.name)}, ${col(m.symbolKey)}, ${col(m.slot)},
    ${col(m.pinned)}, ${col(m.createdAt)}`;
  const range = sql`k.value ->> 2 AS low, k.value ->> 3 AS high`;
  const byKey = (column: SQLiteColumn, kind: keyof typeof lookups) =>
    sql`SELECT ${cols}, ${range} FROM json_each(${list(kind)}) k CROSS JOIN ${m} WHERE ${column} = k.value ->> 0 AND ${m.source} <> k.value ->> 1`;
  const c = sourceContracts;
  // Ids listing a contract one of the nodes lists (found by its key, then by (chain, address)): no price range, the address decides.
  const ids = JSON.stringify(nodes.map((r) => [r.source, r.sourceId]));
  const byContract = sql`SELECT theirs.${col(c.source)}, theirs.${col(c.sourceId)} FROM json_each(${ids}) k
    CROSS JOIN ${c} mine ON mine.${col(c.source)} = k.value ->> 0 AND mine.${col(c.sourceId)} = k.value ->> 1 AND mine.${col(c.active)} = 1
    CROSS JOIN ${c} theirs ON theirs.${col(c.chain)} = mine.${col(c.chain)} AND theirs.${col(c.address)} = mine.${col(c.address)}
      AND theirs.${col(c.source)} <> mine.${col(c.source)} AND theirs.${col(c.active)} = 1`;
  // Qualified: inside the correlated subqueries below, a bare column name would name their own table's column.
  const [source, sourceId, slot] = [sql`hit.${col(m.source)}`, sql`hit.${col(m.sourceId)}`, sql`hit.${col(m.slot)}`];
  const contracts = sql`(SELECT json_group_array(json_array(s.${col(c.chain)}, s.${col(c.address)})) FROM ${c} s
    WHERE s.${col(c.source)} = found.${col(m.source)} AND s.${col(c.sourceId)} = found.${col(m.sourceId)} AND s.${col(c.active)} = 1)`;
  const apart = sql.raw(String(1 + PRICE_VETO));
  return sql`
    WITH hit AS (
      ${byKey(m.symbolKey, "s")}
      UNION ALL ${byKey(m.nameKey, "n")}
      UNION ALL ${byKey(m.idKey, "i")}
      -- CROSS JOIN keeps json_each outside, so each prefix is one range of the name index.
      UNION ALL SELECT ${cols}, ${range} FROM json_each(${list("p")}) k CROSS JOIN ${m}
        WHERE ${m.nameKey} > k.value ->> 0 AND ${m.nameKey} < (k.value ->> 0) || '{' AND ${m.source} <> k.value ->> 1
      UNION ALL SELECT ${cols}, NULL, NULL FROM ${m} WHERE ${m.assetUid} IN (SELECT value FROM json_each(${JSON.stringify([...new Set(mates)])}))
        OR (${m.source}, ${m.sourceId}) IN (${byContract})
        OR (${m.source}, ${m.sourceId}) IN (SELECT j.value ->> 0, j.value ->> 1 FROM json_each(${JSON.stringify(own.map((i) => [i.source, i.sourceId]))}) j)
    ),
    -- One row per mapping with the price range of what looked it up, in bucket order (each bucket's figures are parsed once).
    found AS MATERIALIZED (
      SELECT ${cols}, MAX(hit.low IS NULL) AS open, MIN(hit.low) AS low, MAX(hit.high) AS high, ${storedFigures(source, sourceId, slot)} AS figures
      FROM hit WHERE ${source} || ':' || ${sourceId} NOT IN (SELECT value FROM json_each(${JSON.stringify(read)}))
      GROUP BY ${source}, ${slot}
    )
    SELECT ${cols}, figures, ${contracts} AS contracts FROM found
    WHERE open OR coalesce((figures ->> 0) BETWEEN low / ${apart} AND high * ${apart}, 1)`;
}

/**
 * An id's stored figures ([price, rank, market cap] as stored, to the last digit) out of its quote
 * bucket's figures: a JSON path when the id can be quoted in one, else json_each (a row per id in the bucket).
 */
function storedFigures(source: SQL, sourceId: SQL, slot: SQL) {
  const b = quoteBuckets;
  return sql`(SELECT CASE WHEN instr(${sourceId}, '"') = 0 AND instr(${sourceId}, '\\') = 0 THEN b.${col(b.figures)} -> ('$."' || ${sourceId} || '"')
      ELSE (SELECT j.value FROM json_each(b.${col(b.figures)}) j WHERE j.key = ${sourceId}) END
    FROM ${b} b WHERE b.${col(b.source)} = ${source} AND b.${col(b.bucket)} = ${slot} / ${sql.raw(String(QUOTES_PER_BUCKET))})`;
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

/** Uids already taken: by an asset, an alias, or a mapping. The list is sent and parsed once, then each table is probed by key. */
function takenUidsQuery(uids: string[]) {
  const [a, x, m] = [assets, assetAliases, assetMappings];
  return sql`
    WITH c(uid) AS MATERIALIZED (SELECT value FROM json_each(${JSON.stringify([...new Set(uids)])}))
    SELECT a.${col(a.assetUid)} AS uid FROM c CROSS JOIN ${a} a ON a.${col(a.assetUid)} = c.uid
    UNION SELECT x.${col(x.aliasUid)} FROM c CROSS JOIN ${x} x ON x.${col(x.aliasUid)} = c.uid
    UNION SELECT m.${col(m.assetUid)} FROM c CROSS JOIN ${m} m ON m.${col(m.assetUid)} = c.uid`;
}
