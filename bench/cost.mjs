// What a schedule costs on Cloudflare: a fresh local stack ingests a synthetic market once, then
// one steady tick (every quote 5 minutes newer, every price moved), then the same tick again.
// Each run's own `usage` (the D1 binding's meta, R2/KV/Queue calls) gives rows per quote, and the
// steady tick times the schedule gives the month on Workers Paid.
//   node bench/cost.mjs [--coingecko 5000] [--coinpaprika 2000] [--shared 2000] [--interval 5]
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { startRecordedUpstream } from "../scripts/recorded-upstream.mjs";
import { call, emit, fail, median, quantile, root, sleep, startWorker, TOKEN, upstreamVars, waitFinished } from "./lib.mjs";
import { monthlyBill } from "./prices.mjs";
import { coin, geckoMarket, paprikaTicker, writeContractLists } from "./upstream-gen.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const scale = { coingecko: arg("coingecko", 5000), coinpaprika: arg("coinpaprika", 2000), shared: arg("shared", 2000) };
const intervalMinutes = arg("interval", 5);
const dir = path.join(root, "bench", "out", "cost-upstream");

/** The market at `tick`: every record `tick` five-minute steps later, its price moved by a small per-coin factor. */
function writeMarket(tick) {
  const at = new Date(Date.parse("2026-11-22T12:00:00Z") + tick * 300_000).toISOString();
  const move = (c) => ({ ...c, price: c.price * (1 + (((c.i * 7 + tick * 13) % 11) - 5) * 0.0008 + tick * 1e-6) });
  const paprika = [];
  for (let i = 0; i < scale.coinpaprika; i++) paprika.push({ ...paprikaTicker(move(coin(i)), i + 1), last_updated: at });
  const geckoIdx = [];
  for (let i = 0; i < scale.shared; i++) geckoIdx.push(i);
  for (let i = scale.coinpaprika; geckoIdx.length < scale.coingecko; i++) geckoIdx.push(i);
  const gecko = geckoIdx.map((i, k) => ({ ...geckoMarket(move(coin(i)), k + 1), last_updated: at }));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, "coinpaprika"), { recursive: true });
  fs.mkdirSync(path.join(dir, "coingecko"), { recursive: true });
  fs.writeFileSync(path.join(dir, "coinpaprika", "tickers.json"), JSON.stringify(paprika));
  writeRates(tick);
  for (let p = 0; p * 250 < gecko.length; p++)
    fs.writeFileSync(path.join(dir, "coingecko", `markets-page-${p + 1}.json`), JSON.stringify(gecko.slice(p * 250, (p + 1) * 250)));
}

/**
 * The FX payloads each run fetches with its first page, shaped as the providers send them: CoinGecko's
 * /exchange_rates (per 1 BTC; as many currencies as its real list, about 60) and CoinPaprika's BTC
 * ticker in USD, EUR and GBP. BTC moves each tick, and every rate with it.
 */
function writeRates(tick) {
  const btc = 90_000 * (1 + tick * 0.0013);
  const fiat =
    "usd aed ars aud bdt bhd bmd brl cad chf clp cny czk dkk eur gbp gel hkd huf idr ils inr jpy krw kwd lkr mmk mxn myr ngn nok nzd php pkr pln rub sar sek sgd thb try twd uah vef vnd zar xdr".split(
      " ",
    );
  const rates = { btc: { name: "Bitcoin", unit: "BTC", value: 1, type: "crypto" } };
  fiat.forEach((code, i) => {
    const perUsd = code === "usd" ? 1 : 0.3 + ((i * 37) % 97) * (1 + tick * 0.0002);
    rates[code] = { name: code.toUpperCase(), unit: code.toUpperCase(), value: btc * perUsd, type: "fiat" };
  });
  for (const [code, perBtc] of [
    ["eth", 30],
    ["ltc", 900],
    ["bch", 200],
    ["bnb", 150],
    ["xrp", 40_000],
    ["bits", 1e6],
    ["sats", 1e8],
  ])
    rates[code] = { name: code.toUpperCase(), unit: code.toUpperCase(), value: perBtc, type: "crypto" };
  for (const [code, perUsd] of [
    ["xau", 1 / 2650],
    ["xag", 1 / 31],
  ])
    rates[code] = { name: code, unit: code.toUpperCase(), value: btc * perUsd, type: "commodity" };
  fs.writeFileSync(path.join(dir, "coingecko", "exchange_rates.json"), JSON.stringify({ rates }));
  const quote = (perUsd) => ({ price: btc * perUsd, volume_24h: 3e10 * perUsd, market_cap: 1.8e12 * perUsd });
  const ticker = {
    id: "btc-bitcoin",
    name: "Bitcoin",
    symbol: "BTC",
    quotes: { USD: quote(1), EUR: quote(rates.eur.value / btc), GBP: quote(rates.gbp.value / btc) },
  };
  fs.writeFileSync(path.join(dir, "coinpaprika", "tickers-btc-bitcoin.json"), JSON.stringify(ticker));
}

/** The providers' contract lists for the same coins (written after each market, which clears the directory). */
function writeLists(round) {
  const geckoIdx = [];
  for (let i = 0; i < scale.shared; i++) geckoIdx.push(i);
  for (let i = scale.coinpaprika; geckoIdx.length < scale.coingecko; i++) geckoIdx.push(i);
  return writeContractLists(dir, geckoIdx, [...Array(scale.coinpaprika).keys()], { round });
}

const UPSTREAM_PORT = 18821;
/**
 * Rows written per quote by a tick that repeats the last one. 0.01 until each page took a page lease
 * (one row a page, so a redelivered page is fetched, stored and counted once) and each run fetched
 * FX rates (two rows a run): at this scale that is 24 + 4 rows a tick, 0.004 a quote.
 */
const REPEAT_GOAL = 0.012;
writeMarket(0);
let lists = writeLists(1);
const upstream = await startRecordedUpstream(UPSTREAM_PORT, dir);
// The quote ticks first, with the contract refresh off, so their figures are the quotes' alone.
let worker = await startWorker({ name: "cost", port: 18820, vars: { ...upstreamVars(UPSTREAM_PORT), IDENTITY_REFRESH_HOURS: "0" } });

/** Runs both HTTP sources one after the other and sums what their runs cost. */
async function tick(label) {
  const runs = [];
  const t0 = performance.now();
  for (const source of ["coinpaprika", "coingecko"]) {
    const post = await call(worker.base, "POST", `/etl/run/${source}`, { token: TOKEN });
    if (post.status !== 202) throw new Error(`POST /etl/run/${source}: ${post.status} ${post.text.slice(0, 200)}`);
    runs.push(await waitFinished(worker.base, `/etl/runs/${post.json.data.run_id}`));
  }
  const seconds = (performance.now() - t0) / 1000;
  for (const r of runs) if (r.status !== "succeeded") fail("cost", `${label}: ${r.source} ended ${r.status}`, { error: r.error });
  const usage = {};
  for (const r of runs) for (const [k, v] of Object.entries(r.usage)) usage[k] = (usage[k] ?? 0) + v;
  const quotes = runs.reduce((n, r) => n + r.records.fetched, 0);
  const written = runs.reduce((n, r) => n + r.records.written, 0);
  const line = {
    bench: "cost_tick",
    tick: label,
    quotes,
    quotes_written: written,
    seconds: +seconds.toFixed(2),
    records_per_s: Math.round(quotes / seconds),
    ...usage,
    d1_rows_written_per_quote: +(usage.d1_rows_written / quotes).toFixed(4),
    d1_rows_read_per_quote: +(usage.d1_rows_read / quotes).toFixed(3),
  };
  emit(line);
  return line;
}

try {
  const first = await tick("first");
  writeMarket(1);
  writeLists(1);
  const steady = await tick("steady");
  const repeat = await tick("repeat");
  // The archive stores each body gzipped at level 1, as the Worker does (src/lib/raw-archive.ts).
  const bill = monthlyBill({ tick: steady, intervalMinutes, rawBytesPerTick: gzippedBytes(dir) });
  emit({ bench: "cost_month", scale, interval_minutes: intervalMinutes, ...bill });
  emit({
    bench: "cost_goals",
    steady_rows_written_per_quote: steady.d1_rows_written_per_quote,
    steady_goal: 0.83,
    repeat_rows_written_per_quote: repeat.d1_rows_written_per_quote,
    repeat_goal: REPEAT_GOAL,
    steady_rows_read_per_quote: steady.d1_rows_read_per_quote,
    read_goal: 5,
    first_records_per_s: first.records_per_s,
  });
  if (steady.d1_rows_written_per_quote > 0.83) fail("cost", "a steady tick writes more than 0.83 D1 rows per quote");
  if (repeat.d1_rows_written_per_quote > REPEAT_GOAL) fail("cost", `a repeated tick writes more than ${REPEAT_GOAL} D1 rows per quote`);
  if (steady.d1_rows_read_per_quote > 5) fail("cost", "a tick reads more than 5 D1 rows per quote");
  await contractCosts(repeat);
} finally {
  worker.stop();
  upstream.close();
}

/**
 * Contract lists (SPEC §3 reference data) on the same stack, restarted with every run's lists due:
 * the market repeats tick 1, so what a run costs beyond the repeated tick (`base`) is its refresh.
 * The first refresh loads every list, the next finds them unchanged, the third with about 1 % moved.
 * Then lookups by contract and the crosswalk export on the loaded stack.
 */
async function contractCosts(base) {
  worker.stop();
  await sleep(2000);
  worker = await startWorker({
    name: "cost",
    port: 18820,
    keepState: true,
    vars: { ...upstreamVars(UPSTREAM_PORT), IDENTITY_REFRESH_HOURS: "0.0001" },
  });
  const refresh = (t) =>
    Object.fromEntries(["d1_rows_written", "d1_rows_read", "r2_reads", "r2_writes", "queue_messages"].map((k) => [k, t[k] - base[k]]));
  const stored = lists.coingecko_contracts + lists.coinpaprika_contracts;
  const initial = refresh(await tick("contracts_initial"));
  const unchanged = refresh(await tick("contracts_unchanged"));
  lists = writeLists(2);
  const changed = refresh(await tick("contracts_changed"));
  emit({
    bench: "cost_contracts",
    lists,
    initial,
    initial_rows_written_per_contract: +(initial.d1_rows_written / stored).toFixed(3),
    unchanged,
    changed,
  });
  // About two rows a message (its part, its page lease: a step is left to the delivery that holds it, as a page is)
  // and the refresh's row; at the default schedule a refresh runs once a day.
  const UNCHANGED_REFRESH_ROWS = 30;
  if (unchanged.d1_rows_written > UNCHANGED_REFRESH_ROWS) {
    fail("cost", `an unchanged contract refresh writes more than ${UNCHANGED_REFRESH_ROWS} D1 rows`);
  }

  // Lookups: contracts of coins with markets, one at a time and 250 at once.
  const list = JSON.parse(fs.readFileSync(path.join(dir, "coingecko", "coins-list.json"), "utf8"));
  const markets = new Set(
    fs
      .readdirSync(path.join(dir, "coingecko"))
      .filter((f) => f.startsWith("markets-"))
      .flatMap((f) => JSON.parse(fs.readFileSync(path.join(dir, "coingecko", f), "utf8")).map((m) => m.id)),
  );
  const chainOf = {
    ethereum: "ethereum",
    "binance-smart-chain": "bsc",
    "polygon-pos": "polygon",
    solana: "solana",
    "arbitrum-one": "arbitrum",
    base: "base",
  };
  const pairs = list
    .filter((c) => markets.has(c.id))
    .flatMap((c) => Object.entries(c.platforms).flatMap(([p, a]) => (chainOf[p] && a ? [`${chainOf[p]}:${a}`] : [])));
  const timed = async (path_, n) => {
    const ms = [];
    let found = 0;
    let rowsRead = 0;
    for (let k = 0; k < n; k++) {
      const t0 = performance.now();
      const res = await fetch(`${worker.base}${path_(k)}`);
      const body = await res.json();
      ms.push(performance.now() - t0);
      found += body.data.length;
      rowsRead += Number(/rows_read=(\d+)/.exec(res.headers.get("server-timing") ?? "")?.[1] ?? 0);
    }
    return {
      requests: n,
      p50_ms: +median(ms).toFixed(1),
      p95_ms: +quantile(ms, 0.95).toFixed(1),
      assets_found: found,
      d1_rows_read_per_request: Math.round(rowsRead / n),
    };
  };
  const one = await timed((k) => `/data?contract=${encodeURIComponent(pairs[(k * 7) % pairs.length])}`, 200);
  const many = await timed(
    (k) =>
      `/data?page_size=250&contract=${encodeURIComponent(pairs.slice((k * 250) % (pairs.length - 250), ((k * 250) % (pairs.length - 250)) + 250).join(","))}`,
    30,
  );
  emit({ bench: "contract_lookup", one_contract: one, contracts_250: many });

  for (const format of ["csv", "ndjson"]) {
    const t0 = performance.now();
    const res = await fetch(`${worker.base}/mappings/export?format=${format}`);
    const text = await res.text();
    emit({
      bench: "mappings_export",
      format,
      status: res.status,
      rows: text.trim().split("\n").length - (format === "csv" ? 1 : 0),
      bytes: text.length,
      seconds: +((performance.now() - t0) / 1000).toFixed(2),
    });
  }
}

/** Gzipped bytes (level 1, the archive's) a tick archives: the market pages, tickers and FX payloads (contract lists are fetched once a day, not per tick). */
function gzippedBytes(d) {
  let n = 0;
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    if (e.isDirectory()) n += e.name === "contracts" ? 0 : gzippedBytes(path.join(d, e.name));
    else if (!/^(coins-list|contracts)/.test(e.name)) n += zlib.gzipSync(fs.readFileSync(path.join(d, e.name)), { level: 1 }).length;
  }
  return n;
}
