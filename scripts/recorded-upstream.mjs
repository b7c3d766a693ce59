// Serves the recorded payloads in data/ the way CoinGecko and CoinPaprika serve live ones, on
// loopback, so the Worker runs its real HTTP clients with no internet.
//   GET /api/v3/coins/markets?page=N -> data/coingecko/markets-page-N.json (or [] past the end)
//   GET /v1/tickers                  -> data/coinpaprika/tickers.json
//   GET /api/v3/exchange_rates       -> coingecko/exchange_rates.json, and
//   GET /v1/tickers/btc-bitcoin      -> coinpaprika/tickers-btc-bitcoin.json (the quotes asked for), where present
//   GET /api/v3/coins/list?include_platform=true -> coingecko/coins-list.json, GET /v1/contracts ->
//   coinpaprika/contracts.json, GET /v1/contracts/{platform} -> coinpaprika/contracts/{platform}.json, where present
//
// Sample ticks: data/ holds one recorded moment. To give the local stack a price history, the
// server can be set to a past tick (`server.setTick(tick)`), and then answers the same payloads
// moved to that tick: every timestamp set to the tick's time, every price (and the market cap,
// volume and 24 h high/low with it) multiplied by a seeded random walk. The walk is the same for a
// coin on every source (keyed by its identity in test/fixtures/identities.json) plus a provider
// noise of about 0.1%, and it starts at exactly the recorded prices on the oldest tick, so sources
// are matched on the recorded figures. These are sample numbers, not market history: every
// answer during a tick carries `x-sample-tick`.
import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { mulberry32 } from "./prng.mjs";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "data");
const identitiesFile = path.resolve(root, "..", "test", "fixtures", "identities.json");

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

/**
 * The past ticks replayed on first start, oldest first, the last one at `now`: 30 days back, then
 * each tick 0.45 times as far back as the one before, down to 15 minutes, then every 5 minutes.
 * 13 ticks, the steps growing with age, so 24 h, 7 d and 30 d each show a line (8, 11 and 12
 * points) for 13 runs per source.
 */
export function sampleSchedule(now = Date.now()) {
  const end = Math.floor(now / MIN) * MIN;
  const offsets = [];
  for (let o = 30 * DAY; o >= 15 * MIN; o *= 0.45) offsets.push(Math.round(o / MIN) * MIN);
  offsets.push(10 * MIN, 5 * MIN, 0);
  return offsets.map((o, index) => ({ index, count: offsets.length, at: end - o, offset: o }));
}

// Daily volatility of the walk's parts (log price): a market move every coin shares, a coin's own
// move, and one provider's noise around the coin. Coins priced within 3% of $1 (pegs) stay pegged.
const MARKET_VOL = 0.02;
const COIN_VOL = 0.025;
const PEG_VOL = 0.0005;
const PROVIDER_NOISE = 0.001;

const seeded = (label) => mulberry32(createHash("sha256").update(label).digest().readUInt32BE(0));
function gaussian(r) {
  const u = 1 - r();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}

/** Log-price walk over the schedule's steps, 0 at the first tick. */
function walk(label, schedule, dailyVol) {
  const r = seeded(label);
  const out = [0];
  for (let i = 1; i < schedule.length; i++) {
    const days = (schedule[i].at - schedule[i - 1].at) / DAY;
    out.push(out[i - 1] + gaussian(r) * dailyVol * Math.sqrt(days));
  }
  return out;
}

let identityIndex = null;
/** (source, source id) -> the coin's identity key and reference price. */
function identities() {
  if (identityIndex) return identityIndex;
  identityIndex = new Map();
  const list = fs.existsSync(identitiesFile) ? JSON.parse(fs.readFileSync(identitiesFile, "utf8")) : [];
  for (const c of list)
    for (const source of ["coingecko", "coinpaprika", "csv"]) if (c[source]?.id) identityIndex.set(`${source}:${c[source].id}`, c);
  return identityIndex;
}

/** A price factor per (source, id) at a tick of `schedule`: exp(market + coin + provider noise). */
export function priceModel(schedule) {
  const market = walk("sample:market", schedule, MARKET_VOL);
  const cache = new Map();
  return (source, id, recordedPrice, tickIndex) => {
    if (tickIndex === 0) return 1;
    const coin = identities().get(`${source}:${id}`);
    const key = coin?.key ?? `${source}:${id}`;
    const ref = coin?.price ?? recordedPrice;
    const peg = typeof ref === "number" && Math.abs(ref - 1) <= 0.03;
    const cacheKey = `${source}:${key}`;
    if (!cache.has(cacheKey)) {
      const own = walk(`sample:coin:${key}`, schedule, peg ? PEG_VOL : COIN_VOL);
      const r = seeded(`sample:${source}:${key}`);
      cache.set(
        cacheKey,
        own.map((v, i) => (i ? v + (peg ? 0 : market[i]) + gaussian(r) * PROVIDER_NOISE : 0)),
      );
    }
    return Math.exp(cache.get(cacheKey)[tickIndex]);
  };
}

const scale = (v, f) => (typeof v === "number" && Number.isFinite(v) ? Number((v * f).toPrecision(12)) : v);
/** A decimal string times f, written as the sample writes numbers: 15 significant digits, 16 decimals. */
const scaleDecimal = (s, f) => {
  const n = Number(s);
  if (s === "" || !Number.isFinite(n)) return s;
  const [int, frac = ""] = Number((n * f).toPrecision(15))
    .toLocaleString("en-US", { useGrouping: false, maximumFractionDigits: 16 })
    .split(".");
  return `${int}.${frac.padEnd(16, "0")}`;
};

/** A CoinGecko /coins/markets page moved to a tick. */
export function coingeckoAt(records, tick, factor) {
  const iso = new Date(tick.at).toISOString();
  return records.map((r) => {
    const f = factor("coingecko", r.id, r.current_price, tick.index);
    return {
      ...r,
      current_price: scale(r.current_price, f),
      market_cap: scale(r.market_cap, f),
      fully_diluted_valuation: scale(r.fully_diluted_valuation, f),
      total_volume: scale(r.total_volume, f),
      high_24h: scale(r.high_24h, f),
      low_24h: scale(r.low_24h, f),
      last_updated: iso,
    };
  });
}

/** CoinPaprika /tickers moved to a tick. */
export function coinpaprikaAt(records, tick, factor) {
  const iso = new Date(tick.at).toISOString().replace(".000Z", "Z");
  return records.map((r) => {
    const usd = r.quotes?.USD ?? {};
    const f = factor("coinpaprika", r.id, usd.price, tick.index);
    return {
      ...r,
      last_updated: iso,
      quotes: {
        ...r.quotes,
        USD: { ...usd, price: scale(usd.price, f), market_cap: scale(usd.market_cap, f), volume_24h: scale(usd.volume_24h, f) },
      },
    };
  });
}

/** The CoinCap-style sample CSV moved to a tick (its quoting and 16-decimal numbers kept). */
export function csvAt(text, tick, factor) {
  const [header, ...lines] = text.replace(/\n$/, "").split("\n");
  const cols = header.split(",");
  const at = (name) => cols.indexOf(name);
  const [id, price, cap, vol, vwap, ts] = ["id", "priceUsd", "marketCapUsd", "volumeUsd24Hr", "vwap24Hr", "timestamp"].map(at);
  const body = lines.map((line) => {
    // No cell of the sample holds a comma or a quote; a cell is quoted or empty.
    const raw = line.split(",");
    const cells = raw.map((c) => c.replace(/^"|"$/g, ""));
    const f = factor("csv", cells[id], Number(cells[price]), tick.index);
    for (const k of [price, cap, vol, vwap]) cells[k] = scaleDecimal(cells[k], f);
    cells[ts] = String(tick.at);
    return cells.map((c, i) => (raw[i].startsWith('"') ? `"${c}"` : c)).join(",");
  });
  return `${header}\n${body.join("\n")}\n`;
}

export function startRecordedUpstream(port = 8789, dir = root) {
  let tick = null;
  let factor = null;
  const read = (file) => (fs.existsSync(file) ? fs.readFileSync(file) : Buffer.from("[]"));
  const readIf = (file) => (fs.existsSync(file) ? fs.readFileSync(file) : null);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    let body = null;
    if (url.pathname === "/api/v3/coins/markets") {
      body = read(path.join(dir, "coingecko", `markets-page-${Number(url.searchParams.get("page") ?? 1)}.json`));
      if (tick) body = Buffer.from(JSON.stringify(coingeckoAt(JSON.parse(body), tick, factor)));
    } else if (url.pathname === "/v1/tickers") {
      body = read(path.join(dir, "coinpaprika", "tickers.json"));
      if (tick) body = Buffer.from(JSON.stringify(coinpaprikaAt(JSON.parse(body), tick, factor)));
    } else if (url.pathname === "/api/v3/exchange_rates") {
      // FX rates, where a recorded payload exists (the Worker's FX call fails softly without one).
      body = readIf(path.join(dir, "coingecko", "exchange_rates.json"));
    } else if (url.pathname === "/v1/tickers/btc-bitcoin") {
      body = readIf(path.join(dir, "coinpaprika", "tickers-btc-bitcoin.json"));
      const wanted = (url.searchParams.get("quotes") ?? "USD").split(",").map((q) => q.trim().toUpperCase());
      if (body) {
        const ticker = JSON.parse(body);
        ticker.quotes = Object.fromEntries(Object.entries(ticker.quotes ?? {}).filter(([code]) => wanted.includes(code)));
        body = Buffer.from(JSON.stringify(ticker));
      }
    } else if (url.pathname === "/api/v3/coins/list" && url.searchParams.get("include_platform") === "true") {
      // Contract lists, where a payload exists (without one the Worker records the refresh as failed and keeps what it has).
      body = readIf(path.join(dir, "coingecko", "coins-list.json"));
    } else if (url.pathname === "/v1/contracts") {
      body = readIf(path.join(dir, "coinpaprika", "contracts.json"));
    } else if (url.pathname.startsWith("/v1/contracts/")) {
      const platform = decodeURIComponent(url.pathname.slice("/v1/contracts/".length));
      if (/^[A-Za-z0-9._-]+$/.test(platform)) body = readIf(path.join(dir, "coinpaprika", "contracts", `${platform}.json`));
    }
    if (!body) {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"unknown endpoint"}');
      return;
    }
    const headers = { "content-type": "application/json", "x-recorded-data": "true" };
    if (tick) headers["x-sample-tick"] = `${tick.index + 1}/${tick.count} at ${new Date(tick.at).toISOString()} (sample prices)`;
    res.writeHead(200, headers).end(body);
  });
  /** Serve the payloads moved to `next` (an entry of `schedule`), or as recorded with null. */
  server.setTick = (next, schedule) => {
    if (next && (!factor || server.schedule !== schedule)) factor = priceModel(schedule);
    server.schedule = schedule;
    tick = next;
  };
  /** The sample CSV as it reads at the current tick (as recorded with none). */
  server.csv = () => {
    const text = fs.readFileSync(path.join(dir, "csv", "sample.csv"), "utf8");
    return tick ? csvAt(text, tick, factor) : text;
  };
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const port = Number(process.env.UPSTREAM_PORT ?? process.env.PORT ?? 8789);
  await startRecordedUpstream(port);
  console.log(`recorded upstream on http://127.0.0.1:${port} (from ${root})`);
}
