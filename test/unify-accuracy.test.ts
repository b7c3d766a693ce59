import { describe, expect, it } from "vitest";
import { mulberry32 } from "../scripts/prng.mjs";
import { idKey, nameKey, slugify, symbolKey } from "../src/unify/keys";
import { decide, type Identity, type KnownMapping, matchKey } from "../src/unify/matcher";
import identities from "./fixtures/identities.json";

/**
 * Accuracy of the pure matcher over a labelled set of real coin identities, with ingestion
 * simulated batch by batch: the CSV file first (one batch), then CoinGecko in pages of 250 by
 * rank, then CoinPaprika (one batch). Each batch is decided against every mapping made so far
 * (and, as a check, against only the ones `resolve.ts` candidatesFor would load: same symbol,
 * name or id key, plus every other mapping of those assets).
 */

type Side = { id: string; name: string; symbol: string; rank?: number } | null;
type Coin = { key: string; symbol: string; price: number; coingecko: Side; coinpaprika: Side; csv: Side };
type Source = "coingecko" | "coinpaprika" | "csv";

const coins = identities as Coin[];

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

/** Same selection as resolve.ts candidatesFor. */
function candidates(batch: Identity[], mappings: KnownMapping[]) {
  const symbols = new Set(batch.map((q) => symbolKey(q.symbol)).filter(Boolean));
  const names = new Set(batch.map((q) => nameKey(q.name)).filter(Boolean));
  const ids = new Set(batch.map((q) => idKey(q.source, q.sourceId, q.symbol)).filter(Boolean));
  const hit = new Set<string>();
  for (const m of mappings) {
    if (symbols.has(symbolKey(m.symbol)) || names.has(nameKey(m.name)) || ids.has(idKey(m.source, m.sourceId, m.symbol)))
      hit.add(m.assetUid);
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

type Run = { uidOf: Map<string, string>; rules: Map<string, string> };

/** Feeds the batches one at a time; returns record key -> asset uid. */
function simulate(batches: Rec[][], pinned = new Map<string, string>(), select: "all" | "candidates" = "all"): Run {
  const mappings: KnownMapping[] = [];
  const taken = new Set<string>(pinned.values());
  const uidOf = new Map<string, string>();
  const rules = new Map<string, string>();
  for (const batch of batches) {
    const records = batch.map(identity);
    const decisions = decide(records, select === "all" ? mappings : candidates(records, mappings), pinned);
    const ordered = [...records].sort((a, b) => (a.rank ?? 1e12) - (b.rank ?? 1e12) || (a.sourceId < b.sourceId ? -1 : 1));
    for (const r of ordered) {
      const d = decisions.get(matchKey(r));
      if (!d) throw new Error(`no decision for ${matchKey(r)}`);
      const uid = d.assetUid ?? newUid(r, taken);
      uidOf.set(matchKey(r), uid);
      rules.set(matchKey(r), d.rule);
      mappings.push({ ...r, symbol: symbolKey(r.symbol), assetUid: uid });
    }
  }
  return { uidOf, rules };
}

const csv = recordsOf("csv");
const gecko = recordsOf("coingecko");
const paprika = recordsOf("coinpaprika");
const all = [...csv, ...gecko, ...paprika];
const keyOf = new Map(all.map((r) => [matchKey(r), r.key]));
const label = (k: string) => k.replace("\u0000", ":");

function geckoPages(records: Rec[]) {
  const sorted = [...records].sort((a, b) => (a.rank ?? 1e12) - (b.rank ?? 1e12) || (a.sourceId < b.sourceId ? -1 : 1));
  const pages: Rec[][] = [];
  for (let i = 0; i < sorted.length; i += 250) pages.push(sorted.slice(i, i + 250));
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

  it("reaches precision >= 0.995 and recall >= 0.98 (csv, then gecko pages, then paprika)", () => {
    const rules: Record<string, number> = {};
    for (const rule of run.rules.values()) rules[rule] = (rules[rule] ?? 0) + 1;
    console.log(
      `[unify-accuracy] records=${all.length} coins=${coins.length} true pairs=${s.truth} predicted pairs=${s.predicted} correct=${s.correct} ` +
        `precision=${s.precision.toFixed(4)} recall=${s.recall.toFixed(4)} rules=${JSON.stringify(rules)}`,
    );
    if (s.falseMerges.length) console.log(`[unify-accuracy] false merges:\n  ${s.falseMerges.join("\n  ")}`);
    if (s.splits.length) console.log(`[unify-accuracy] split coins:\n  ${s.splits.join("\n  ")}`);
    expect(s.precision).toBeGreaterThanOrEqual(0.995);
    expect(s.recall).toBeGreaterThanOrEqual(0.98);
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
    expect(partition(simulate(realOrder(), new Map(), "candidates"))).toEqual(partition(run));
    expect(partition(simulate([paprika, ...geckoPages(gecko), csv], new Map(), "candidates"))).toEqual(partition(run));
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
    const d = decide([r], known, new Map([[matchKey(r), "elsewhere"]])).get(matchKey(r));
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
    expect(groupsBySymbol.length).toBe(26);
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
