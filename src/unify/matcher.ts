import type { Evidence, Identity, MatchRule } from "./evidence";
import { type Grouping, groupRecords, recordKey } from "./grouping";

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

export const matchKey = recordKey;

/**
 * Decides the asset of every record in `records` together with the mappings already known that
 * could match (their neighbourhood): all of them are grouped again on all the evidence, so a weak
 * mapping gives way when a later record brings stronger evidence, and the grouping does not
 * depend on the order records arrived in. Known mappings whose group changed are moves.
 */
export function decide(records: Identity[], known: KnownMapping[], pinned: Map<string, string>): Outcome {
  const knownByKey = new Map(known.map((m) => [recordKey(m), m]));
  const fresh = new Map<string, Identity>();
  for (const r of records) if (!knownByKey.has(recordKey(r)) && !fresh.has(recordKey(r))) fresh.set(recordKey(r), r);
  const grouping = groupRecords([
    ...known.map((m) => ({ r: m, pinned: pinned.get(recordKey(m)) ?? (m.pinned ? m.assetUid : undefined) })),
    ...[...fresh].map(([key, r]) => ({ r, pinned: pinned.get(key) })),
  ]);
  const uids = assignUids(grouping, knownByKey, pinned);
  return outcomeOf(records, grouping, uids, knownByKey, pinned);
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
    if (!f || (m.createdAt ?? "") < (f.createdAt ?? "") || ((m.createdAt ?? "") === (f.createdAt ?? "") && key < recordKey(f)))
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
  // New assets are numbered in group order; each is named after its best-ranked record.
  const freshOf = new Map<number, number>();
  const namers: Identity[] = [];
  const placementOf = (group: number): Placement => {
    const uid = uids[group];
    if (uid) return { assetUid: uid };
    let n = freshOf.get(group);
    if (n === undefined) {
      n = namers.length;
      freshOf.set(group, n);
      namers.push(namer(grouping.groups[group].map((k) => identityOf(k))));
    }
    return { fresh: n };
  };
  const inputs = new Map<string, Identity>();
  for (const r of records) if (!inputs.has(recordKey(r))) inputs.set(recordKey(r), r);
  const identityOf = (k: string) => (known.get(k) ?? inputs.get(k))!;
  const uidOf = (group: number) => {
    const p = placementOf(group);
    return "assetUid" in p ? p.assetUid : null;
  };
  const why = (key: string) => {
    const e = grouping.joinedBy.get(key);
    if (!e) return { rule: "new_asset" as const };
    return { rule: e.evidence.rule, evidence: e.evidence, with: e.a === key ? e.b : e.a };
  };
  const ambiguity = (key: string) => {
    const others = grouping.ambiguous.get(key);
    if (!others) return {};
    const own = grouping.groupOf.get(key);
    const alternatives = [...new Set(others.map((o) => grouping.groupOf.get(o)!).filter((g) => g !== own))]
      .map((g) => uidOf(g))
      .filter((u): u is string => u !== null)
      .sort();
    return alternatives.length ? { ambiguous: alternatives } : {};
  };

  const decisions = new Map<string, Decision>();
  for (const [key] of inputs) {
    const group = grouping.groupOf.get(key)!;
    const place = placementOf(group);
    const at = "assetUid" in place ? { assetUid: place.assetUid } : { assetUid: null, fresh: place.fresh };
    const pin = pinned.get(key);
    const m = known.get(key);
    if (pin) decisions.set(key, { assetUid: pin, rule: "pinned" });
    else if (m && at.assetUid === m.assetUid) decisions.set(key, { assetUid: m.assetUid, rule: "known" });
    else decisions.set(key, { ...at, ...why(key), ...ambiguity(key) });
  }

  const moves: Move[] = [];
  const wentTo = new Map<string, Map<string, { place: Placement; n: number }>>();
  for (const [key, m] of known) {
    const group = grouping.groupOf.get(key)!;
    const place = placementOf(group);
    if ("assetUid" in place && place.assetUid === m.assetUid) continue;
    const { rule, evidence, with: other } = why(key);
    moves.push({ source: m.source, sourceId: m.sourceId, from: m.assetUid, to: place, rule, evidence, with: other });
    const label = "assetUid" in place ? place.assetUid : `#${place.fresh}`;
    const to = wentTo.get(m.assetUid) ?? new Map();
    to.set(label, { place, n: (to.get(label)?.n ?? 0) + 1 });
    wentTo.set(m.assetUid, to);
  }
  const kept = new Set(uids.filter((u): u is string => u !== null));
  const retired = [...wentTo]
    .filter(([uid]) => !kept.has(uid))
    .sort(([a], [b]) => cmp(a, b))
    .map(([uid, to]) => ({ uid, into: [...to.entries()].sort(([a, p], [b, q]) => q.n - p.n || cmp(a, b))[0][1].place }));
  return { decisions, moves, fresh: namers, retired };
}

/** The record a new asset is named after: the best-ranked API record, else the first by key. */
function namer(members: Identity[]) {
  return [...members].sort((a, b) => (a.rank ?? 1e12) - (b.rank ?? 1e12) || cmp(recordKey(a), recordKey(b)))[0];
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
