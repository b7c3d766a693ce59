import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_CONSENSUS } from "../src/db/consensus";
import { fxSeries, storeFxRates } from "../src/db/fx-store";
import { currentCurrencies, forgetCurrencies, type PublishedRates } from "../src/db/queries/currencies";
import { publishReadModel } from "../src/db/read-model";
import { rollUpFxHistory } from "../src/ingest/fx";
import { storeNormalised } from "../src/ingest/store-chunk";
import { behindRequest } from "../src/lib/behind";
import { setClock } from "../src/lib/clock";
import type { Services } from "../src/services";
import { coingeckoFx } from "../src/sources/coingecko-fx";
import { coinpaprikaFx } from "../src/sources/coinpaprika-fx";
import { api, apiWith, rows, testServices } from "./helpers";

type Body<T> = { data: T; metadata: Record<string, unknown> & { vs_currency?: string; fx?: { usd_rate: number; as_of: string | null } } };
type Priced = {
  asset_uid: string;
  price_usd: number | null;
  market_cap_usd: number | null;
  volume_24h_usd: number | null;
  price: number | null;
  market_cap: number | null;
  volume_24h: number | null;
};
type Currency = { code: string; name: string; type: string; usd_rate: number; as_of: string | null; sources: string[] };

const MIN = 60_000;
const T0 = Date.parse("2026-11-22T12:00:00.000Z");
const at = (minutes: number) => new Date(T0 + minutes * MIN).toISOString();
const relErr = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

const rate = (code: string, usdRate: number, extra: Partial<{ name: string; type: "fiat" | "crypto" | "commodity" }> = {}) => ({
  code,
  usdRate,
  name: extra.name ?? null,
  unit: null,
  type: extra.type ?? null,
});

/** Stores one fetch of a source's rates at `minutes` past T0, as ingestion does after normalising. */
async function fetchRates(source: "coingecko" | "coinpaprika", minutes: number, rates: Record<string, number>) {
  const { s } = testServices();
  const typed = Object.entries(rates).map(([code, r]) =>
    rate(code, r, source === "coingecko" ? { name: code.toUpperCase(), type: "fiat" } : {}),
  );
  await storeFxRates(s.db, source, T0 + minutes * MIN, typed);
  forgetCurrencies();
}

const q = (sourceId: string, priceUsd: number, minutes: number, extra = {}) => ({
  ...{ source: "csv" as const, sourceId, symbol: sourceId.toUpperCase(), name: `${sourceId} coin`, priceUsd, rank: null },
  ...{ marketCapUsd: priceUsd * 1000, volume24hUsd: priceUsd * 10, change24hPct: null, circulatingSupply: null, totalSupply: null },
  ...{ maxSupply: null, sourceUpdatedAt: at(minutes), ...extra },
});

async function storeQuotes(runId: string, quotes: ReturnType<typeof q>[]) {
  const { s } = testServices();
  await storeNormalised(s.db, s.env.KV, { source: "csv", runId, part: "p", fetched: quotes.length, normalised: { quotes, rejected: [] } });
}

const uidOf = async (sourceId: string) =>
  (await rows<{ asset_uid: string }>("SELECT asset_uid FROM asset_mappings WHERE source = 'csv' AND source_id = ?", sourceId))[0].asset_uid;

beforeAll(async () => {
  const { s } = testServices();
  // Rates: EUR moves from 0.9 to 0.8 at 12:30 at both providers; JPY only at CoinGecko.
  await fetchRates("coingecko", 0, { usd: 1, eur: 0.9, jpy: 150 });
  await fetchRates("coinpaprika", 1, { usd: 1, eur: 0.91 });
  await fetchRates("coingecko", 30, { usd: 1, eur: 0.8, jpy: 151 });
  await fetchRates("coinpaprika", 31, { usd: 1, eur: 0.81 });
  // One coin priced before, between and after the change, a second coin with unknown market data.
  await storeQuotes("r1", [
    q("fxa", 100, -20),
    q("fxa", 110, 10),
    q("fxa", 120, 40),
    q("fxa", 130, 45),
    q("fxb", 2, 40, { marketCapUsd: null }),
  ]);
  await publishReadModel(s.db, s.env.BUCKET, DEFAULT_CONSENSUS);
});

describe("GET /currencies", () => {
  it("lists every code with its median rate, as_of and the sources behind it; USD is 1", async () => {
    const res = await api("/currencies");
    expect(res.status).toBe(200);
    const { data } = await res.json<Body<Currency[]>>();
    const by = Object.fromEntries(data.map((c) => [c.code, c]));
    expect(by.usd).toMatchObject({ usd_rate: 1, type: "fiat" });
    expect(by.eur).toMatchObject({
      usd_rate: (0.8 + 0.81) / 2,
      as_of: at(31),
      sources: ["coingecko", "coinpaprika"],
      type: "fiat",
      name: "EUR",
    });
    expect(by.jpy).toMatchObject({ usd_rate: 151, sources: ["coingecko"] });
  });

  it("leaves a source out of a currency once its rate is FX_STALE_AFTER_MINUTES older than the freshest, while another has it", async () => {
    const stale = await apiWith({ FX_STALE_AFTER_MINUTES: "0" } as never, "/currencies");
    const eur = (await stale.json<Body<Currency[]>>()).data.find((c) => c.code === "eur")!;
    // CoinGecko's EUR was fetched a minute before CoinPaprika's: with no slack it is stale.
    expect(eur).toMatchObject({ usd_rate: 0.81, sources: ["coinpaprika"] });
    const jpy = (await (await apiWith({ FX_STALE_AFTER_MINUTES: "0" } as never, "/currencies")).json<Body<Currency[]>>()).data.find(
      (c) => c.code === "jpy",
    )!;
    // A currency only one source has keeps that source's rate however old it is.
    expect(jpy).toMatchObject({ usd_rate: 151, sources: ["coingecko"] });
  });

  it("is in the OpenAPI document, with vs_currency on every priced route", async () => {
    const doc = await (await api("/openapi.json")).json<{ paths: Record<string, { get: { parameters?: { name: string }[] } }> }>();
    expect(doc.paths["/currencies"]).toBeTruthy();
    for (const path of ["/data", "/data/export", "/data/{asset_uid}", "/data/{asset_uid}/history", "/data/{asset_uid}/ohlc"]) {
      expect(
        doc.paths[path].get.parameters?.map((p) => p.name),
        path,
      ).toContain("vs_currency");
    }
  });
});

describe("this isolate's copy of the rates", () => {
  afterEach(() => {
    setClock(() => Date.now());
    forgetCurrencies();
  });
  const eurOf = async (s: Services, published?: PublishedRates) => (await currentCurrencies(s, published)).get("eur")?.usd_rate;

  it("starts from the rates a snapshot was built with and reads D1 behind the request; when 30 s old, is served once more while read again", async () => {
    const ctx = createExecutionContext();
    const s = { ...testServices().s, behind: behindRequest(ctx) };
    const d1 = (await eurOf(s))!;
    forgetCurrencies();
    const t0 = Date.now();
    const rows = [{ source: "coingecko", rates: { usd: { r: 1, t: T0 }, eur: { r: 0.5, t: T0 } } }];
    // A snapshot built before this isolate last stored rates carries older ones: D1 is read instead.
    setClock(() => t0);
    expect(await eurOf(s, { rows, at: t0 - 10_000 })).toBe(d1);
    // As old as the snapshot that carries them: 10 s, served as they are; 40 s, served once more while D1 is read.
    setClock(() => t0 - 60_000);
    forgetCurrencies();
    setClock(() => t0);
    expect(await eurOf(s, { rows, at: t0 - 10_000 })).toBe(0.5);
    setClock(() => t0 - 60_000);
    forgetCurrencies();
    setClock(() => t0);
    expect(await eurOf(s, { rows, at: t0 - 40_000 })).toBe(0.5);
    await waitOnExecutionContext(ctx);
    expect(await eurOf(s, { rows, at: t0 - 40_000 })).toBe(d1);

    const moved = "UPDATE fx_rates SET rates = json_set(rates, '$.eur.r', json_extract(rates, '$.eur.r') + ?) WHERE source = 'coingecko'";
    await env.DB.prepare(moved).bind(0.1).run();
    try {
      setClock(() => t0 + 29_000);
      expect(await eurOf(s)).toBe(d1);
      setClock(() => t0 + 31_000);
      const again = createExecutionContext();
      const later = { ...s, behind: behindRequest(again) };
      expect(await eurOf(later)).toBe(d1);
      await waitOnExecutionContext(again);
      expect(await eurOf(later)).toBeCloseTo(d1 + 0.05, 12);
    } finally {
      await env.DB.prepare(moved).bind(-0.1).run();
    }
  });
});

describe("vs_currency", () => {
  it("prices /data in the currency at the rate metadata.fx names, exactly (relative error <= 1e-9)", async () => {
    const body = await (await api("/data?vs_currency=eur")).json<Body<Priced[]>>();
    expect(body.metadata.vs_currency).toBe("eur");
    expect(body.metadata.fx).toEqual({ usd_rate: (0.8 + 0.81) / 2, as_of: at(31) });
    const r = body.metadata.fx!.usd_rate;
    expect(body.data.length).toBe(2);
    for (const a of body.data) {
      for (const [local, usd] of [
        [a.price, a.price_usd],
        [a.market_cap, a.market_cap_usd],
        [a.volume_24h, a.volume_24h_usd],
      ] as const) {
        if (usd === null) expect(local).toBeNull();
        else expect(relErr(local!, usd * r)).toBeLessThanOrEqual(1e-9);
      }
    }
    expect(body.data.find((a) => a.market_cap_usd === null)?.market_cap).toBeNull();
  });

  it("defaults to USD, where price is price_usd", async () => {
    const body = await (await api("/data")).json<Body<Priced[]>>();
    expect(body.metadata.vs_currency).toBe("usd");
    expect(body.metadata.fx?.usd_rate).toBe(1);
    for (const a of body.data) expect([a.price, a.market_cap, a.volume_24h]).toEqual([a.price_usd, a.market_cap_usd, a.volume_24h_usd]);
  });

  it("is case-insensitive, and prices an asset's detail and each of its quotes", async () => {
    const uid = await uidOf("fxa");
    const body = await (await api(`/data/${uid}?vs_currency=EUR`)).json<Body<Priced & { quotes: Priced[] }>>();
    expect(body.metadata.vs_currency).toBe("eur");
    const r = body.metadata.fx!.usd_rate;
    expect(relErr(body.data.price!, body.data.price_usd! * r)).toBeLessThanOrEqual(1e-9);
    expect(body.data.quotes.length).toBe(1);
    for (const quote of body.data.quotes) expect(relErr(quote.price!, quote.price_usd! * r)).toBeLessThanOrEqual(1e-9);
  });

  it("keeps the meaning of sort=price|market_cap|volume", async () => {
    const usd = await (await api("/data?sort=price&order=asc")).json<Body<Priced[]>>();
    const eur = await (await api("/data?sort=price&order=asc&vs_currency=eur")).json<Body<Priced[]>>();
    expect(eur.data.map((a) => a.asset_uid)).toEqual(usd.data.map((a) => a.asset_uid));
  });

  it("answers an unknown or malformed code with 400 validation_error naming the parameter, on every priced route", async () => {
    const uid = await uidOf("fxa");
    for (const path of [
      "/data?vs_currency=xyz",
      "/data?vs_currency=e$",
      "/data/export?vs_currency=xyz",
      `/data/${uid}?vs_currency=xyz`,
      `/data/${uid}/history?vs_currency=xyz`,
      `/data/${uid}/ohlc?interval=1h&vs_currency=xyz`,
      // The currency is checked before the asset is looked up.
      "/data/nobody-here/history?vs_currency=xyz",
    ]) {
      const res = await api(path);
      expect(res.status, path).toBe(400);
      const body = await res.json<{ error: { code: string; message: string } }>();
      expect(body.error.code, path).toBe("validation_error");
      expect(body.error.message, path).toContain("vs_currency");
    }
  });
});

describe("history and candles in another currency", () => {
  it("converts each point with the rate in force at its own time, across a rate change", async () => {
    const uid = await uidOf("fxa");
    const body = await (await api(`/data/${uid}/history?vs_currency=eur`)).json<Body<{ at: string; price_usd: number; price: number }[]>>();
    const byTime = Object.fromEntries(body.data.map((p) => [p.at, p]));
    // 11:40 is older than every rate: the oldest (CoinGecko's 0.9 alone) applies.
    expect(relErr(byTime[at(-20)].price, 100 * 0.9)).toBeLessThanOrEqual(1e-9);
    // 12:10: both sources' first rates.
    expect(relErr(byTime[at(10)].price, 110 * ((0.9 + 0.91) / 2))).toBeLessThanOrEqual(1e-9);
    // 12:40 and 12:45: both sources' second rates.
    expect(relErr(byTime[at(40)].price, 120 * ((0.8 + 0.81) / 2))).toBeLessThanOrEqual(1e-9);
    expect(relErr(byTime[at(45)].price, 130 * ((0.8 + 0.81) / 2))).toBeLessThanOrEqual(1e-9);
  });

  it("converts min and max with interval, each point at its own rate", async () => {
    const uid = await uidOf("fxa");
    const body = await (await api(`/data/${uid}/history?vs_currency=eur&interval=1h&source=csv`)).json<
      Body<{ at: string; price: number; min: number; max: number; min_usd: number; max_usd: number }[]>
    >();
    const noon = body.data.find((p) => p.at === at(0))!;
    // The 12:00 hour holds 110 (at 0.905), 120 and 130 (at 0.805): its lowest USD price is not its lowest in EUR.
    expect(noon.min_usd).toBe(110);
    expect(relErr(noon.min, 120 * 0.805)).toBeLessThanOrEqual(1e-9);
    expect(relErr(noon.max, 130 * 0.805)).toBeLessThanOrEqual(1e-9);
    expect(relErr(noon.price, 130 * 0.805)).toBeLessThanOrEqual(1e-9);
  });

  it("prices candles in EUR", async () => {
    const uid = await uidOf("fxa");
    const eur = await (await api(`/data/${uid}/ohlc?interval=1h&source=csv&vs_currency=eur`)).json<
      Body<{ t: string; open: number; high: number; low: number; close: number }[]>
    >();
    expect(eur.metadata.vs_currency).toBe("eur");
    const noon = eur.data.find((k) => k.t === at(0))!;
    expect(relErr(noon.open, 110 * 0.905)).toBeLessThanOrEqual(1e-9);
    expect(relErr(noon.low, 120 * 0.805)).toBeLessThanOrEqual(1e-9);
    expect(relErr(noon.high, 130 * 0.805)).toBeLessThanOrEqual(1e-9);
    expect(relErr(noon.close, 130 * 0.805)).toBeLessThanOrEqual(1e-9);
    const usd = await (await api(`/data/${uid}/ohlc?interval=1h&source=csv`)).json<Body<{ t: string; close: number }[]>>();
    expect(usd.data.find((k) => k.t === at(0))!.close).toBe(130);
  });
});

describe("CSV in another currency", () => {
  it("adds the currency's columns to the export, named for it; USD keeps the columns it had", async () => {
    const eur = await api("/data/export?format=csv&vs_currency=eur&sort=price");
    expect(eur.headers.get("content-disposition")).toBe('attachment; filename="coinfuse-assets-eur.csv"');
    const [header, ...lines] = (await eur.text()).trim().split("\r\n");
    const cols = header.split(",");
    expect(cols).toEqual([
      "asset_uid",
      "symbol",
      "name",
      "rank",
      "price_usd",
      "market_cap_usd",
      "volume_24h_usd",
      "change_24h_pct",
      "sources",
      "source_ids",
      "price_eur",
      "market_cap_eur",
      "volume_24h_eur",
      "updated_at",
    ]);
    const first = lines[0].split(",");
    expect(relErr(Number(first[cols.indexOf("price_eur")]), Number(first[cols.indexOf("price_usd")]) * 0.805)).toBeLessThanOrEqual(1e-9);
    const usd = (await (await api("/data/export?format=csv")).text()).split("\r\n")[0];
    expect(usd).toBe("asset_uid,symbol,name,rank,price_usd,market_cap_usd,volume_24h_usd,change_24h_pct,sources,source_ids,updated_at");
  });

  it("prices NDJSON lines as /data does", async () => {
    const lines = (await (await api("/data/export?format=ndjson&vs_currency=eur")).text()).trim().split("\n");
    for (const line of lines) {
      const a = JSON.parse(line) as Priced;
      expect(relErr(a.price!, a.price_usd! * 0.805)).toBeLessThanOrEqual(1e-9);
    }
  });

  it("adds price_<code> to history CSV, and min/max with interval", async () => {
    const uid = await uidOf("fxa");
    const plain = (await (await api(`/data/${uid}/history?format=csv&vs_currency=eur`)).text()).trim().split("\r\n");
    expect(plain[0]).toBe("source,at,price_usd,market_cap_usd,volume_24h_usd,resolution,min_usd,max_usd,price_eur");
    const row = plain.find((l) => l.includes(at(40)))!.split(",");
    expect(relErr(Number(row[8]), 120 * 0.805)).toBeLessThanOrEqual(1e-9);
    const hourly = (await (await api(`/data/${uid}/history?format=csv&vs_currency=eur&interval=1h`)).text()).split("\r\n")[0];
    expect(hourly).toBe("source,at,price_usd,market_cap_usd,volume_24h_usd,resolution,min_usd,max_usd,price_eur,min_eur,max_eur");
  });
});

describe("FX sources", () => {
  it("derives CoinGecko's usd_rate as value[code] / value[usd] and rejects a zero, negative or missing rate with a reason", () => {
    const out = coingeckoFx.normalise({
      rates: {
        btc: { name: "Bitcoin", unit: "BTC", value: 1, type: "crypto" },
        usd: { name: "US Dollar", unit: "$", value: 90000, type: "fiat" },
        eur: { name: "Euro", unit: "€", value: 81000, type: "fiat" },
        xau: { name: "Gold - Troy Ounce", unit: "XAU", value: 30, type: "commodity" },
        zer: { name: "Zero", unit: "Z", value: 0, type: "fiat" },
        neg: { name: "Negative", unit: "N", value: -3, type: "fiat" },
        mis: { name: "Missing", unit: "M", type: "fiat" },
        odd: { name: "Odd", unit: "O", value: 5, type: "stock" },
      },
    });
    const by = Object.fromEntries(out.rates.map((r) => [r.code, r]));
    expect(by.usd.usdRate).toBe(1);
    expect(by.eur).toMatchObject({ usdRate: 81000 / 90000, name: "Euro", unit: "€", type: "fiat" });
    expect(by.btc.usdRate).toBe(1 / 90000);
    expect(by.xau.type).toBe("commodity");
    expect(out.rejected.map((r) => [r.recordKey, r.reason])).toEqual([
      ["fx:zer", "coingecko FX zer: rate must be > 0, got 0"],
      ["fx:neg", "coingecko FX neg: rate must be > 0, got -3"],
      ["fx:mis", "coingecko FX mis: rate is missing"],
      ["fx:odd", 'coingecko FX odd: type must be fiat, crypto or commodity, got "stock"'],
    ]);
    expect(() => coingeckoFx.normalise({ rates: { eur: { value: 1, type: "fiat" } } })).toThrow(/usd rate is missing/);
    expect(() => coingeckoFx.normalise([1, 2])).toThrow(/rates/);
  });

  it("derives CoinPaprika's usd_rate as quotes[CODE].price / quotes[USD].price", () => {
    const out = coinpaprikaFx.normalise({
      id: "btc-bitcoin",
      quotes: { USD: { price: 90000 }, EUR: { price: 81900 }, GBP: { price: null }, JPY: { price: "x" } },
    });
    expect(out.rates.map((r) => [r.code, r.usdRate])).toEqual([
      ["usd", 1],
      ["eur", 81900 / 90000],
    ]);
    expect(out.rejected.map((r) => r.sourceId)).toEqual(["gbp", "jpy"]);
    expect(() => coinpaprikaFx.normalise({ quotes: { EUR: { price: 1 } } })).toThrow(/USD rate is missing/);
  });

  it("asks CoinPaprika for the configured quote currencies", async () => {
    const { s } = testServices({ vars: { COINPAPRIKA_FX_QUOTES: "usd,eur,chf" } as never });
    expect(coinpaprikaFx.request(s.config).url).toBe("https://paprika.test/v1/tickers/btc-bitcoin?quotes=USD,EUR,CHF");
    expect(coingeckoFx.request(s.config)).toMatchObject({
      url: "https://gecko.test/api/v3/exchange_rates",
      headers: { "x-cg-demo-api-key": "test-gecko-key" },
    });
  });
});

describe("FX storage", () => {
  it("keeps FX history rolled up as price history is, and still converts at each point's time", async () => {
    const { s } = testServices();
    const series = async () => (await fxSeries(s.db, "eur", Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY)).get("coingecko")!;
    const before = await series();
    expect(before.map((p) => p.r)).toEqual([0.9, 0.8]);
    // Eight days later, the raw fetches are older than 7 days: one hourly mean for the 12:00 hour.
    const out = await rollUpFxHistory(s, T0 + 8 * 24 * 60 * MIN);
    expect(out).toMatchObject({ fx_raw_points_removed: 4, fx_hourly_points_added: 2 });
    expect(await series()).toEqual([{ t: T0, r: (0.9 + 0.8) / 2 }]);
    const kept = await rows<{ resolution: string }>("SELECT resolution FROM fx_history WHERE source = 'coingecko'");
    expect(kept.map((r) => r.resolution)).toEqual(["hour"]);
  });

  it("a fetch stored again after its hour was rolled up (a replay) is not counted twice, nor after its day was", async () => {
    const { s } = testServices();
    const DAY = 24 * 60 * MIN;
    const t = T0 + 60 * DAY;
    const history = async () =>
      (
        await rows<{ resolution: string; points: string }>(
          "SELECT resolution, points FROM fx_history WHERE source = 'coinpaprika' AND period_start >= ? ORDER BY resolution",
          new Date(t - 40 * DAY).toISOString(),
        )
      ).map((r) => [r.resolution, JSON.parse(r.points)]);
    await storeFxRates(s.db, "coinpaprika", t + 5 * MIN, [rate("eur", 0.9)]);
    await storeFxRates(s.db, "coinpaprika", t + 10 * MIN, [rate("eur", 0.7)]);
    await rollUpFxHistory(s, t + 8 * DAY);
    const hourly = [["hour", { t: [t], r: { eur: [0.8] }, w: [2] }]];
    expect(await history()).toEqual(hourly);
    // The first fetch replayed: its hour holds it already.
    await storeFxRates(s.db, "coinpaprika", t + 5 * MIN, [rate("eur", 0.9)]);
    await rollUpFxHistory(s, t + 8 * DAY);
    expect(await history()).toEqual(hourly);
    // Rolled up again into its month's daily row, then replayed once more.
    await rollUpFxHistory(s, t + 100 * DAY);
    const daily = await history();
    expect(daily).toEqual([["day", { t: [t - 12 * 60 * MIN], r: { eur: [0.8] }, w: [2] }]]);
    await storeFxRates(s.db, "coinpaprika", t + 10 * MIN, [rate("eur", 0.7)]);
    await rollUpFxHistory(s, t + 100 * DAY);
    expect(await history()).toEqual(daily);
  });

  it("two fetches of one source stored at once both land: the later writer reads again instead of overwriting", async () => {
    const { s } = testServices();
    const t = T0 + 30 * 24 * 60 * MIN;
    await Promise.all([
      storeFxRates(s.db, "coinpaprika", t + MIN, [rate("aaa", 2)]),
      storeFxRates(s.db, "coinpaprika", t + 2 * MIN, [rate("bbb", 3)]),
    ]);
    const [latest] = await rows<{ rates: string }>("SELECT rates FROM fx_rates WHERE source = 'coinpaprika'");
    expect(Object.keys(JSON.parse(latest.rates))).toEqual(expect.arrayContaining(["aaa", "bbb"]));
    const hour = await rows<{ points: string }>(
      "SELECT points FROM fx_history WHERE source = 'coinpaprika' AND resolution = 'raw' AND period_start = ?",
      new Date(t).toISOString(),
    );
    expect(JSON.parse(hour[0].points).t).toEqual([t + MIN, t + 2 * MIN]);
  });
});
