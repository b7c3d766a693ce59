#!/usr/bin/env node
// Writes the recorded sample payloads in data/ from test/fixtures/identities.json.
// Output is byte-identical between runs: every random draw comes from a PRNG seeded by the coin key.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mulberry32 } from "./prng.mjs";

const root = new URL("../", import.meta.url);
const RECORDED_AT = "2026-11-22T12:00:00.000Z";
const RECORDED_MS = Date.parse(RECORDED_AT);
const PAGE_SIZE = 250;
const DAY_MS = 86_400_000;

const identities = JSON.parse(readFileSync(new URL("test/fixtures/identities.json", root), "utf8"));

// Seeded from sha256(label:key) so adding a coin never shifts another coin's numbers.
const rng = (label, key) => mulberry32(createHash("sha256").update(`${label}:${key}`).digest().readUInt32BE(0));

const between = (r, lo, hi) => lo + r() * (hi - lo);
const sig = (x, digits) => Number(x.toPrecision(digits));
const fixed = (x, digits) => Number(x.toFixed(digits));
const isoDay = (r, from, to) => {
  const t = Date.parse(from) + Math.floor(r() * ((Date.parse(to) - Date.parse(from)) / DAY_MS)) * DAY_MS;
  return new Date(t + Math.floor(r() * 86_400) * 1000).toISOString();
};

const MAX_SUPPLY = { btc: 21_000_000, ltc: 84_000_000, bch: 21_000_000 };

// A smooth market-cap curve over rank keeps every provider's market cap consistent with its rank.
const marketCapForRank = (rank) => 1.8e12 / rank ** 1.7;

/** Facts about a coin shared by every provider (supply, ATH, 24h move), from its key, rank and price. */
function coinFacts(c) {
  const r = rng("coin", c.key);
  const stable = /USD|DAI/.test(c.symbol) && c.price > 0.95 && c.price < 1.05;
  const baseRank = c.coingecko?.rank ?? c.coinpaprika?.rank ?? Math.round(between(r, 800, 3000));
  const circulating = roundSupply(marketCapForRank(baseRank) / c.price);
  const totalDraw = r();
  const total = totalDraw < 0.4 ? circulating : totalDraw < 0.85 ? roundSupply(circulating * between(r, 1, 1.4)) : null;
  const max = MAX_SUPPLY[c.key] ?? (stable || r() < 0.45 ? null : roundSupply((total ?? circulating) * between(r, 1, 1.5)));
  // Large caps sit near their ATH; the long tail is often down 90%+.
  const athRatio = stable ? between(r, 1.01, 1.08) : 1.03 + r() * Math.min(20, 0.4 + baseRank / 40);
  return {
    stable,
    noise: stable ? 0.02 : 0.3, // how far providers' 24h changes drift apart, in points
    circulating,
    total,
    max,
    change24h: stable ? between(r, -0.1, 0.1) : between(r, -6, 6),
    ath: c.price * athRatio,
    athDate: isoDay(r, "2021-01-01", "2026-10-31"),
    atl: c.price * (stable ? between(r, 0.9, 0.98) : between(r, 0.0005, 0.6)),
    atlDate: isoDay(r, "2014-01-01", "2023-12-31"),
    firstDataAt: `${isoDay(r, "2013-04-28", "2025-06-30").slice(0, 10)}T00:00:00Z`,
    volumeRatio: between(r, 0.005, 0.15),
    roiTimes: r() < 0.15 ? between(r, 0.5, 400) : null,
    imageId: 1 + Math.floor(r() * 60_000),
  };
}

function roundSupply(x) {
  return x >= 10_000 ? Math.round(x) : fixed(x, 2);
}

/** The identity's price with a provider's own ±0.3% jitter. */
const jitter = (c, source) => c.price * (1 + between(rng(`price:${source}`, c.key), -0.003, 0.003));

function coingeckoRecord(c) {
  const f = coinFacts(c);
  const r = rng("coingecko", c.key);
  const g = c.coingecko;
  const price = sig(jitter(c, "coingecko"), 6);
  const marketCap = Math.round(price * f.circulating);
  const mcChange = f.change24h + between(r, -0.2, 0.2);
  const supplyForFdv = f.max ?? f.total;
  return {
    id: g.id,
    symbol: g.symbol,
    name: g.name,
    image: `https://coin-images.coingecko.com/coins/images/${f.imageId}/large/${g.id}.png?1696${String(f.imageId).padStart(6, "0")}`,
    current_price: price,
    market_cap: marketCap,
    market_cap_rank: g.rank,
    fully_diluted_valuation: supplyForFdv == null ? null : Math.round(price * supplyForFdv),
    total_volume: Math.round(marketCap * f.volumeRatio),
    high_24h: sig(price * (1 + between(r, 0.002, 0.04)), 6),
    low_24h: sig(price * (1 - between(r, 0.002, 0.04)), 6),
    price_change_24h: sig(price - price / (1 + f.change24h / 100), 6),
    price_change_percentage_24h: fixed(f.change24h, 5),
    market_cap_change_24h: fixed(marketCap - marketCap / (1 + mcChange / 100), 2),
    market_cap_change_percentage_24h: fixed(mcChange, 5),
    circulating_supply: f.circulating,
    total_supply: f.total,
    max_supply: f.max,
    ath: sig(f.ath, 6),
    ath_change_percentage: fixed((price / f.ath - 1) * 100, 5),
    ath_date: f.athDate,
    atl: sig(f.atl, 6),
    atl_change_percentage: fixed((price / f.atl - 1) * 100, 5),
    atl_date: f.atlDate,
    roi: f.roiTimes == null ? null : { times: fixed(f.roiTimes, 6), currency: "usd", percentage: fixed(f.roiTimes * 100, 4) },
    last_updated: RECORDED_AT,
  };
}

function coinpaprikaRecord(c) {
  const f = coinFacts(c);
  const r = rng("coinpaprika", c.key);
  const p = c.coinpaprika;
  const price = sig(jitter(c, "coinpaprika"), 10);
  const marketCap = Math.round(price * f.circulating);
  const pct = (spread) => fixed(between(r, -spread, spread), 2);
  const change24h = fixed(f.change24h + between(r, -f.noise, f.noise), 2);
  return {
    id: p.id,
    name: p.name,
    symbol: p.symbol,
    rank: p.rank,
    circulating_supply: Math.round(f.circulating),
    total_supply: Math.round(f.total ?? f.circulating),
    max_supply: f.max == null ? 0 : Math.round(f.max), // CoinPaprika reports "no max supply" as 0
    beta_value: fixed(between(r, 0.4, 1.6), 5),
    first_data_at: f.firstDataAt,
    last_updated: RECORDED_AT.replace(".000Z", "Z"),
    quotes: {
      USD: {
        price,
        volume_24h: fixed(marketCap * f.volumeRatio * between(r, 0.8, 1.2), 2),
        volume_24h_change_24h: pct(40),
        market_cap: marketCap,
        market_cap_change_24h: fixed(change24h + between(r, -0.1, 0.1), 2),
        percent_change_15m: pct(0.6),
        percent_change_30m: pct(0.9),
        percent_change_1h: pct(1.5),
        percent_change_6h: pct(3),
        percent_change_12h: pct(4),
        percent_change_24h: change24h,
        percent_change_7d: f.stable ? pct(0.3) : pct(18),
        percent_change_30d: f.stable ? pct(0.5) : pct(45),
        percent_change_1y: f.stable ? pct(1) : pct(150),
        ath_price: sig(f.ath, 10),
        ath_date: f.athDate.replace(/\.\d{3}Z$/, "Z"),
        percent_from_price_ath: fixed((price / f.ath - 1) * 100, 2),
      },
    },
  };
}

function csvRecord(c) {
  const f = coinFacts(c);
  const r = rng("csv", c.key);
  const price = jitter(c, "csv");
  return {
    id: c.csv.id,
    symbol: c.csv.symbol,
    name: c.csv.name,
    supply: f.circulating,
    maxSupply: f.max,
    marketCapUsd: price * f.circulating,
    volumeUsd24Hr: price * f.circulating * f.volumeRatio,
    priceUsd: price,
    changePercent24Hr: f.change24h + between(r, -f.noise, f.noise),
    vwap24Hr: price * (1 + between(r, -f.noise, f.noise) / 30),
    explorer: `https://www.blockchain.com/explorer/assets/${c.csv.symbol.toLowerCase()}`,
  };
}

/** A number as a plain decimal string with exactly 16 decimals, from 15 significant digits. */
function dec16(x) {
  const [mantissa, exp = "0"] = Math.abs(x).toPrecision(15).split("e");
  const [intPart, frac = ""] = mantissa.split(".");
  let digits = intPart + frac;
  let point = intPart.length + Number(exp);
  if (point <= 0) {
    digits = "0".repeat(1 - point) + digits;
    point = 1;
  }
  digits = digits.padEnd(point, "0");
  const whole = digits.slice(0, point).replace(/^0+(?=\d)/, "");
  const out = `${whole}.${digits.slice(point).padEnd(16, "0").slice(0, 16)}`;
  return x < 0 && /[1-9]/.test(out) ? `-${out}` : out;
}

const csvCell = (v) => (v === null || v === undefined ? "" : `"${String(v).replaceAll('"', '""')}"`);

function writeJson(path, value) {
  const url = new URL(path, root);
  mkdirSync(new URL("./", url), { recursive: true });
  writeFileSync(url, `${JSON.stringify(value, null, 2)}\n`);
}

// --- CoinGecko /coins/markets: market cap desc, 250 per page; invalid records come last, as unranked
// coins do upstream.
const markets = identities
  .filter((c) => c.coingecko)
  .map(coingeckoRecord)
  .sort((a, b) => b.market_cap - a.market_cap || a.id.localeCompare(b.id));
for (let i = 1; i < markets.length; i++) {
  if (markets[i].market_cap_rank < markets[i - 1].market_cap_rank) {
    throw new Error(`coingecko rank order broken at ${markets[i - 1].id} / ${markets[i].id}: adjust identities.json`);
  }
}
const invalidMarkets = [
  {
    ...coingeckoRecord(unlisted("bitconnect", "BCC", "BitConnect")),
    current_price: null,
    market_cap: 0,
    market_cap_rank: null,
  },
  { ...coingeckoRecord(unlisted("safemoon-2", "SFM", "SafeMoon")), current_price: -0.0000121, market_cap_rank: null },
];
const allMarkets = [...markets, ...invalidMarkets];
rmSync(new URL("data/coingecko/", root), { recursive: true, force: true });
const pages = Math.ceil(allMarkets.length / PAGE_SIZE);
for (let page = 1; page <= pages; page++) {
  writeJson(`data/coingecko/markets-page-${page}.json`, allMarkets.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE));
}

// --- CoinPaprika /tickers: rank order; inactive coins carry rank 0 and can lack a price.
const tickers = identities
  .filter((c) => c.coinpaprika)
  .map(coinpaprikaRecord)
  .sort((a, b) => a.rank - b.rank);
const deadTicker = coinpaprikaRecord(unlisted("bcc-bitconnect", "BCC", "Bitconnect"));
deadTicker.quotes.USD.price = null;
writeJson("data/coinpaprika/tickers.json", [...tickers, deadTicker]);

// --- CoinCap-style CSV: market cap order, rank by position; two bad rows show row-level rejection.
const rows = identities
  .filter((c) => c.csv)
  .map(csvRecord)
  .sort((a, b) => b.marketCapUsd - a.marketCapUsd || a.id.localeCompare(b.id));
const badPrice = { ...csvRecord(unlisted("bitconnect", "BCC", "BitConnect")), priceUsd: "N/A" };
const noIdentity = { ...csvRecord(unlisted("", "", "Unnamed Token", 0.0123)), explorer: "" };
// Mid-file, so a reader has to skip the bad row rather than stop at it.
rows.splice(40, 0, badPrice);
rows.push(noIdentity);
const numeric = ["supply", "maxSupply", "marketCapUsd", "volumeUsd24Hr", "priceUsd", "changePercent24Hr", "vwap24Hr"];
const header = ["id", "rank", "symbol", "name", ...numeric, "explorer", "timestamp"];
const lines = rows.map((row, i) => {
  const cells = { ...row, rank: i + 1, timestamp: RECORDED_MS };
  for (const k of numeric) if (typeof cells[k] === "number") cells[k] = dec16(cells[k]);
  return header.map((k) => csvCell(cells[k])).join(",");
});
mkdirSync(new URL("data/csv/", root), { recursive: true });
writeFileSync(new URL("data/csv/sample.csv", root), `${header.join(",")}\n${lines.join("\n")}\n`);

// --- FX rates (reference data, fetched with each run): CoinGecko /exchange_rates (units per 1 BTC,
// from its recorded BTC price) and CoinPaprika's BTC ticker in a few quote currencies. The rates per
// USD are illustrative, the providers' gap (a few tenths of a percent) seeded.
const FX = [
  // code, CoinGecko's name, unit, type, units per 1 USD
  ["usd", "US Dollar", "$", "fiat", 1],
  ["eur", "Euro", "€", "fiat", 0.9231],
  ["gbp", "British Pound Sterling", "£", "fiat", 0.7862],
  ["jpy", "Japanese Yen", "¥", "fiat", 151.37],
  ["chf", "Swiss Franc", "Fr.", "fiat", 0.8813],
  ["cad", "Canadian Dollar", "CA$", "fiat", 1.3942],
  ["aud", "Australian Dollar", "A$", "fiat", 1.5311],
  ["nzd", "New Zealand Dollar", "NZ$", "fiat", 1.6802],
  ["cny", "Chinese Yuan", "¥", "fiat", 7.2413],
  ["hkd", "Hong Kong Dollar", "HK$", "fiat", 7.7812],
  ["sgd", "Singapore Dollar", "S$", "fiat", 1.3421],
  ["inr", "Indian Rupee", "₹", "fiat", 84.21],
  ["krw", "South Korean Won", "₩", "fiat", 1392.5],
  ["brl", "Brazil Real", "R$", "fiat", 5.781],
  ["mxn", "Mexican Peso", "$", "fiat", 20.31],
  ["sek", "Swedish Krona", "kr", "fiat", 10.92],
  ["nok", "Norwegian Krone", "kr", "fiat", 11.08],
  ["dkk", "Danish Krone", "kr.", "fiat", 6.886],
  ["pln", "Polish Zloty", "zł", "fiat", 4.071],
  ["czk", "Czech Koruna", "Kč", "fiat", 23.31],
  ["huf", "Hungarian Forint", "Ft", "fiat", 371.8],
  ["try", "Turkish Lira", "₺", "fiat", 34.52],
  ["zar", "South African Rand", "R", "fiat", 18.12],
  ["ils", "Israeli New Shekel", "₪", "fiat", 3.721],
  ["aed", "United Arab Emirates Dirham", "DH", "fiat", 3.6725],
  ["sar", "Saudi Riyal", "SR", "fiat", 3.75],
  ["thb", "Thai Baht", "฿", "fiat", 34.41],
  ["idr", "Indonesian Rupiah", "Rp", "fiat", 15850],
  ["php", "Philippine Peso", "₱", "fiat", 58.31],
  ["vnd", "Vietnamese đồng", "₫", "fiat", 25310],
  ["twd", "New Taiwan Dollar", "NT$", "fiat", 32.41],
  ["ngn", "Nigerian Naira", "₦", "fiat", 1650.2],
  ["uah", "Ukrainian hryvnia", "₴", "fiat", 41.23],
  ["ars", "Argentine Peso", "$", "fiat", 980.5],
  ["clp", "Chilean Peso", "CLP$", "fiat", 941.2],
  ["xdr", "IMF Special Drawing Rights", "XDR", "fiat", 0.7512],
  ["xau", "Gold - Troy Ounce", "XAU", "commodity", 1 / 2650],
  ["xag", "Silver - Troy Ounce", "XAG", "commodity", 1 / 31.2],
];
const PAPRIKA_FX = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "PLN", "KRW", "BRL"];
{
  const btcGecko = markets.find((m) => m.id === "bitcoin").current_price;
  const ethGecko = markets.find((m) => m.id === "ethereum")?.current_price;
  const rates = { btc: { name: "Bitcoin", unit: "BTC", value: 1, type: "crypto" } };
  if (ethGecko) rates.eth = { name: "Ether", unit: "ETH", value: sig(btcGecko / ethGecko, 10), type: "crypto" };
  for (const [code, name, unit, type, perUsd] of FX) rates[code] = { name, unit, value: sig(btcGecko * perUsd, 12), type };
  rates.bits = { name: "Bits", unit: "μBTC", value: 1_000_000, type: "crypto" };
  rates.sats = { name: "Satoshi", unit: "sats", value: 100_000_000, type: "crypto" };
  writeJson("data/coingecko/exchange_rates.json", { rates });

  const btc = tickers.find((t) => t.id === "btc-bitcoin");
  const usd = btc.quotes.USD;
  const money = ["price", "volume_24h", "market_cap", "ath_price"];
  const quotes = {};
  for (const code of PAPRIKA_FX) {
    const perUsd = FX.find(([c]) => c === code.toLowerCase())[4];
    const gap = code === "USD" ? 1 : 1 + between(rng("fx:coinpaprika", code), -0.003, 0.003);
    quotes[code] = {
      ...usd,
      ...Object.fromEntries(money.filter((k) => typeof usd[k] === "number").map((k) => [k, sig(usd[k] * perUsd * gap, 12)])),
    };
  }
  writeJson("data/coinpaprika/tickers-btc-bitcoin.json", { ...btc, quotes });
}

/** A coin outside the identity set, used only for the invalid records. */
function unlisted(id, symbol, name, price = 0.0005) {
  const entry = { id, name, symbol };
  return {
    key: `unlisted:${id || name}`,
    symbol,
    price,
    coingecko: { ...entry, symbol: symbol.toLowerCase(), rank: 9000 },
    coinpaprika: { ...entry, rank: 0 },
    csv: entry,
  };
}

console.log(
  `coingecko: ${allMarkets.length} records (${invalidMarkets.length} invalid) in ${pages} pages; ` +
    `coinpaprika: ${tickers.length + 1} tickers (1 invalid); csv: ${rows.length} rows (2 bad)`,
);
