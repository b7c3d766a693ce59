// A synthetic market with the collision density of the providers' real lists, for bench/ingest.mjs.
//
// Real lists (18,982 CoinGecko and 13,383 CoinPaprika identities) are far from a set of unique
// names: 37 % of CoinGecko coins share their ticker with another, in groups of up to dozens.
// Three kinds of collision make that up, and each is drawn here (shares of the CoinGecko list):
//  - bridged copies of a top coin, "X (Arbitrum)", "Bridged X (Base)", "Binance-Peg X",
//    "X (Wormhole)" (~7.5 %): the coin's ticker and price, a far smaller market cap, listed by
//    CoinGecko and seldom by CoinPaprika; a handful of coins (stablecoins first) have dozens;
//  - namesake families on one stem, "Pepe", "Baby Pepe", "Pepe 2.0", "Pepe (ETH)" (~9.5 %):
//    unrelated coins, most on one ticker, each priced on its own, half of them at CoinPaprika too;
//  - unrelated coins on one short ticker (~21 %), in groups of 2 to 11.
// CoinGecko ids are name slugs ("avalanche-2" once taken, "binancecoin" now and then); CoinPaprika
// ids are `{symbol}-{name-slug}` ("-2" once taken). Names agree across sources but for a filler
// word or case now and then, prices within 0.3 % (4 % for one coin in twenty), ranks nearby.
// `truth` says which ids are one coin.

import fs from "node:fs";
import path from "node:path";
import { mulberry32 as prng } from "../scripts/prng.mjs";
import { root } from "./lib.mjs";
import { geckoMarket, paprikaTicker } from "./upstream-gen.mjs";

const CONS = "bcdfghjklmnprstvwxyz";
const SYL = [...CONS].flatMap((c) => [..."aeiou"].map((v) => c + v));
const cap = (s) => s[0].toUpperCase() + s.slice(1);
const r2 = (x, d = 2) => Number(x.toFixed(d));

function sameLayout(a, b, what) {
  const ka = JSON.stringify(Object.keys(a));
  const kb = JSON.stringify(Object.keys(b));
  if (ka !== kb) throw new Error(`${what}: generated keys ${ka} differ from the recorded ${kb}`);
}

const CHAINS = [
  "Arbitrum",
  "Base",
  "BSC",
  "Polygon",
  "Optimism",
  "Avalanche",
  "Solana",
  "PulseChain",
  "zkSync",
  "Linea",
  "Scroll",
  "Blast",
  "Mantle",
  "Celo",
  "Fantom",
  "Harmony",
  "Moonbeam",
  "Gnosis",
  "Starknet",
  "Cronos",
  "Kava",
  "Metis",
  "Aurora",
  "Osmosis",
  "Axelar",
  "Stargate",
  "Sei",
  "Manta",
  "Mode",
  "Core",
  "Telos",
  "Boba",
  "Evmos",
  "Klaytn",
  "Fuse",
];
const MEME_FORMS = [
  (x) => x,
  (x) => x,
  (x) => `${x} Coin`,
  (x) => `Baby ${x}`,
  (x) => `${x} 2.0`,
  (x) => `${x} Inu`,
  (x) => `${x} AI`,
  (x) => `${x} (ETH)`,
  (x) => `${x} on Base`,
  (x) => `Mini ${x}`,
  (x) => `${x} Classic`,
  (x) => `Super ${x}`,
  (x) => `${x} Token`,
  (x) => `${x} CTO`,
  (x) => `Real ${x}`,
  (x) => `${x} Moon`,
  (x) => `Based ${x}`,
  (x) => `${x} (SOL)`,
];
const WORDS = ["Swap", "Labs", "DAO", "AI", "Pay", "Gold", "Cat", "Dog", "Fi", "X", "Verse", "Play", "World", "Bit", "Cash", "Link"];
const FILLER = [" Network", " Protocol", " Finance", " Token", " Chain", " Coin"];

const nameSlug = (name) =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");

/** `n` CoinGecko coins (and about 0.7 n CoinPaprika ones) with real collisions; deterministic for a seed. */
export function collidingUniverse(n = 19_000, seed = 19) {
  const rnd = prng(seed);
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  const usedStems = new Set();
  const stem = (syllables) => {
    for (;;) {
      let w = "";
      for (let k = 0; k < syllables; k++) w += SYL[Math.floor(rnd() * SYL.length)];
      if (!usedStems.has(w)) {
        usedStems.add(w);
        return cap(w);
      }
    }
  };
  const usedTickers = new Set();
  const ticker = (from, len) => {
    const letters = from.toUpperCase().replace(/[^A-Z]/g, "");
    for (let k = 0; ; k++) {
      // Taken: the last letter is drawn again, and after a few tries the ticker grows by one.
      const l = len + Math.floor(k / 8);
      const t = k === 0 ? letters.slice(0, l) : letters.slice(0, l - 1) + String.fromCharCode(65 + Math.floor(rnd() * 26));
      if (!usedTickers.has(t)) {
        usedTickers.add(t);
        return t;
      }
    }
  };

  const coins = [];
  const add = (c) => {
    coins.push({ key: coins.length, gecko: true, paprika: false, ...c });
    return coins[coins.length - 1];
  };
  const copies = Math.round(n * 0.075);
  const namesakes = Math.round(n * 0.095);
  const shared = Math.round(n * 0.215);
  const paprikaOnly = Math.round(n * 0.06);
  const originals = n - copies - namesakes;

  // Originals, by latent size (position 0 is the largest); some CoinPaprika-only.
  for (let i = 0; i < originals + paprikaOnly; i++) {
    const base = stem(rnd() < 0.25 ? 2 : 3);
    const r = rnd();
    const name = r < 0.2 ? base + pick(FILLER) : r < 0.35 ? `${base} ${pick(WORDS)}` : base;
    add({ kind: "original", name, symbol: ticker(base, 3 + (rnd() < 0.4 ? 1 : 0)), gecko: i < originals });
  }
  const order = coins.map((c) => c.key);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  order.forEach((key, pos) => {
    const c = coins[key];
    c.marketCap = (2e12 / (pos + 1) ** 1.15) * Math.exp((rnd() - 0.5) * 0.4);
    // A few of the largest are dollar stablecoins: the coins with the most bridged copies.
    c.price = pos < 80 && rnd() < 0.2 ? 1 + (rnd() - 0.5) * 0.002 : 10 ** (rnd() * 7 - 5);
    c.pos = pos;
  });
  const bySize = [...coins].sort((a, b) => a.pos - b.pos);

  // Unrelated coins on one short ticker, in groups of 2..11.
  const plain = bySize.filter((c) => c.gecko);
  let sharedLeft = shared;
  while (sharedLeft > 1) {
    const size = Math.min(sharedLeft, 2 + Math.floor(rnd() ** 2.5 * 10));
    const t = ticker(pick(SYL) + pick(SYL) + pick(SYL), 2 + Math.floor(rnd() * 3));
    for (let k = 0; k < size; k++) {
      const c = plain[Math.floor(rnd() * plain.length)];
      if (c.sharedTicker) continue;
      c.symbol = t;
      c.sharedTicker = true;
      sharedLeft--;
    }
  }

  // Bridged copies of large coins: stablecoins get the most, then a heavy tail.
  const origins = bySize.filter((c) => c.gecko && c.pos < 1500 && !c.sharedTicker);
  let copiesLeft = copies;
  for (const o of origins) {
    if (copiesLeft <= 0) break;
    if (o.price > 0.99 && o.price < 1.01 && o.pos < 80) o.copyCount = 15 + Math.floor(rnd() * 30);
    else if (rnd() < 0.3) o.copyCount = 1 + Math.floor(rnd() ** 3 * 30);
    else continue;
    const names = new Set();
    for (let k = 0; k < o.copyCount && copiesLeft > 0; k++) {
      const chain = pick(CHAINS);
      const form = rnd();
      const name =
        form < 0.5
          ? `${o.name} (${chain})`
          : form < 0.75
            ? `Bridged ${o.name} (${chain})`
            : form < 0.85
              ? `Binance-Peg ${o.name}`
              : form < 0.93
                ? `${o.name} (Wormhole)`
                : `Bridged ${o.name}`;
      if (names.has(name)) continue;
      names.add(name);
      add({
        kind: "copy",
        of: o.key,
        name,
        symbol: rnd() < 0.88 ? o.symbol : `${o.symbol}.E`,
        price: o.price * (1 + (rnd() - 0.5) * 0.006),
        marketCap: o.marketCap * 10 ** -(1 + rnd() * 3),
        paprika: rnd() < 0.05,
      });
      copiesLeft--;
    }
  }

  // Namesake families: one stem, mostly one ticker, each coin priced on its own.
  let namesakesLeft = namesakes + copiesLeft;
  while (namesakesLeft > 0) {
    const x = stem(2);
    const t = ticker(x, 3 + Math.floor(rnd() * 2));
    const size = Math.min(namesakesLeft, 2 + Math.floor(rnd() ** 4 * 58));
    const lead = (2e12 / (1 + Math.floor(rnd() * n * 0.3)) ** 1.15) * 0.5;
    for (let k = 0; k < size; k++) {
      const name = k === 0 ? x : pick(MEME_FORMS)(x);
      add({
        kind: "namesake",
        name,
        symbol: k === 0 || rnd() < 0.65 ? t : ticker(name, 4 + Math.floor(rnd() * 2)),
        price: 10 ** (rnd() * 8 - 8),
        marketCap: lead * 10 ** -(k === 0 ? 0 : 0.5 + rnd() * 3),
        paprika: rnd() < 0.45,
      });
      namesakesLeft--;
    }
  }

  // CoinGecko's list, by market cap; CoinPaprika lists most of the large originals and fewer down the list.
  const gecko = coins.filter((c) => c.gecko).sort((a, b) => b.marketCap - a.marketCap || a.key - b.key);
  gecko.forEach((c, k) => {
    c.geckoRank = k + 1;
  });
  const target = Math.round(n * 0.705) - coins.filter((c) => c.paprika).length - paprikaOnly;
  const eligible = gecko.filter((c) => c.kind === "original");
  const keyed = eligible.map((c) => ({ c, k: rnd() + (0.8 * c.geckoRank) / n })).sort((a, b) => a.k - b.k);
  for (const { c } of keyed.slice(0, Math.max(0, target))) c.paprika = true;
  for (const c of coins) if (!c.gecko) c.paprika = true;

  // Ids and per-source names.
  const geckoIds = new Map();
  const paprikaIds = new Map();
  const unique = (taken, base) => {
    const n = (taken.get(base) ?? 0) + 1;
    taken.set(base, n);
    return n === 1 ? base : `${base}-${n}`;
  };
  for (const c of coins) {
    const r = rnd();
    c.paprikaName =
      c.kind === "original" && r < 0.03 && !/ (Token|Coin|Network)$/.test(c.name)
        ? `${c.name} Token`
        : c.kind === "original" && r < 0.05
          ? c.name.toUpperCase()
          : c.name;
    const slug = nameSlug(c.name);
    if (c.gecko) c.geckoId = unique(geckoIds, c.kind === "original" && rnd() < 0.06 ? slug.replace(/-/g, "") : slug);
    if (c.paprika) c.paprikaId = unique(paprikaIds, `${c.symbol.toLowerCase().replace(/[^a-z0-9]/g, "")}-${nameSlug(c.paprikaName)}`);
    c.jitter = 1 + (rnd() < 0.95 ? (rnd() - 0.5) * 0.006 : (rnd() - 0.5) * 0.08);
  }
  const paprika = coins
    .filter((c) => c.paprika)
    .sort((a, b) => b.marketCap * (1 + (a.key % 7) * 0.02) - a.marketCap * (1 + (b.key % 7) * 0.02) || a.key - b.key);
  paprika.forEach((c, k) => {
    c.paprikaRank = k + 1;
  });
  return { coins, gecko, paprika };
}

/** Figures in upstream-gen's coin layout (see coin()) for a universe coin. */
function figuresOf(c) {
  const rnd = prng(5000 + c.key);
  const supply = Math.round(c.marketCap / c.price);
  const maxSupply = rnd() < 0.45 ? null : Math.round(supply * (1 + rnd()));
  return {
    i: c.key,
    name: c.name,
    symbol: c.symbol,
    slug: c.geckoId ?? "",
    price: c.price,
    marketCap: Math.round(c.marketCap),
    supply,
    maxSupply,
    volume: Math.round(c.marketCap * (0.01 + rnd() * 0.2)),
    change24h: r2((rnd() - 0.5) * 20),
    jitter: c.jitter,
    rnd,
  };
}

/** The universe of collidingUniverse written as upstream payloads, like writeUpstream; returns its truth too. */
export function writeCollidingUpstream(dir = path.join(root, "bench", "out", "upstream"), n = 19_000, seed = 19) {
  const u = collidingUniverse(n, seed);
  // CoinGecko's price is the coin's; CoinPaprika's differs by the coin's jitter.
  const paprika = u.paprika.map((c) => ({
    ...paprikaTicker({ ...figuresOf(c), name: c.paprikaName, price: c.price * c.jitter }, c.paprikaRank),
    id: c.paprikaId,
  }));
  const gecko = u.gecko.map((c) => geckoMarket({ ...figuresOf(c), jitter: 1 }, c.geckoRank));
  const recP = JSON.parse(fs.readFileSync(path.join(root, "data", "coinpaprika", "tickers.json"), "utf8"))[0];
  const recG = JSON.parse(fs.readFileSync(path.join(root, "data", "coingecko", "markets-page-1.json"), "utf8"))[0];
  sameLayout(paprika[0], recP, "coinpaprika ticker");
  sameLayout(gecko[0], recG, "coingecko market");
  for (const [what, xs] of [
    ["coinpaprika id", paprika.map((p) => p.id)],
    ["coingecko id", gecko.map((g) => g.id)],
  ]) {
    if (new Set(xs).size !== xs.length) throw new Error(`${what}s are not unique`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, "coinpaprika"), { recursive: true });
  fs.mkdirSync(path.join(dir, "coingecko"), { recursive: true });
  fs.writeFileSync(path.join(dir, "coinpaprika", "tickers.json"), JSON.stringify(paprika));
  const pages = Math.ceil(gecko.length / 250);
  for (let p = 0; p < pages; p++) {
    fs.writeFileSync(path.join(dir, "coingecko", `markets-page-${p + 1}.json`), JSON.stringify(gecko.slice(p * 250, (p + 1) * 250)));
  }
  const bySymbol = new Map();
  for (const c of u.gecko) bySymbol.set(c.symbol.toLowerCase(), (bySymbol.get(c.symbol.toLowerCase()) ?? 0) + 1);
  const groups = [...bySymbol.values()].filter((k) => k > 1).sort((a, b) => b - a);
  const stats = {
    coingecko: gecko.length,
    coinpaprika: paprika.length,
    coins_in_both: u.coins.filter((c) => c.gecko && c.paprika).length,
    coingecko_sharing_symbol: +(groups.reduce((s, k) => s + k, 0) / gecko.length).toFixed(3),
    shared_symbols: groups.length,
    largest_symbol_groups: groups.slice(0, 8),
    bridged_copies: u.coins.filter((c) => c.kind === "copy").length,
    namesakes: u.coins.filter((c) => c.kind === "namesake").length,
  };
  fs.writeFileSync(
    path.join(dir, "README.md"),
    `Synthetic upstream with real collision density, written by bench/upstream-gen.mjs (collidingUniverse): ${JSON.stringify(stats)}\n`,
  );
  const truth = u.coins.map((c) => ({ coingecko: c.geckoId ?? null, coinpaprika: c.paprikaId ?? null, kind: c.kind }));
  return { dir, paprika, gecko, pages, truth, stats };
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const r = writeCollidingUpstream(undefined, Number(process.argv[2] ?? 19_000));
  console.log(JSON.stringify({ dir: r.dir, pages: r.pages, ...r.stats }));
}
