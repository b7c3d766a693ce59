// Deterministic synthetic upstream payloads in the exact field layout of the recorded ones in
// data/ (checked against them at generation time), laid out the way scripts/recorded-upstream.mjs
// serves them: coinpaprika/tickers.json and coingecko/markets-page-N.json.
//
// Universe: coins 0..(n + n/10 - 1). CoinPaprika lists coins 0..n-1; CoinGecko lists coins
// 0..0.9n-1 plus n..1.1n-1, so 90 % of each source matches a coin of the other (same symbol and
// name, price within 0.2 %, same rank region) and 10 % is source-only.
import fs from "node:fs";
import path from "node:path";
import { mulberry32 } from "../scripts/prng.mjs";
import { root } from "./lib.mjs";

const prng = mulberry32;

const CONS = "bcdfghjklmnprstvwxyz"; // 20
const VOW = "aeiou"; // 5
const SYL = [...CONS].flatMap((c) => [...VOW].map((v) => c + v)); // 100 two-letter syllables
const cap = (s) => s[0].toUpperCase() + s.slice(1);
const SUFFIX = ["", "", "", " Network", " Protocol", " Finance", " Token", " Chain"];

/** Unique, readable name per coin index (fixed-width syllables make the mapping injective). */
function coinName(i) {
  const d0 = i % 100;
  const d1 = Math.floor(i / 100) % 100;
  const d2 = Math.floor(i / 10_000); // < 100 for i < 1e6
  return cap(SYL[(d2 * 37) % 100] + SYL[d1] + SYL[d0]) + SUFFIX[i % SUFFIX.length];
}

/** Unique ticker per coin index: base-26 letters, at least three. */
function coinSymbol(i) {
  let n = i + 26 * 26;
  let s = "";
  while (n > 0) {
    s = String.fromCharCode(65 + (n % 26)) + s;
    n = Math.floor(n / 26);
  }
  return s;
}

const slug = (name) => name.toLowerCase().replace(/[^a-z0-9]+/g, "-");
const r2 = (x, d = 2) => Number(x.toFixed(d));

export function coin(i) {
  const rnd = prng(1000 + i);
  const name = coinName(i);
  const symbol = coinSymbol(i);
  const price = 10 ** (rnd() * 6 - 3); // $0.001 .. $1000
  const marketCap = Math.round(2e12 / (i + 1) ** 1.15);
  const supply = Math.round(marketCap / price);
  const maxSupply = rnd() < 0.45 ? null : Math.round(supply * (1 + rnd()));
  return {
    i,
    name,
    symbol,
    slug: slug(name),
    price,
    marketCap,
    supply,
    maxSupply,
    volume: Math.round(marketCap * (0.01 + rnd() * 0.2)),
    change24h: r2((rnd() - 0.5) * 20),
    jitter: 1 + (rnd() - 0.5) * 0.004, // CoinGecko's price differs by < 0.2 %
    rnd,
  };
}

export function paprikaTicker(c, rank) {
  const rnd = c.rnd;
  const pct = () => r2((rnd() - 0.5) * 10);
  return {
    id: `${c.symbol.toLowerCase()}-${c.slug}`,
    name: c.name,
    symbol: c.symbol,
    rank,
    circulating_supply: c.supply,
    total_supply: c.supply,
    max_supply: c.maxSupply ?? 0, // 0 = no cap at CoinPaprika
    beta_value: r2(rnd() * 2, 4),
    first_data_at: "2019-01-01T00:00:00Z",
    last_updated: "2026-11-22T12:00:00Z",
    quotes: {
      USD: {
        price: Number(c.price.toPrecision(10)),
        volume_24h: r2(c.volume),
        volume_24h_change_24h: pct(),
        market_cap: c.marketCap,
        market_cap_change_24h: pct(),
        percent_change_15m: pct(),
        percent_change_30m: pct(),
        percent_change_1h: pct(),
        percent_change_6h: pct(),
        percent_change_12h: pct(),
        percent_change_24h: c.change24h,
        percent_change_7d: pct(),
        percent_change_30d: pct(),
        percent_change_1y: pct(),
        ath_price: Number((c.price * (1 + rnd() * 5)).toPrecision(10)),
        ath_date: "2024-06-22T01:11:21Z",
        percent_from_price_ath: r2(-rnd() * 90),
      },
    },
  };
}

export function geckoMarket(c, rank) {
  const rnd = c.rnd;
  const price = Number((c.price * c.jitter).toPrecision(8));
  const mcap = Math.round(c.marketCap * c.jitter);
  const ch = r2(price * (c.change24h / 100), 6);
  return {
    id: c.slug,
    symbol: c.symbol.toLowerCase(),
    name: c.name,
    image: `https://coin-images.coingecko.com/coins/images/${100000 + c.i}/large/${c.slug}.png?1696000000`,
    current_price: price,
    market_cap: mcap,
    market_cap_rank: rank,
    fully_diluted_valuation: c.maxSupply ? Math.round(c.maxSupply * price) : null,
    total_volume: c.volume,
    high_24h: Number((price * 1.03).toPrecision(8)),
    low_24h: Number((price * 0.97).toPrecision(8)),
    price_change_24h: ch,
    price_change_percentage_24h: r2(c.change24h + (rnd() - 0.5) * 0.1, 5),
    market_cap_change_24h: r2(mcap * (c.change24h / 100)),
    market_cap_change_percentage_24h: r2(c.change24h, 5),
    circulating_supply: c.supply,
    total_supply: c.i % 3 === 0 ? null : c.supply,
    max_supply: c.maxSupply,
    ath: Number((price * (1 + rnd() * 5)).toPrecision(8)),
    ath_change_percentage: r2(-rnd() * 90, 5),
    ath_date: "2024-06-22T01:11:21.000Z",
    atl: Number((price * rnd() * 0.5).toPrecision(8)),
    atl_change_percentage: r2(rnd() * 5000, 5),
    atl_date: "2020-03-13T02:22:55.000Z",
    roi: c.i % 50 === 0 ? { times: r2(rnd() * 100, 6), currency: "usd", percentage: r2(rnd() * 10000, 4) } : null,
    last_updated: "2026-11-22T12:00:00.000Z",
  };
}

// ---------------------------------------------------------------------------------------------
// Contract lists in the providers' shapes (bench/cost.mjs): CoinGecko /coins/list?include_platform=true
// and CoinPaprika /contracts + /contracts/{platform}, for the same coins as the markets above.
//
// About two thirds of the coins are tokens on 1 to 4 platforms (Ethereum most often, then BNB Chain,
// Polygon, Solana, Arbitrum, Base, …, and a long tail of small chains), the rest native coins
// (CoinGecko lists `{"": ""}` for some of them). CoinGecko lists every coin it knows, far more than
// it has markets for (`listOnly` coins per market coin); CoinPaprika lists its own coins' contracts
// per platform, EVM addresses lowercase (CoinGecko's mixed case), a few marked inactive. `round` 2
// moves about 1 % of the lists: a contract added, one dropped, an address replaced.

const GECKO_PLATFORMS = [
  ["ethereum", "eth-ethereum", "evm", 40],
  ["binance-smart-chain", "bnb-binance-coin", "evm", 14],
  ["polygon-pos", "matic-polygon", "evm", 8],
  ["solana", "sol-solana", "base58", 10],
  ["arbitrum-one", "arb-arbitrum", "evm", 6],
  ["base", null, "evm", 6],
  ["avalanche", "avax-avalanche", "evm", 3],
  ["tron", "trx-tron", "base58", 2],
  ["optimistic-ethereum", "op-optimism", "evm", 2],
];
/** The long tail: small chains each with a few tokens, most listed by both providers under their own names. */
const TAIL_PLATFORMS = Array.from({ length: 80 }, (_, k) => [`tail-chain-${k}`, k % 5 === 0 ? null : `tl${k}-tail-chain-${k}`, "evm", 0.1]);
const ALL_PLATFORMS = [...GECKO_PLATFORMS, ...TAIL_PLATFORMS];
const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/** A deterministic address of a coin on a platform (salted by `round` when the address was replaced). */
function contractAddress(i, platform, kind, salt = "") {
  const r = prng([...`${i}:${platform}:${salt}`].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) >>> 0, 7));
  if (kind === "base58") return Array.from({ length: 44 }, () => B58[Math.floor(r() * 58)]).join("");
  return `0x${Array.from({ length: 40 }, () => {
    const d = Math.floor(r() * 16).toString(16);
    return r() < 0.5 ? d.toUpperCase() : d;
  }).join("")}`;
}

/** The platforms of coin `i`: [] for a native coin, else 1..4 weighted picks. */
function platformsOfCoin(i) {
  const r = prng(5000 + i);
  if (r() < 0.35) return [];
  const n = 1 + Math.floor(r() ** 2 * 4);
  const total = ALL_PLATFORMS.reduce((t, p) => t + p[3], 0);
  const out = new Set();
  for (let k = 0; k < n * 3 && out.size < n; k++) {
    let x = r() * total;
    for (const p of ALL_PLATFORMS) {
      x -= p[3];
      if (x <= 0) {
        out.add(p);
        break;
      }
    }
  }
  return [...out];
}

/**
 * Writes the contract lists under `dir` for CoinGecko coins `geckoIdx` (indices into coin()) and
 * CoinPaprika coins `paprikaIdx`: coingecko/coins-list.json, coinpaprika/contracts.json and
 * coinpaprika/contracts/{platform}.json. Returns the number of contracts each lists.
 */
export function writeContractLists(dir, geckoIdx, paprikaIdx, { listOnly = 2, round = 1 } = {}) {
  const moved = (i, k) => round > 1 && prng(9000 + i * 7 + k)() < 0.01;
  const listed = (i) => {
    const ps = platformsOfCoin(i);
    // Round 2: about 1 % of tokens gain a platform, lose one, or have an address replaced.
    if (moved(i, 1) && ps.length < ALL_PLATFORMS.length) ps.push(ALL_PLATFORMS[(i * 13) % GECKO_PLATFORMS.length]);
    if (moved(i, 2) && ps.length > 1) ps.shift();
    return [...new Set(ps)].map((p) => ({ p, address: contractAddress(i, p[0], p[2], moved(i, 3) ? "replaced" : "") }));
  };
  const last = Math.max(...geckoIdx, ...paprikaIdx);
  const extra = Array.from({ length: Math.round(geckoIdx.length * listOnly) }, (_, k) => last + 1 + k);
  const geckoList = [...geckoIdx, ...extra].map((i) => {
    const c = coin(i);
    const ps = listed(i);
    const platforms = Object.fromEntries(ps.filter(({ p }) => p[0]).map(({ p, address }) => [p[0], address]));
    return { id: c.slug, symbol: c.symbol.toLowerCase(), name: c.name, platforms: ps.length ? platforms : i % 2 ? { "": "" } : {} };
  });
  geckoList.sort((a, b) => (a.id < b.id ? -1 : 1));
  const byPlatform = new Map();
  for (const i of paprikaIdx) {
    const c = coin(i);
    for (const { p, address } of listed(i)) {
      if (!p[1]) continue;
      if (!byPlatform.has(p[1])) byPlatform.set(p[1], []);
      const active = prng(7000 + i)() >= 0.03;
      byPlatform.get(p[1]).push({
        address: p[2] === "evm" ? address.toLowerCase() : address,
        id: `${c.symbol.toLowerCase()}-${c.slug}`,
        type: "TOKEN",
        active,
      });
    }
  }
  fs.mkdirSync(path.join(dir, "coingecko"), { recursive: true });
  fs.rmSync(path.join(dir, "coinpaprika", "contracts"), { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, "coinpaprika", "contracts"), { recursive: true });
  fs.writeFileSync(path.join(dir, "coingecko", "coins-list.json"), JSON.stringify(geckoList));
  fs.writeFileSync(path.join(dir, "coinpaprika", "contracts.json"), JSON.stringify([...byPlatform.keys()].sort()));
  for (const [platform, rows] of byPlatform)
    fs.writeFileSync(path.join(dir, "coinpaprika", "contracts", `${platform}.json`), JSON.stringify(rows));
  return {
    coingecko_coins: geckoList.length,
    coingecko_contracts: geckoList.reduce((n, c) => n + Object.values(c.platforms).filter(Boolean).length, 0),
    coinpaprika_platforms: byPlatform.size,
    coinpaprika_contracts: [...byPlatform.values()].reduce((n, r) => n + r.length, 0),
  };
}

function sameLayout(a, b, what) {
  const ka = JSON.stringify(Object.keys(a));
  const kb = JSON.stringify(Object.keys(b));
  if (ka !== kb) throw new Error(`${what}: generated keys ${ka} differ from the recorded ${kb}`);
}

/**
 * Writes `n` CoinPaprika tickers and `n` CoinGecko markets (pages of 250) under `dir`.
 * Returns {dir, paprika: [...records], gecko: [...records], pages}.
 */
export function writeUpstream(dir = path.join(root, "bench", "out", "upstream"), n = 20_000) {
  const overlap = Math.floor(n * 0.9);
  const paprika = [];
  for (let i = 0; i < n; i++) paprika.push(paprikaTicker(coin(i), i + 1));
  const geckoIdx = [];
  for (let i = 0; i < overlap; i++) geckoIdx.push(i);
  for (let i = n; i < n + (n - overlap); i++) geckoIdx.push(i);
  const gecko = geckoIdx.map((i, k) => geckoMarket(coin(i), k + 1));

  // Same field layout as the recorded payloads, key order included.
  const recP = JSON.parse(fs.readFileSync(path.join(root, "data", "coinpaprika", "tickers.json"), "utf8"))[0];
  const recG = JSON.parse(fs.readFileSync(path.join(root, "data", "coingecko", "markets-page-1.json"), "utf8"))[0];
  sameLayout(paprika[0], recP, "coinpaprika ticker");
  sameLayout(paprika[0].quotes.USD, recP.quotes.USD, "coinpaprika quotes.USD");
  sameLayout(gecko[0], recG, "coingecko market");
  for (const [what, xs] of [
    ["coinpaprika id", paprika.map((p) => p.id)],
    ["coinpaprika symbol", paprika.map((p) => p.symbol)],
    ["coinpaprika name", paprika.map((p) => p.name)],
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
  fs.writeFileSync(
    path.join(dir, "README.md"),
    `Synthetic upstream written by bench/upstream-gen.mjs: ${n} CoinPaprika tickers, ${gecko.length} CoinGecko markets in ${pages} pages; ${overlap} coins in both.\n`,
  );
  return { dir, paprika, gecko, pages, overlap };
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const n = Number(process.argv[2] ?? 20_000);
  const r = writeUpstream(undefined, n);
  console.log(JSON.stringify({ dir: r.dir, paprika: r.paprika.length, gecko: r.gecko.length, pages: r.pages, overlap: r.overlap }));
}
