import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { mulberry32 } from "../scripts/prng.mjs";
import { keysOf } from "../src/unify/evidence";
import { slugify, symbolKey } from "../src/unify/keys";
import { decide, type Identity, type KnownMapping, matchKey, type Placement } from "../src/unify/matcher";
import identities from "./fixtures/identities.json";
import classes from "./fixtures/identity-classes.json";

/**
 * Accuracy of the pure matcher over a labelled set of real coin identities, with ingestion
 * simulated batch by batch: the CSV file first (one batch), then CoinGecko in pages of 250 by
 * rank, then CoinPaprika (one batch). Each batch is decided against every mapping made so far
 * (and, as a check, against only the ones `resolve.ts` candidatesFor would load: same symbol,
 * name or id key, plus every other mapping of those assets).
 */

type Side = { id: string; name: string; symbol: string; rank?: number } | null;
type Coin = { key: string; symbol: string; price: number; coingecko: Side; coinpaprika: Side; csv: Side; class?: string };
type Source = "coingecko" | "coinpaprika" | "csv";

/** Real identities, then invented cases of the three hard classes (look-alike steals, migrated tokens, successors). */
const coins = [...(identities as Coin[]), ...(classes as Coin[])];

/** FNV-1a, mapped to [0, 1): deterministic per-string noise. */
function unit(s: string) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 2 ** 32;
}

const prng = mulberry32;

function shuffled<T>(xs: T[], seed: number) {
  const out = [...xs];
  const rnd = prng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * A per-coin circulating supply, chosen so that market cap follows the coin's rank the way real
 * markets do (about $1.8T at rank 1, $3B at rank 100, $110M at rank 1000). Coins with no
 * provider rank (CSV-only) sit deep in the long tail.
 */
function supplyOf(c: Coin) {
  const ranks = [c.coingecko?.rank, c.coinpaprika?.rank].filter((r): r is number => typeof r === "number");
  const rank = ranks.length ? Math.min(...ranks) : 3000 + Math.floor(unit(`rank|${c.key}`) * 3000);
  return (1.8e12 * rank ** -1.4) / c.price;
}

type Rec = Identity & { key: string };

function recordsOf(source: Source): Rec[] {
  const out: Rec[] = [];
  for (const c of coins) {
    const side = c[source];
    if (!side) continue;
    const jitter = (unit(`${source}|${c.key}`) * 2 - 1) * 0.005; // ±0.5%
    const priceUsd = c.price * (1 + jitter);
    out.push({
      key: c.key,
      source,
      sourceId: side.id,
      symbol: side.symbol,
      name: side.name,
      priceUsd,
      rank: source === "csv" ? null : (side.rank ?? null),
      marketCapUsd: priceUsd * supplyOf(c),
    });
  }
  return out;
}

const identity = ({ key: _key, ...r }: Rec): Identity => r;

/**
 * Same selection as resolve.ts candidatesQuery: mappings that share a symbol, name or id key with
 * the batch, or whose name starts with a batch name's words (or the other way round), plus every
 * other mapping of those assets.
 */
function candidates(batch: Identity[], mappings: KnownMapping[]) {
  const wanted = new Set(batch.flatMap((r) => keysOf(r).lookup));
  const offered = new Set(batch.flatMap((r) => keysOf(r).own));
  const hit = new Set<string>();
  for (const m of mappings) {
    const k = keysOf(m);
    if (k.own.some((key) => wanted.has(key)) || k.lookup.some((key) => offered.has(key))) hit.add(m.assetUid);
  }
  return mappings.filter((m) => hit.has(m.assetUid));
}

/** Readable uid for a new asset, as resolve.ts does: name slug, then qualified by symbol, then by id. */
function newUid(r: Identity, taken: Set<string>) {
  const name = slugify(r.name) || slugify(r.symbol) || slugify(r.sourceId) || "asset";
  const sym = slugify(r.symbol);
  const choices = [name];
  if (sym && sym !== name) choices.push(`${name}-${sym}`);
  choices.push(`${name}-${slugify(r.sourceId) || "x"}`.slice(0, 80));
  let uid = choices.find((u) => !taken.has(u));
  for (let n = 2; !uid; n++) if (!taken.has(`${choices[0]}-${n}`)) uid = `${choices[0]}-${n}`;
  taken.add(uid);
  return uid;
}

type Run = { uidOf: Map<string, string>; rules: Map<string, string>; moves: number };

/**
 * Feeds the batches one at a time as resolve.ts does: ids already mapped are not decided again
 * unless a new record's neighbourhood moves them. Returns record key -> asset uid.
 */
function simulate(batches: Rec[][], pinned = new Map<string, string>(), select: "all" | "candidates" = "candidates"): Run {
  const mappings = new Map<string, KnownMapping>();
  const taken = new Set<string>(pinned.values());
  const rules = new Map<string, string>();
  let moves = 0;
  let batchNo = 0;
  for (const batch of batches) {
    batchNo++;
    const records = batch.map(identity).filter((r) => !mappings.has(matchKey(r)));
    if (!records.length) continue;
    const all = [...mappings.values()];
    const out = decide(records, select === "all" ? all : candidates(records, all), pinned);
    const freshUids = out.fresh.map((r) => newUid(r, taken));
    const uidOf = (p: Placement) => ("assetUid" in p ? p.assetUid : freshUids[p.fresh]);
    for (const m of out.moves) {
      const key = matchKey(m);
      mappings.set(key, { ...mappings.get(key)!, assetUid: uidOf(m.to) });
      rules.set(key, m.rule);
      moves++;
    }
    for (const r of records) {
      const d = out.decisions.get(matchKey(r));
      if (!d) throw new Error(`no decision for ${matchKey(r)}`);
      const uid = d.assetUid ?? freshUids[d.fresh!];
      mappings.set(matchKey(r), { ...r, symbol: symbolKey(r.symbol), assetUid: uid, createdAt: String(batchNo).padStart(6, "0") });
      rules.set(matchKey(r), d.rule);
    }
  }
  return { uidOf: new Map([...mappings].map(([k, m]) => [k, m.assetUid])), rules, moves };
}

const csv = recordsOf("csv");
const gecko = recordsOf("coingecko");
const paprika = recordsOf("coinpaprika");
const all = [...csv, ...gecko, ...paprika];
const keyOf = new Map(all.map((r) => [matchKey(r), r.key]));
const label = (k: string) => k.replace("\u0000", ":");

function geckoPages(records: Rec[], size = 250) {
  const sorted = [...records].sort((a, b) => (a.rank ?? 1e12) - (b.rank ?? 1e12) || (a.sourceId < b.sourceId ? -1 : 1));
  const pages: Rec[][] = [];
  for (let i = 0; i < sorted.length; i += size) pages.push(sorted.slice(i, i + size));
  return pages;
}

const realOrder = () => [csv, ...geckoPages(gecko), paprika];

function groups(run: Run) {
  const byUid = new Map<string, string[]>();
  for (const [k, uid] of run.uidOf) byUid.set(uid, [...(byUid.get(uid) ?? []), k]);
  return [...byUid.values()];
}

/** The partition of records into assets, independent of uid names. */
function partition(run: Run) {
  return groups(run)
    .map((g) => g.map(label).sort().join(" + "))
    .sort();
}

function score(run: Run) {
  let predicted = 0;
  let correct = 0;
  const falseMerges: string[] = [];
  for (const g of groups(run)) {
    for (let i = 0; i < g.length; i++) {
      for (let j = i + 1; j < g.length; j++) {
        predicted++;
        if (keyOf.get(g[i]) === keyOf.get(g[j])) correct++;
        else falseMerges.push(`${label(g[i])} (${keyOf.get(g[i])}) ~ ${label(g[j])} (${keyOf.get(g[j])})`);
      }
    }
  }
  let truth = 0;
  const splits: string[] = [];
  const byKey = new Map<string, string[]>();
  for (const r of all) byKey.set(r.key, [...(byKey.get(r.key) ?? []), matchKey(r)]);
  for (const [key, rs] of byKey) {
    truth += (rs.length * (rs.length - 1)) / 2;
    const uids = new Set(rs.map((k) => run.uidOf.get(k)));
    if (uids.size > 1) splits.push(`${key}: ${rs.map((k) => `${label(k)}→${run.uidOf.get(k)}`).join(", ")}`);
  }
  return {
    predicted,
    correct,
    truth,
    precision: predicted ? correct / predicted : 1,
    recall: truth ? correct / truth : 1,
    falseMerges,
    splits,
  };
}

/** Keys that share a ticker symbol somewhere (IOTA/MIOTA-style differences of one coin do not count). */
function collisionGroups() {
  const bySymbol = new Map<string, Set<string>>();
  for (const r of all) {
    const s = symbolKey(r.symbol);
    bySymbol.set(s, (bySymbol.get(s) ?? new Set()).add(r.key));
  }
  return [...bySymbol.entries()].filter(([, keys]) => keys.size > 1).map(([symbol, keys]) => ({ symbol, keys: [...keys].sort() }));
}

describe("unification accuracy on labelled identities", () => {
  const run = simulate(realOrder());
  const s = score(run);

  it("reaches precision >= 0.995 and recall >= 0.99 (csv, then gecko pages, then paprika)", () => {
    const rules: Record<string, number> = {};
    for (const rule of run.rules.values()) rules[rule] = (rules[rule] ?? 0) + 1;
    console.log(
      `[unify-accuracy] records=${all.length} coins=${coins.length} true pairs=${s.truth} predicted pairs=${s.predicted} correct=${s.correct} ` +
        `precision=${s.precision.toFixed(4)} recall=${s.recall.toFixed(4)} rules=${JSON.stringify(rules)}`,
    );
    if (s.falseMerges.length) console.log(`[unify-accuracy] false merges:\n  ${s.falseMerges.join("\n  ")}`);
    if (s.splits.length) console.log(`[unify-accuracy] split coins:\n  ${s.splits.join("\n  ")}`);
    expect(s.precision).toBeGreaterThanOrEqual(0.995);
    expect(s.recall).toBeGreaterThanOrEqual(0.99);
  });

  it("gives every record a decision and every API asset at most one id per API source", () => {
    expect(run.uidOf.size).toBe(all.length);
    for (const g of groups(run)) {
      for (const source of ["coingecko", "coinpaprika"]) {
        expect(g.filter((k) => k.startsWith(`${source}\u0000`)).length).toBeLessThanOrEqual(1);
      }
    }
  });

  it("groups records the same whatever the source order and the order within batches", () => {
    const reference = partition(run);
    const diff = (other: string[]) => {
      const a = new Set(reference);
      const b = new Set(other);
      return { onlyReal: reference.filter((g) => !b.has(g)), onlyOther: other.filter((g) => !a.has(g)) };
    };
    const batchesOf = { csv: () => [csv], gecko: () => geckoPages(gecko), paprika: () => [paprika] };
    const orders: (keyof typeof batchesOf)[][] = [
      ["paprika", "gecko", "csv"],
      ["csv", "paprika", "gecko"],
      ["gecko", "csv", "paprika"],
      ["gecko", "paprika", "csv"],
      ["paprika", "csv", "gecko"],
      ["csv", "gecko", "paprika"],
    ];
    let seed = 1;
    for (const order of orders) {
      for (const shuffle of [false, true]) {
        const batches = order.flatMap((source) => batchesOf[source]()).map((b) => (shuffle ? shuffled(b, seed++) : b));
        const other = partition(simulate(batches));
        const d = diff(other);
        if (d.onlyReal.length || d.onlyOther.length)
          console.log(`[unify-accuracy] ${order.join(" > ")}${shuffle ? " (shuffled)" : ""} differs`, d);
        expect(other, `${order.join(" > ")}${shuffle ? " (shuffled)" : ""}`).toEqual(reference);
      }
    }
  });

  it("groups the same with only the candidates resolve.ts loads as with every mapping", () => {
    expect(partition(simulate(realOrder(), new Map(), "all"))).toEqual(partition(run));
    expect(partition(simulate([paprika, ...geckoPages(gecko), csv], new Map(), "all"))).toEqual(partition(run));
  });

  it("lets a pinned mapping win over every rule", () => {
    const pinned = new Map([[matchKey({ source: "coinpaprika", sourceId: "eth-ethereum" }), "my-pinned-eth"]]);
    const pinnedRun = simulate(realOrder(), pinned);
    const k = matchKey({ source: "coinpaprika", sourceId: "eth-ethereum" });
    expect(pinnedRun.uidOf.get(k)).toBe("my-pinned-eth");
    expect(pinnedRun.rules.get(k)).toBe("pinned");
    // The coin's other records still unify with each other.
    const gk = matchKey({ source: "coingecko", sourceId: "ethereum" });
    const ck = matchKey({ source: "csv", sourceId: "ethereum" });
    expect(pinnedRun.uidOf.get(gk)).toBe(pinnedRun.uidOf.get(ck));

    // A pin also wins over a known mapping of the same record.
    const r = identity(paprika.find((p) => p.sourceId === "eth-ethereum")!);
    const known: KnownMapping[] = [{ ...r, assetUid: "ethereum" }];
    const d = decide([r], known, new Map([[matchKey(r), "elsewhere"]])).decisions.get(matchKey(r));
    expect(d).toEqual({ assetUid: "elsewhere", rule: "pinned" });
  });

  it("never merges the bridged ETH token with Ethereum, in any order", () => {
    const bridged = matchKey({ source: "coingecko", sourceId: "ethereum-wormhole" });
    for (const r of [run, simulate([paprika, ...geckoPages(gecko), csv]), simulate([csv, paprika, ...geckoPages(gecko)])]) {
      const uid = r.uidOf.get(bridged);
      for (const rec of all.filter((x) => x.key === "eth")) expect(r.uidOf.get(matchKey(rec))).not.toBe(uid);
    }
  });

  it("keeps every ticker-collision group apart", () => {
    const groupsBySymbol = collisionGroups();
    // 26 among the real identities, 26 more among the invented hard cases.
    expect(groupsBySymbol.length).toBe(52);
    const merged: string[] = [];
    for (const r of [run, simulate([paprika, ...geckoPages(gecko), csv])]) {
      for (const { symbol, keys } of groupsBySymbol) {
        const uidsByKey = keys.map((key) => new Set(all.filter((x) => x.key === key).map((x) => r.uidOf.get(matchKey(x)))));
        for (let i = 0; i < keys.length; i++) {
          for (let j = i + 1; j < keys.length; j++) {
            if ([...uidsByKey[i]].some((u) => uidsByKey[j].has(u))) merged.push(`${symbol}: ${keys[i]} ~ ${keys[j]}`);
          }
        }
      }
    }
    expect(merged).toEqual([]);
  });
});

describe("unification of the hard classes", () => {
  const classOf = new Map(coins.filter((c) => c.class).map((c) => [c.key, c.class!]));
  /** Every case coin's records on one asset, and no asset holding two coins' records. */
  function wrong(run: Run) {
    const errors: string[] = [];
    const keysByUid = new Map<string, Set<string>>();
    for (const r of all) {
      const uid = run.uidOf.get(matchKey(r))!;
      keysByUid.set(uid, (keysByUid.get(uid) ?? new Set()).add(r.key));
    }
    for (const [key, cls] of classOf) {
      const recs = all.filter((r) => r.key === key);
      const uids = new Set(recs.map((r) => run.uidOf.get(matchKey(r))));
      if (uids.size > 1) errors.push(`${cls} ${key}: split over ${[...uids].join(", ")}`);
      for (const uid of uids)
        if (keysByUid.get(uid!)!.size > 1) errors.push(`${cls} ${key}: shares ${uid} with ${[...keysByUid.get(uid!)!].join(", ")}`);
    }
    return [...new Set(errors)];
  }

  it("has at least ten cases of each class", () => {
    const counts: Record<string, number> = {};
    for (const c of coins.filter((c) => c.class && c.coingecko && c.coinpaprika)) counts[c.class!] = (counts[c.class!] ?? 0) + 1;
    expect(counts).toEqual({ steal: 11, migrated: 10, successor: 15 });
  });

  it("places every case right in the real order", () => {
    expect(wrong(simulate(realOrder()))).toEqual([]);
  });

  it("moves a look-alike out when the true coin arrives pages later", () => {
    // CoinPaprika's single payload first, then CoinGecko one coin per page: every look-alike
    // (ranked 12 places higher) arrives before its true coin and is first taken provisionally.
    const run = simulate([paprika, ...geckoPages(gecko, 1), csv]);
    expect(wrong(run)).toEqual([]);
    expect(run.moves).toBeGreaterThanOrEqual(5);
    expect(partition(run)).toEqual(partition(simulate(realOrder())));
  });

  it("places every case right whatever the page size and the source order", () => {
    for (const size of [3, 40, 250]) {
      for (const batches of [
        [paprika, ...geckoPages(gecko, size), csv],
        [csv, ...geckoPages(gecko, size).reverse(), paprika],
        [...geckoPages(gecko, size), paprika, csv],
      ]) {
        expect(wrong(simulate(batches)), `pages of ${size}`).toEqual([]);
      }
    }
  });

  it("converges: random source order, page splits and message order give one grouping", () => {
    const reference = partition(simulate(realOrder()));
    const sources = { csv, gecko, paprika };
    fc.assert(
      fc.property(
        fc.shuffledSubarray(["csv", "gecko", "paprika"] as const, { minLength: 3, maxLength: 3 }),
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 8 }),
        fc.integer(),
        (order, sizes, seed) => {
          // Every source's records sorted by rank, cut into pages of the drawn sizes; the pages are then delivered in a random order.
          const batches: Rec[][] = [];
          for (const name of order) {
            const sorted = [...sources[name]].sort((a, b) => (a.rank ?? 1e12) - (b.rank ?? 1e12) || (a.sourceId < b.sourceId ? -1 : 1));
            for (let i = 0, n = 0; i < sorted.length; n++) {
              const size = sizes[n % sizes.length];
              batches.push(shuffled(sorted.slice(i, i + size), seed + n));
              i += size;
            }
          }
          expect(partition(simulate(shuffled(batches, seed)))).toEqual(reference);
        },
      ),
      { seed: 20261201, numRuns: 25 },
    );
  });

  it("gives a replay the grouping of the first pass", () => {
    const first = simulate(realOrder());
    const again = simulate([...realOrder(), ...realOrder()]);
    expect(partition(again)).toEqual(partition(first));
    expect(again.moves).toBe(first.moves);
  });
});
