import { now } from "../../lib/clock";
import { ApiError } from "../../lib/errors";
import { type Currency, currencies, fxTimeline } from "../../lib/fx";
import type { Services } from "../../services";
import { fxSeries, latestFxRates } from "../fx-store";

/**
 * How long an isolate serves its copy of the latest rates before reading them again (a row per
 * source): rates move a little every run (5 minutes), and a read per request would cost more than
 * every other part of a /data page. A request with a copy, however old, never waits for the read:
 * it is served the copy and the read goes on behind it. The isolate that stores new rates forgets
 * its copy at once.
 */
const RECHECK_MS = 30_000;
export type LatestRates = Awaited<ReturnType<typeof latestFxRates>>;
type Loaded = { at: number; rows: LatestRates; byStale: Map<number, Map<string, Currency>> };
let loaded: Loaded | null = null;
let loading: Promise<Loaded> | null = null;
/** When this isolate last stored rates: a snapshot built before then carries older ones, and does not start the copy. */
let storedAt = 0;

/** Forgets this isolate's copy of the latest rates (after it stored new ones, so it serves them at once). */
export function forgetCurrencies() {
  loaded = null;
  loading = null;
  storedAt = now();
}

function load(s: Services) {
  if (!loading) {
    // Through the request's session: a replica may answer, seconds behind at most.
    const p: Promise<Loaded> = latestFxRates(s.readDb)
      .then((rows) => {
        const fresh = { at: now(), rows, byStale: new Map() };
        // A read forgotten while in flight (new rates were stored meanwhile) serves its caller only.
        if (loading === p) loaded = fresh;
        return fresh;
      })
      .finally(() => {
        if (loading === p) loading = null;
      });
    loading = p;
  }
  return loading;
}

/** Rates read elsewhere, and when: the ones a /data snapshot was built with. */
export type PublishedRates = { rows: LatestRates; at: number };

/**
 * Every currency vs_currency accepts, by code, with its consensus rate: this isolate's copy, read
 * again when RECHECK_MS old. An isolate with no copy starts from `published` when it has them (the
 * rates the /data snapshot was built with, a copy as old as the snapshot), so its first /data
 * request waits for R2 alone; with neither it waits for D1.
 */
export async function currentCurrencies(s: Services, published?: PublishedRates): Promise<Map<string, Currency>> {
  if (!loaded && published && published.at >= storedAt) loaded = { ...published, byStale: new Map() };
  let copy = loaded ?? (await load(s));
  const stale = () => !loaded || now() - loaded.at >= RECHECK_MS;
  if (stale()) {
    // Behind the request, read only if no other request's read made the copy fresh meanwhile.
    if (s.behind) s.behind(() => (stale() ? load(s) : Promise.resolve()), "fx_rates_read");
    else copy = await load(s);
  }
  const staleMs = s.config.FX_STALE_AFTER_MINUTES * 60_000;
  let list = copy.byStale.get(staleMs);
  if (!list) {
    list = new Map(currencies(copy.rows, staleMs).map((c) => [c.code, c]));
    copy.byStale.set(staleMs, list);
  }
  return list;
}

/** The currency a request named in vs_currency (already lower case); an unknown code is the caller's 400. */
export async function vsCurrency(s: Services, code: string, published?: PublishedRates): Promise<Currency> {
  const found = (await currentCurrencies(s, published)).get(code);
  if (!found) {
    const message = `unknown currency "${code}"; GET /currencies lists the accepted codes`;
    throw new ApiError("validation_error", `vs_currency: ${message}`, [{ path: "vs_currency", message }]);
  }
  return found;
}

/**
 * The rate of `currency` in force at any time within [from, to] (ms): each value is converted with
 * the rate of its own time. USD needs no read. A currency with no stored history falls back to its
 * current rate.
 */
export async function rateAt(s: Services, currency: Currency, from: number, to: number): Promise<(t: number) => number> {
  if (currency.code === "usd") return () => 1;
  // Like the history it converts, read through the request's session (a replica may answer).
  const timeline = fxTimeline(await fxSeries(s.readDb, currency.code, from, to), s.config.FX_STALE_AFTER_MINUTES * 60_000);
  if (timeline.empty) return () => currency.usd_rate;
  return (t) => timeline.at(t) ?? currency.usd_rate;
}

/** What metadata.fx says of the rate used for the latest values. */
export const fxMetadata = (c: Currency) => ({ vs_currency: c.code, fx: { usd_rate: c.usd_rate, as_of: c.as_of } });
