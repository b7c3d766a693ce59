import { compare, type Evidence, type Identity, keysOf, pairVeto, plainKeyOf, RULES } from "./evidence";

/** A record to group; `pinned` fixes it to that asset uid (an admin's pin), which only records of that pin's group share. */
export type GroupNode = { r: Identity; pinned?: string };
export type Edge = { a: string; b: string; evidence: Evidence };
export type Grouping = {
  /** Record keys, grouped: each group is one asset. */
  groups: string[][];
  groupOf: Map<string, number>;
  /** The strongest accepted pair of each record that joined another: why it is where it is. */
  joinedBy: Map<string, Edge>;
  /** Records left apart from others they resemble because the choice was not clear: the keys they resemble. */
  ambiguous: Map<string, string[]>;
};

/** One key per (source, source_id), the matcher's record identity. */
export const matchKey = (r: { source: string; sourceId: string }) => `${r.source}\u0000${r.sourceId}`;

export const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Best rank first (unranked last), then by key: the order records take slots and name new assets in. */
export const byRank = (a: Identity, b: Identity) => (a.rank ?? 1e12) - (b.rank ?? 1e12) || cmp(matchKey(a), matchKey(b));

/** Under a weak rule, a rival pair within this much of the best one's score makes the choice a guess. */
const WEAK_MARGIN = 1;

/** Two records can be compared: different sources, or two CSV ids (a CSV file may list one coin twice). */
const comparable = (r: Identity, m: Identity) => m !== r && (m.source !== r.source || r.source === "csv");

/**
 * Records by the keys they are found by (`own`) and find others by (`lookup`): two records are a
 * candidate pair when either one's lookup keys meet the other's own keys.
 */
export class KeyIndex {
  private readonly own = new Map<string, Identity[]>();
  private readonly lookup = new Map<string, Identity[]>();

  add(r: Identity) {
    const k = keysOf(r);
    for (const key of k.own) push(this.own, key, r);
    for (const key of k.lookup) push(this.lookup, key, r);
  }

  /** Calls `fn` with each record `r` is a candidate pair with (some maybe more than once). */
  eachPair(r: Identity, fn: (m: Identity) => void) {
    this.somePair(r, (m) => {
      fn(m);
      return false;
    });
  }

  /** Whether `r` is a candidate pair with a record `test` accepts (each may be tested more than once). */
  somePair(r: Identity, test: (m: Identity) => boolean) {
    const k = keysOf(r);
    for (const key of k.lookup) for (const m of this.own.get(key) ?? NONE) if (comparable(r, m) && test(m)) return true;
    for (const key of k.own) for (const m of this.lookup.get(key) ?? NONE) if (comparable(r, m) && test(m)) return true;
    return false;
  }
}

const NONE: Identity[] = [];

function push<K, V>(map: Map<K, V[]>, key: K, value: V) {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/**
 * Groups records into assets on all the evidence at once: every scored pair is tried, highest
 * score first, and joins its two groups when they can be one asset (at most one id per API source,
 * one pin, no figures that veto) and no rival pair is as good. The result depends only on the set
 * of records, never on the order they arrived in.
 */
export function groupRecords(nodes: GroupNode[]): Grouping {
  const byKey = new Map<string, GroupNode>();
  for (const n of nodes) if (!byKey.has(matchKey(n.r))) byKey.set(matchKey(n.r), n);
  const edges = withoutChainRivals(byKey, scoredEdges(candidatePairs([...byKey.values()])));
  return joinGroups(byKey, edges);
}

/**
 * Drops each chain-named pair ("X (BSC)" / "X", rule `chain_named`) that has a rival: another id of
 * either source going by the same plain name. The suffixed id is then a copy listed beside its
 * origin, not the coin, however well the figures agree.
 */
function withoutChainRivals(byKey: Map<string, GroupNode>, edges: Edge[]): Edge[] {
  if (!edges.some((e) => e.evidence.rule === "chain_named")) return edges;
  const byPlain = new Map<string, Identity[]>();
  for (const { r } of byKey.values()) push(byPlain, `${r.source}\u0000${plainKeyOf(r)}`, r);
  const named = (key: string, plain: string) => {
    const r = byKey.get(key)!.r;
    return (byPlain.get(`${r.source}\u0000${plain}`) ?? NONE).length > 1;
  };
  return edges.filter((e) => {
    if (e.evidence.rule !== "chain_named") return true;
    const plain = plainKeyOf(byKey.get(e.a)!.r);
    return !named(e.a, plain) && !named(e.b, plain);
  });
}

/**
 * Records compared with each other: different sources (or two CSV ids) sharing a symbol, name or id
 * key; each pair once, by key order. A ticker's crowd meets itself through every key it shares, so
 * pairs are told apart by the positions of their records, not by strings built for each meeting.
 */
export function candidatePairs(nodes: GroupNode[]): [Identity, Identity][] {
  const index = new Map<string, number[]>();
  nodes.forEach(({ r }, i) => {
    for (const k of keysOf(r).own) push(index, k, i);
  });
  const keys = nodes.map(({ r }) => matchKey(r));
  const n = nodes.length;
  const seen = new Set<number>();
  const pairs: [Identity, Identity][] = [];
  nodes.forEach(({ r }, i) => {
    for (const k of keysOf(r).lookup) {
      for (const j of index.get(k) ?? NO_POSITIONS) {
        const m = nodes[j].r;
        if (!comparable(r, m)) continue;
        const id = i < j ? i * n + j : j * n + i;
        if (seen.has(id)) continue;
        seen.add(id);
        pairs.push(keys[i] < keys[j] ? [r, m] : [m, r]);
      }
    }
  });
  return pairs;
}

const NO_POSITIONS: number[] = [];

/** The pairs with evidence, strongest first (ties in a fixed order of keys). */
export function scoredEdges(pairs: [Identity, Identity][]): Edge[] {
  const edges: Edge[] = [];
  for (const [x, y] of pairs) {
    const evidence = compare(x, y);
    if (evidence) edges.push({ a: matchKey(x), b: matchKey(y), evidence });
  }
  return edges.sort((p, q) => q.evidence.score - p.evidence.score || cmp(p.a, q.a) || cmp(p.b, q.b));
}

type Group = { id: number; keys: string[]; records: Identity[]; apiSources: Set<string>; pin?: string };

/** Kruskal over the scored pairs, with the one-id-per-API-source and pin constraints, and no guessing between rivals. */
export function joinGroups(byKey: Map<string, GroupNode>, edges: Edge[]): Grouping {
  const groupOf = startingGroups(byKey);
  const edgesOf = new Map<string, Edge[]>();
  for (const e of edges) for (const k of [e.a, e.b]) push(edgesOf, k, e);
  const joinedBy = new Map<string, Edge>();
  const ambiguous = new Map<string, Set<string>>();
  const frozen = new Set<string>();
  const decided = new Set<Edge>();
  const note = (key: string, others: string[]) => {
    const set = ambiguous.get(key) ?? new Set<string>();
    for (const o of others) set.add(o);
    ambiguous.set(key, set);
  };
  /** Pairs at `key` about as good as `e` that would put its record in a third group instead: joining on `e` would be a guess. */
  const rivalsOf = (e: Edge, key: string, own: Group, other: Group) => {
    const margin = RULES[e.evidence.rule].weak ? WEAK_MARGIN : 0;
    return (edgesOf.get(key) ?? []).filter((r) => {
      if (r === e || (decided.has(r) && r.evidence.score > e.evidence.score)) return false;
      if (r.evidence.score < e.evidence.score - margin) return false;
      const C = groupOf.get(r.a === key ? r.b : r.a)!;
      return C !== own && C !== other && compatible(own, C) && !compatible(other, C);
    });
  };

  for (const e of edges) {
    decided.add(e);
    if (frozen.has(e.a) || frozen.has(e.b)) continue;
    const A = groupOf.get(e.a)!;
    const B = groupOf.get(e.b)!;
    if (A === B) continue;
    if (!compatible(A, B)) {
      // The asset already holds an id of this source: a look-alike worth reporting if nothing else takes it.
      note(e.a, [e.b]);
      note(e.b, [e.a]);
      continue;
    }
    const rivals = [...rivalsOf(e, e.a, A, B).map((r) => [e.a, r] as const), ...rivalsOf(e, e.b, B, A).map((r) => [e.b, r] as const)];
    if (rivals.length) {
      // Two candidates about as good for one place: neither is guessed.
      for (const [key, r] of rivals) {
        frozen.add(key);
        note(key, [e.a === key ? e.b : e.a, r.a === key ? r.b : r.a]);
      }
      continue;
    }
    for (const k of [e.a, e.b]) if (!joinedBy.has(k)) joinedBy.set(k, e);
    for (const k of B.keys) groupOf.set(k, A);
    A.keys.push(...B.keys);
    A.records.push(...B.records);
    for (const s of B.apiSources) A.apiSources.add(s);
    A.pin ??= B.pin;
  }
  return groupingOf(groupOf, joinedBy, ambiguous, frozen);
}

/** One group per record, except records pinned to one uid, which start as one group. */
function startingGroups(byKey: Map<string, GroupNode>) {
  const groupOf = new Map<string, Group>();
  const pins = new Map<string, Group>();
  let nextId = 0;
  for (const [key, n] of byKey) {
    let g = n.pinned ? pins.get(n.pinned) : undefined;
    if (!g) {
      g = { id: nextId++, keys: [], records: [], apiSources: new Set(), pin: n.pinned };
      if (n.pinned) pins.set(n.pinned, g);
    }
    g.keys.push(key);
    g.records.push(n.r);
    if (n.r.source !== "csv") g.apiSources.add(n.r.source);
    groupOf.set(key, g);
  }
  return groupOf;
}

function groupingOf(groupOf: Map<string, Group>, joinedBy: Map<string, Edge>, ambiguous: Map<string, Set<string>>, frozen: Set<string>) {
  const groups = [...new Set(groupOf.values())].sort((p, q) => p.id - q.id);
  const index = new Map(groups.map((g, i) => [g, i]));
  const out: Grouping = {
    groups: groups.map((g) => [...g.keys].sort()),
    groupOf: new Map([...groupOf].map(([k, g]) => [k, index.get(g)!])),
    joinedBy,
    ambiguous: new Map(),
  };
  // Look-alikes are reported only for records the evidence did not place.
  for (const [key, others] of ambiguous) {
    if (frozen.has(key) || !joinedBy.has(key)) out.ambiguous.set(key, [...others].sort());
  }
  return out;
}

/** Two groups can be one asset: no API source twice, at most one pin, and no pair of members whose contracts or figures veto. */
function compatible(A: Group, B: Group) {
  if (A === B) return false;
  for (const s of B.apiSources) if (A.apiSources.has(s)) return false;
  if (A.pin && B.pin && A.pin !== B.pin) return false;
  for (const x of A.records) for (const y of B.records) if (x.source !== y.source && pairVeto(x, y)) return false;
  return true;
}
