// A moving CoinGecko + CoinPaprika on loopback for the soak (bench/soak.mjs). Every request that
// serves markets or tickers moves most records: a newer source timestamp and a new price (the rest
// repeat their last record, as a quiet market does). Faults come at a seeded rate: 429 with
// x-ratelimit-reset, 5xx, truncated JSON bodies, slow answers, and answers that never come.
//
// Every record of a complete 200 body is logged as delivered ({t, price} per source and id), so the
// soak knows the newest record each id was ever served with, and that every served value is real.
import http from "node:http";
import { mulberry32 } from "../scripts/prng.mjs";
import { coin, geckoMarket, paprikaTicker } from "./upstream-gen.mjs";

/** Fault mix per upstream request (fractions of all requests to markets/tickers). */
export const DEFAULT_FAULTS = { r429: 0.08, r5xx: 0.08, truncated: 0.06, slow: 0.12, hang: 0.02 };

/**
 * Starts the mock. `paprika` coins 0..paprika-1 at CoinPaprika; CoinGecko lists the first `overlap`
 * of them and `geckoOnly` coins no other source has (so 2 pages of 250 when gecko > 250).
 * `slowMs` bounds slow answers (keep it well under the Worker's UPSTREAM_TIMEOUT_MS: a slow answer
 * is still delivered); a hang is never answered and its socket is closed after `hangMs`.
 */
export async function startSoakUpstream({
  port = 0,
  seed = 1,
  paprika = 300,
  overlap = 270,
  geckoOnly = 40,
  faults = DEFAULT_FAULTS,
  slowMs = 1500,
  hangMs = 20_000,
  repeatShare = 0.15,
} = {}) {
  const rnd = mulberry32(seed * 7919 + 17);
  const geckoIdx = [...Array.from({ length: overlap }, (_, i) => i), ...Array.from({ length: geckoOnly }, (_, k) => paprika + k)];
  // Base records, generated once (their extra fields stay as generated; price, caps and times move).
  const base = {
    coingecko: geckoIdx.map((i, k) => geckoMarket(coin(i), k + 1)),
    coinpaprika: Array.from({ length: paprika }, (_, i) => paprikaTicker(coin(i), i + 1)),
  };
  const state = { coingecko: new Map(), coinpaprika: new Map() };
  for (const source of ["coingecko", "coinpaprika"]) {
    for (const r of base[source]) {
      const price = source === "coingecko" ? r.current_price : r.quotes.USD.price;
      state[source].set(r.id, { t: Date.now() - 3_600_000, price, moves: 0 });
    }
  }
  /** source -> id -> Map(t -> {price, n}): every record of every complete body served (n: bodies that carried it). */
  const delivered = { coingecko: new Map(), coinpaprika: new Map() };
  const stats = { requests: 0, ok: 0, r429: 0, r5xx: 0, truncated: 0, slow: 0, hang: 0, aborted: 0, other: 0 };
  const sockets = new Set();
  const timers = new Set();

  /** Moves (or repeats) each record of `list` and returns the records as served, with their log entries. */
  function tick(source, list) {
    const now = Date.now();
    const served = [];
    const log = [];
    for (const r of list) {
      const s = state[source].get(r.id);
      if (rnd() >= repeatShare || s.moves === 0) {
        s.t = Math.max(now - Math.floor(rnd() * 400), s.t + 1);
        s.price = Number((s.price * (1 + (rnd() - 0.5) * 0.01)).toPrecision(10));
        s.moves++;
      }
      const iso = new Date(s.t).toISOString();
      const factor = s.price / (source === "coingecko" ? r.current_price : r.quotes.USD.price);
      if (source === "coingecko") {
        served.push({ ...r, current_price: s.price, market_cap: Math.round(r.market_cap * factor), last_updated: iso });
      } else {
        const q = r.quotes.USD;
        served.push({
          ...r,
          last_updated: iso.replace(".000Z", "Z"),
          quotes: { ...r.quotes, USD: { ...q, price: s.price, market_cap: Math.round(q.market_cap * factor) } },
        });
      }
      log.push([r.id, s.t, s.price]);
    }
    return { served, log };
  }

  function record(source, log) {
    for (const [id, t, price] of log) {
      let byT = delivered[source].get(id);
      if (!byT) {
        byT = new Map();
        delivered[source].set(id, byT);
      }
      const e = byT.get(t);
      if (e) e.n++;
      else byT.set(t, { price, n: 1 });
    }
  }

  function pickFault() {
    const x = rnd();
    let acc = 0;
    for (const k of ["r429", "r5xx", "truncated", "slow", "hang"]) {
      acc += faults[k] ?? 0;
      if (x < acc) return k;
    }
    return null;
  }

  const reference = (url) => {
    const p = url.pathname;
    if (p === "/api/v3/exchange_rates")
      return {
        rates: {
          btc: { name: "Bitcoin", unit: "BTC", value: 1, type: "crypto" },
          usd: { name: "US Dollar", unit: "$", value: 90_000, type: "fiat" },
          eur: { name: "Euro", unit: "€", value: 78_000, type: "fiat" },
        },
      };
    if (p === "/api/v3/coins/list") return base.coingecko.map((r) => ({ id: r.id, symbol: r.symbol, name: r.name, platforms: {} }));
    if (p === "/v1/tickers/btc-bitcoin")
      return {
        id: "btc-bitcoin",
        name: "Bitcoin",
        symbol: "BTC",
        last_updated: new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace(".000Z", "Z"),
        quotes: { USD: { price: 90_000 }, EUR: { price: 78_000 } },
      };
    if (p === "/v1/contracts" || p.startsWith("/v1/contracts/")) return [];
    return undefined;
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const source = url.pathname === "/api/v3/coins/markets" ? "coingecko" : url.pathname === "/v1/tickers" ? "coinpaprika" : null;
    if (!source) {
      const doc = reference(url);
      stats.other++;
      res.writeHead(doc === undefined ? 404 : 200, { "content-type": "application/json" });
      res.end(JSON.stringify(doc ?? { error: "not found" }));
      return;
    }
    stats.requests++;
    const fault = pickFault();
    if (fault) stats[fault]++;
    if (fault === "r429") {
      // CoinGecko sends x-ratelimit-reset (and no Retry-After): as an HTTP date or epoch seconds.
      const at = Date.now() + 500 + Math.floor(rnd() * 1500);
      const reset = rnd() < 0.5 ? new Date(at).toUTCString() : String(Math.ceil(at / 1000));
      res.writeHead(429, {
        "content-type": "application/json",
        "x-ratelimit-limit": "30",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": reset,
      });
      res.end(JSON.stringify({ status: { error_code: 429, error_message: "You've exceeded the Rate Limit." } }));
      return;
    }
    if (fault === "r5xx") {
      const status = [500, 502, 503][Math.floor(rnd() * 3)];
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "upstream broke" }));
      return;
    }
    if (fault === "hang") {
      const timer = setTimeout(() => {
        timers.delete(timer);
        req.socket.destroy();
      }, hangMs);
      timers.add(timer);
      return;
    }
    const send = () => {
      let list = base[source];
      if (source === "coingecko") {
        const page = Number(url.searchParams.get("page") ?? 1);
        const per = Math.min(250, Number(url.searchParams.get("per_page") ?? 100));
        list = list.slice((page - 1) * per, page * per);
      }
      const { served, log } = tick(source, list);
      let body = Buffer.from(JSON.stringify(served));
      if (fault === "truncated") body = body.subarray(0, Math.floor(body.length * (0.2 + rnd() * 0.6)));
      // Logged before the bytes go out (a reader may see them stored before 'finish' fires here);
      // taken back if the client went away before the whole body was written.
      const complete = fault !== "truncated";
      if (complete) record(source, log);
      res.on("close", () => {
        if (!res.writableFinished) {
          stats.aborted++;
          if (complete) unrecord(source, log);
        }
      });
      stats.ok++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(body);
    };
    if (fault === "slow") {
      const timer = setTimeout(
        () => {
          timers.delete(timer);
          if (!req.socket.destroyed) send();
        },
        200 + Math.floor(rnd() * (slowMs - 200)),
      );
      timers.add(timer);
    } else send();
  });

  function unrecord(source, log) {
    for (const [id, t] of log) {
      const byT = delivered[source].get(id);
      const e = byT?.get(t);
      if (e && --e.n === 0) byT.delete(t);
    }
  }

  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    port: server.address().port,
    delivered,
    stats,
    ids: { coingecko: base.coingecko.map((r) => r.id), coinpaprika: base.coinpaprika.map((r) => r.id) },
    /** CoinGecko ids no other source lists (pin targets: their assets have no CSV quote). */
    geckoOnlyIds: base.coingecko.slice(overlap).map((r) => r.id),
    close() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
