import { SOURCES } from "../config";
import type { StoredRate } from "../db/schema";
import type { CurrencyType } from "../sources/fx";
import { median } from "./averages";
import { groupBy } from "./group-by";

/** A currency as GET /currencies serves it. */
export type Currency = {
  code: string;
  name: string;
  type: CurrencyType;
  unit: string | null;
  usd_rate: number;
  as_of: string | null;
  sources: string[];
};

const SOURCE_ORDER: readonly string[] = SOURCES;
const bySourceOrder = (a: string, b: string) => SOURCE_ORDER.indexOf(a) - SOURCE_ORDER.indexOf(b);

/**
 * The rate of one currency from each source's latest: the median of the sources whose rate was
 * fetched no more than `staleMs` before the freshest one's (measured against that freshest rate, not
 * the clock, so a source-wide outage leaves the last rates in force).
 */
function fxConsensus(latest: { source: string; r: number; t: number }[], staleMs: number) {
  const freshest = Math.max(...latest.map((x) => x.t));
  const used = latest.filter((x) => freshest - x.t <= staleMs).sort((a, b) => bySourceOrder(a.source, b.source));
  return { rate: median(used.map((x) => x.r))!, t: freshest, sources: used.map((x) => x.source) };
}

/** Every currency any source has quoted, with its consensus rate; USD is 1 by definition. */
export function currencies(rows: { source: string; rates: Record<string, StoredRate> }[], staleMs: number): Currency[] {
  const byCode = groupBy(
    [...rows]
      .sort((a, b) => bySourceOrder(a.source, b.source))
      .flatMap((row) => Object.entries(row.rates).map(([code, rate]) => ({ code, source: row.source, rate }))),
    (e) => e.code,
  );
  const out: Currency[] = [];
  for (const [code, entries] of byCode) {
    const c = fxConsensus(
      entries.map((e) => ({ source: e.source, r: e.rate.r, t: e.rate.t })),
      staleMs,
    );
    const described = entries.find((e) => e.rate.k)?.rate;
    out.push({
      code,
      name: entries.find((e) => e.rate.n)?.rate.n ?? nameOf(code),
      type: described?.k ?? typeOf(code),
      unit: entries.find((e) => e.rate.u)?.rate.u ?? null,
      usd_rate: code === "usd" ? 1 : c.rate,
      as_of: new Date(c.t).toISOString(),
      sources: c.sources,
    });
  }
  if (!byCode.has("usd")) {
    const newest = Math.max(...rows.flatMap((r) => Object.values(r.rates).map((x) => x.t)));
    out.push({
      code: "usd",
      name: "US Dollar",
      type: "fiat",
      unit: "$",
      usd_rate: 1,
      as_of: Number.isFinite(newest) ? new Date(newest).toISOString() : null,
      sources: [],
    });
  }
  const order: CurrencyType[] = ["fiat", "crypto", "commodity"];
  return out.sort((a, b) => order.indexOf(a.type) - order.indexOf(b.type) || (a.code < b.code ? -1 : 1));
}

/** Crypto units a quote-currency list may hold (CoinPaprika quotes BTC and ETH); anything else unnamed is taken as fiat. */
const CRYPTO: Record<string, string> = { btc: "Bitcoin", eth: "Ether" };
const typeOf = (code: string): CurrencyType => (code in CRYPTO ? "crypto" : "fiat");

let displayNames: Intl.DisplayNames | null | undefined;
/** A name for a currency no source named: the crypto list, else the ISO 4217 name (Intl), else the code. */
function nameOf(code: string) {
  if (CRYPTO[code]) return CRYPTO[code];
  if (displayNames === undefined) {
    try {
      displayNames = new Intl.DisplayNames(["en"], { type: "currency" });
    } catch {
      displayNames = null;
    }
  }
  try {
    return displayNames?.of(code.toUpperCase()) ?? code.toUpperCase();
  } catch {
    return code.toUpperCase();
  }
}

/**
 * The rate of a currency in force at any time, from each source's points (oldest first): after every
 * point, the consensus of each source's latest point so far (a stale one left out as above). A time
 * before the first point takes the oldest rate. Built once per series; each lookup is a binary search.
 */
export function fxTimeline(series: Map<string, { t: number; r: number }[]>, staleMs: number) {
  const events = [...series].flatMap(([source, points]) => points.map((p) => ({ source, ...p }))).sort((a, b) => a.t - b.t);
  const times: number[] = [];
  const rates: number[] = [];
  const latest = new Map<string, { source: string; r: number; t: number }>();
  for (let i = 0; i < events.length; i++) {
    latest.set(events[i].source, events[i]);
    if (i + 1 < events.length && events[i + 1].t === events[i].t) continue;
    times.push(events[i].t);
    rates.push(fxConsensus([...latest.values()], staleMs).rate);
  }
  return {
    empty: times.length === 0,
    /** The rate in force at `t` (ms). */
    at(t: number) {
      let lo = 0;
      let hi = times.length - 1;
      if (hi < 0) return null;
      if (t < times[0]) return rates[0];
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (times[mid] <= t) lo = mid;
        else hi = mid - 1;
      }
      return rates[lo];
    },
  };
}

/** An amount in USD in a currency: times its rate (units per 1 USD); unknown stays unknown. */
export const convert = (usd: number | null, rate: number) => (usd === null ? null : usd * rate);

/** The amounts of a USD record in a currency, as `price`, `market_cap` and `volume_24h`. */
export const converted = (a: { price_usd: number | null; market_cap_usd: number | null; volume_24h_usd: number | null }, rate: number) => ({
  price: convert(a.price_usd, rate),
  market_cap: convert(a.market_cap_usd, rate),
  volume_24h: convert(a.volume_24h_usd, rate),
});
