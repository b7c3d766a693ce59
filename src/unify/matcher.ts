import { chainLinked, compare, type Evidence, type Identity, type MatchRule } from "./evidence";
import { byRank, cmp, type Grouping, groupRecords, KeyIndex, matchKey } from "./grouping";

export type { Identity } from "./evidence";

/**
 * A (source, source_id) already mapped to an asset, with its latest figures; `pinned` fixes it
 * there; `createdAt` orders mappings, so the asset's first one (whose name the uid usually is) is known.
 */
export type KnownMapping = Identity & { assetUid: string; pinned?: boolean; createdAt?: string };

export type Rule = "pinned" | "known" | MatchRule | "new_asset";
/** Where a record goes: an existing asset, or the `fresh`-th new one (records of one new asset share the number). */
export type Placement = { assetUid: string } | { fresh: number };
export type Decision = { assetUid: string | null; fresh?: number; rule: Rule; evidence?: Evidence; with?: string; ambiguous?: string[] };
/** A mapping decided again: it leaves `from` for `to`, on `rule` and its evidence. */
export type Move = { source: string; sourceId: string; from: string; to: Placement; rule: Rule; evidence?: Evidence; with?: string };
export type Outcome = {
  decisions: Map<string, Decision>;
  moves: Move[];
  /** New assets: the record whose name gives each its uid. */
  fresh: Identity[];
  /** Existing uids left with no mapping: each becomes an alias of the asset most of its mappings went to. */
  retired: { uid: string; into: Placement }[];
};

export { matchKey } from "./grouping";

/**
 * Decides the asset of every record in `records` together with the mappings already known that
 * could match (their neighbourhood): the known mappings the records reach are grouped again on all
 * the evidence, so a weak mapping gives way when a later record brings stronger evidence, and the
 * grouping does not depend on the order records arrived in. Known mappings whose group changed are
 * moves; the ones the records do not reach keep their asset. `pinned` pins records by key (tests
 * pin records not yet mapped; a stored pin is a known mapping with `pinned` set). `allReached` says every
 * known mapping is reached from the records (reachOf) already.
 */
export function decide(
  records: Identity[],
  known: KnownMapping[],
  pinned = new Map<string, string>(),
  { allReached = false }: { allReached?: boolean } = {},
): Outcome {
  // A neighbourhood read ring by ring from the records (resolve.ts) holds only what they reach already.
  const reached = allReached ? null : reachOf(records, known, pinned);
  const knownByKey = new Map<string, KnownMapping>();
  for (const m of known) if (!reached || reached.has(matchKey(m))) knownByKey.set(matchKey(m), m);
  const fresh = new Map<string, Identity>();
  for (const r of records) if (!knownByKey.has(matchKey(r)) && !fresh.has(matchKey(r))) fresh.set(matchKey(r), r);
  const grouping = groupRecords([
    ...[...knownByKey.values()].map((m) => ({ r: m, pinned: pinned.get(matchKey(m)) ?? (m.pinned ? m.assetUid : undefined) })),
    ...[...fresh].map(([key, r]) => ({ r, pinned: pinned.get(key) })),
  ]);
  const uids = assignUids(grouping, knownByKey, pinned);
  return outcomeOf(records, grouping, uids, knownByKey, pinned);
}

/** The keys of the records and of every known mapping they reach (see Reach). */
export function reachOf(records: Identity[], known: KnownMapping[], pinned = new Map<string, string>()): Set<string> {
  if (!known.length) return new Set(records.map(matchKey));
  const reach = new Reach(pinned);
  reach.add(known);
  reach.add(records);
  reach.from(records);
  return new Set([...reach.reached].map(matchKey));
}

/**
 * What a batch's records reach, step by step: through a scored pair (a candidate pair with
 * evidence) or a shared asset (mappings of one uid, records pinned to it). Only these can change
 * place on the records' evidence; the rest keep the grouping they got when a record last reached
 * them. So a batch costs what its own reach does, however large the map and however many mappings
 * share its tickers. Mappings can be added as they are read, a ring at a time: the walk goes on
 * from where it stopped.
 */
export class Reach {
  /** The nodes reached. A node is its key's first object: sets and maps of objects, no key string built per test. */
  readonly reached = new Set<Identity>();
  private readonly nodes = new Map<string, Identity>();
  private readonly index = new KeyIndex();
  private readonly assetOf = new Map<Identity, string>();
  private readonly members = new Map<string, Identity[]>();
  private news: Identity[] = [];

  constructor(private readonly pinned = new Map<string, string>()) {}

  /** Adds records or known mappings (a mapping's asset links it); those joined to what is reached are reached too. */
  add(nodes: Identity[]) {
    const added: Identity[] = [];
    for (const r of nodes) {
      const key = matchKey(r);
      if (this.nodes.has(key)) continue;
      this.nodes.set(key, r);
      this.index.add(r);
      added.push(r);
      const asset = this.pinned.get(key) ?? ("assetUid" in r ? (r as KnownMapping).assetUid : undefined);
      if (!asset) continue;
      this.assetOf.set(r, asset);
      const list = this.members.get(asset);
      if (list) list.push(r);
      else this.members.set(asset, [r]);
    }
    for (const r of added) if (!this.reached.has(r) && this.joinsReached(r)) this.walk([r]);
  }

  /** Walks from these nodes (already added). */
  from(nodes: Identity[]) {
    this.walk(nodes.map((r) => this.nodes.get(matchKey(r))!));
  }

  /** A node added, by key. */
  node(key: string) {
    return this.nodes.get(key);
  }

  /** The nodes reached since the last call. */
  takeNew() {
    const out = this.news;
    this.news = [];
    return out;
  }

  private walk(nodes: Identity[]) {
    const queue: Identity[] = [];
    const visit = (r: Identity) => {
      if (this.reached.has(r)) return;
      this.reached.add(r);
      this.news.push(r);
      queue.push(r);
    };
    for (const r of nodes) visit(r);
    while (queue.length) {
      const x = queue.pop()!;
      const asset = this.assetOf.get(x);
      if (asset) for (const m of this.members.get(asset)!) visit(m);
      this.index.eachPair(x, (y) => {
        if (!this.reached.has(y) && (compare(x, y) || chainLinked(x, y))) visit(y);
      });
    }
  }

  private joinsReached(r: Identity) {
    const asset = this.assetOf.get(r);
    if (asset && this.members.get(asset)!.some((m) => this.reached.has(m))) return true;
    return this.index.somePair(r, (x) => this.reached.has(x) && (compare(x, r) !== null || chainLinked(x, r)));
  }
}

/**
 * Which existing uid each group keeps: a pinned uid first, then the uid most of its known
 * mappings hold; on a tie, the group holding the uid's first mapping, then the larger group.
 * Every uid goes to one group at most.
 */
export function assignUids(grouping: Grouping, known: Map<string, KnownMapping>, pinned: Map<string, string>): (string | null)[] {
  const founder = new Map<string, KnownMapping>();
  for (const [key, m] of known) {
    const f = founder.get(m.assetUid);
    if (!f || (m.createdAt ?? "") < (f.createdAt ?? "") || ((m.createdAt ?? "") === (f.createdAt ?? "") && key < matchKey(f)))
      founder.set(m.assetUid, m);
  }
  type Claim = { group: number; uid: string; forced: boolean; count: number; founder: boolean; size: number };
  const claims: Claim[] = [];
  grouping.groups.forEach((keys, group) => {
    const counts = new Map<string, { count: number; founder: boolean }>();
    let forced: string | undefined;
    for (const k of keys) {
      const m = known.get(k);
      const pin = pinned.get(k) ?? (m?.pinned ? m.assetUid : undefined);
      if (pin) forced = pin;
      if (!m) continue;
      const c = counts.get(m.assetUid) ?? { count: 0, founder: false };
      c.count++;
      c.founder ||= founder.get(m.assetUid) === m;
      counts.set(m.assetUid, c);
    }
    if (forced) claims.push({ group, uid: forced, forced: true, count: keys.length, founder: true, size: keys.length });
    for (const [uid, c] of counts) claims.push({ group, uid, forced: false, ...c, size: keys.length });
  });
  claims.sort(
    (p, q) =>
      Number(q.forced) - Number(p.forced) ||
      q.count - p.count ||
      Number(q.founder) - Number(p.founder) ||
      q.size - p.size ||
      cmp(p.uid, q.uid) ||
      p.group - q.group,
  );
  const out: (string | null)[] = grouping.groups.map(() => null);
  const given = new Set<string>();
  for (const c of claims) {
    if (out[c.group] !== null || given.has(c.uid)) continue;
    out[c.group] = c.uid;
    given.add(c.uid);
  }
  return out;
}

function outcomeOf(
  records: Identity[],
  grouping: Grouping,
  uids: (string | null)[],
  known: Map<string, KnownMapping>,
  pinned: Map<string, string>,
): Outcome {
  const inputs = new Map<string, Identity>();
  for (const r of records) if (!inputs.has(matchKey(r))) inputs.set(matchKey(r), r);
  const { placements, fresh } = placeGroups(grouping, uids, (k) => (known.get(k) ?? inputs.get(k))!);
  const decisions = new Map<string, Decision>();
  for (const key of inputs.keys()) decisions.set(key, decisionOf(key, grouping, placements, known, pinned));
  const moves = movesOf(grouping, placements, known);
  return { decisions, moves, fresh, retired: retiredOf(moves, uids) };
}

/** Every group's place: the uid it keeps, or the next new asset, named after its best-ranked record. */
export function placeGroups(grouping: Grouping, uids: (string | null)[], identityOf: (key: string) => Identity) {
  const fresh: Identity[] = [];
  const placements = grouping.groups.map((keys, group): Placement => {
    const uid = uids[group];
    if (uid) return { assetUid: uid };
    fresh.push(namer(keys.map(identityOf)));
    return { fresh: fresh.length - 1 };
  });
  return { placements, fresh };
}

/** Why a record is in its group: the strongest pair that joined it, or nothing (an asset of its own). */
function joinedBy(grouping: Grouping, key: string): Pick<Move, "rule" | "evidence" | "with"> {
  const e = grouping.joinedBy.get(key);
  if (!e) return { rule: "new_asset" };
  return { rule: e.evidence.rule, evidence: e.evidence, with: e.a === key ? e.b : e.a };
}

/** The existing assets a record resembled but was not given to (a rival as good, or a place taken). */
function alternativesOf(grouping: Grouping, placements: Placement[], key: string) {
  const own = grouping.groupOf.get(key);
  const groups = new Set((grouping.ambiguous.get(key) ?? []).map((o) => grouping.groupOf.get(o)!).filter((g) => g !== own));
  const uids = [...groups].flatMap((g) => {
    const p = placements[g];
    return "assetUid" in p ? [p.assetUid] : [];
  });
  return uids.sort();
}

function decisionOf(
  key: string,
  grouping: Grouping,
  placements: Placement[],
  known: Map<string, KnownMapping>,
  pinned: Map<string, string>,
): Decision {
  const place = placements[grouping.groupOf.get(key)!];
  const at = "assetUid" in place ? { assetUid: place.assetUid } : { assetUid: null, fresh: place.fresh };
  const pin = pinned.get(key);
  const m = known.get(key);
  if (pin) return { assetUid: pin, rule: "pinned" };
  if (m && at.assetUid === m.assetUid) return { assetUid: m.assetUid, rule: "known" };
  const alternatives = alternativesOf(grouping, placements, key);
  return { ...at, ...joinedBy(grouping, key), ...(alternatives.length ? { ambiguous: alternatives } : {}) };
}

/** Known mappings whose group's place is not their asset. */
function movesOf(grouping: Grouping, placements: Placement[], known: Map<string, KnownMapping>): Move[] {
  const moves: Move[] = [];
  for (const [key, m] of known) {
    const to = placements[grouping.groupOf.get(key)!];
    if ("assetUid" in to && to.assetUid === m.assetUid) continue;
    moves.push({ source: m.source, sourceId: m.sourceId, from: m.assetUid, to, ...joinedBy(grouping, key) });
  }
  return moves;
}

/** Uids that no group kept (every mapping moved): each into the place most of its mappings went to. */
function retiredOf(moves: Move[], uids: (string | null)[]) {
  const kept = new Set(uids.filter((u): u is string => u !== null));
  const wentTo = new Map<string, Map<string, { place: Placement; n: number }>>();
  for (const m of moves) {
    if (kept.has(m.from)) continue;
    const label = "assetUid" in m.to ? m.to.assetUid : `#${m.to.fresh}`;
    const to = wentTo.get(m.from) ?? new Map<string, { place: Placement; n: number }>();
    to.set(label, { place: m.to, n: (to.get(label)?.n ?? 0) + 1 });
    wentTo.set(m.from, to);
  }
  return [...wentTo]
    .sort(([a], [b]) => cmp(a, b))
    .map(([uid, to]) => ({ uid, into: [...to.entries()].sort(([a, p], [b, q]) => q.n - p.n || cmp(a, b))[0][1].place }));
}

/** The record a new asset is named after: the best-ranked API record, else the first by key. */
function namer(members: Identity[]) {
  return [...members].sort(byRank)[0];
}
