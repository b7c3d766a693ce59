import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { payloadsToReplay, startReplays } from "../src/ingest/replay";
import { startSourceRun } from "../src/ingest/start-run";
import { api, drain, json, rows, stubUpstream, testServices } from "./helpers";
import { hookedD1 } from "./interleave";

type Currency = { code: string; usd_rate: number; as_of: string; sources: string[] };
type Reply = Response | (() => Response);

const gecko = (id: string, price: number) => ({
  id,
  symbol: id.slice(0, 4),
  name: `${id} coin`,
  current_price: price,
  market_cap: price * 1e6,
  total_volume: price * 1e4,
});
const paprika = (id: string, price: number) => ({
  id,
  symbol: id.slice(0, 4).toUpperCase(),
  name: `${id} coin`,
  rank: 1,
  quotes: { USD: { price, market_cap: price * 1e6, volume_24h: price * 1e4 } },
});

/** CoinGecko's rates per 1 BTC with BTC at `btc` USD: EUR at `eur` per USD. */
const exchangeRates = (btc: number, eur: number, extra: Record<string, unknown> = {}) => ({
  rates: {
    btc: { name: "Bitcoin", unit: "BTC", value: 1, type: "crypto" },
    usd: { name: "US Dollar", unit: "$", value: btc, type: "fiat" },
    eur: { name: "Euro", unit: "€", value: btc * eur, type: "fiat" },
    xau: { name: "Gold - Troy Ounce", unit: "XAU", value: btc / 2650, type: "commodity" },
    ...extra,
  },
});
/** CoinPaprika's BTC ticker priced in USD and EUR. */
const btcTicker = (btc: number, eur: number) => ({
  id: "btc-bitcoin",
  name: "Bitcoin",
  symbol: "BTC",
  quotes: { USD: { price: btc }, EUR: { price: btc * eur } },
});

/** An upstream with both providers' markets and FX endpoints; `fx` replaces an FX answer. */
function upstream(fx: { coingecko?: Reply; coinpaprika?: Reply } = {}, eur = { coingecko: 0.92, coinpaprika: 0.93 }) {
  return stubUpstream((url) => {
    if (url.pathname.endsWith("/coins/markets"))
      return json(url.searchParams.get("page") === "1" ? [gecko("fxing-a", 10), gecko("fxing-b", 20)] : []);
    if (url.pathname.endsWith("/exchange_rates")) return fx.coingecko ?? json(exchangeRates(90_000, eur.coingecko));
    if (url.pathname.endsWith("/tickers/btc-bitcoin")) return fx.coinpaprika ?? json(btcTicker(90_500, eur.coinpaprika));
    if (url.pathname.endsWith("/tickers")) return json([paprika("fxa-fxing-a", 10.01)]);
    return undefined;
  });
}

async function run(source: "coingecko" | "coinpaprika", up: ReturnType<typeof stubUpstream>) {
  const { s, sent } = testServices({
    fetch: up.fetch,
    vars: { COINGECKO_REQUESTS_PER_MINUTE: "6000", COINPAPRIKA_REQUESTS_PER_MINUTE: "6000" },
  });
  const start = await startSourceRun(s, source, "manual");
  if (!start.started) throw new Error(`${source} did not start`);
  await drain(s, sent);
  const [row] = await rows<Record<string, number | string | null>>("SELECT * FROM ingestion_runs WHERE run_id = ?", start.run.runId);
  return { runId: start.run.runId, row };
}

const currencies = async () =>
  Object.fromEntries((await (await api("/currencies")).json<{ data: Currency[] }>()).data.map((c) => [c.code, c]));

beforeEach(async () => {
  await env.DB.prepare("DELETE FROM leases").run();
  await env.DB.prepare("DELETE FROM request_budgets").run();
});

describe("FX rates with each run", () => {
  it("fetches each source's rates with its first page, archives them raw, and counts them in usage but not in records", async () => {
    const up = upstream();
    const gk = await run("coingecko", up);
    expect(gk.row).toMatchObject({ status: "succeeded", fetched: 2, accepted: 2, rejected: 0 });
    const pp = await run("coinpaprika", up);
    expect(pp.row).toMatchObject({ status: "succeeded", fetched: 1, accepted: 1 });
    // One FX call per run, through the same client and key.
    const fxCalls = up.calls.filter((c) => /exchange_rates|btc-bitcoin/.test(c.url.pathname));
    expect(fxCalls.map((c) => c.url.pathname + c.url.search)).toEqual([
      "/api/v3/exchange_rates",
      "/v1/tickers/btc-bitcoin?quotes=USD,EUR,GBP",
    ]);
    expect(fxCalls[0].headers.get("x-cg-demo-api-key")).toBe("test-gecko-key");
    // Archived like every payload, under the run, with no record count (not a list of quotes).
    const archived = await rows<{ id: string; records: number | null; key: string }>(
      "SELECT id, records, key FROM raw_payloads WHERE id IN (?, ?) ORDER BY id",
      `${gk.runId}-fx`,
      `${pp.runId}-fx`,
    );
    expect(archived.map((a) => a.records)).toEqual([null, null]);
    const body = await api(`/data/raw/coingecko/${gk.runId}-fx`);
    expect(await body.json()).toEqual(exchangeRates(90_000, 0.92));
    const by = await currencies();
    expect(by.eur).toMatchObject({ usd_rate: (0.92 + 0.93) / 2, sources: ["coingecko", "coinpaprika"] });
    expect(by.usd).toMatchObject({ usd_rate: 1 });
    expect(by.xau.sources).toEqual(["coingecko"]);

    // What the FX call cost is in the run's usage: the same run with the FX endpoint missing costs less.
    const without = await run("coingecko", upstream({ coingecko: new Response("gone", { status: 404 }) }));
    // (New rates: a body identical to an archived one is not archived again.)
    const withFx = await run("coingecko", upstream({}, { coingecko: 0.921, coinpaprika: 0.93 }));
    expect(withFx.row).toMatchObject({ fetched: 2, accepted: 2 });
    expect(Number(withFx.row.usage_r2_writes)).toBeGreaterThan(Number(without.row.usage_r2_writes));
    expect(Number(withFx.row.usage_d1_rows_written)).toBeGreaterThan(Number(without.row.usage_d1_rows_written));
  });

  it("a failing FX call leaves the run's quotes stored and the other source's rates in force", async () => {
    await run("coingecko", upstream({}, { coingecko: 0.9, coinpaprika: 0.93 }));
    await run("coinpaprika", upstream({}, { coingecko: 0.9, coinpaprika: 0.93 }));
    const failing = await run("coinpaprika", upstream({ coinpaprika: new Response("upstream broke", { status: 503 }) }));
    expect(failing.row).toMatchObject({ status: "succeeded", fetched: 1, error: null });
    const malformed = await run("coingecko", upstream({ coingecko: new Response('{"rates": {"usd": ', { status: 200 }) }));
    expect(malformed.row).toMatchObject({ status: "succeeded", fetched: 2, error: null });
    // The malformed body is archived and indexed all the same.
    expect(await rows("SELECT id FROM raw_payloads WHERE id = ?", `${malformed.runId}-fx`)).toHaveLength(1);
    const by = await currencies();
    expect(by.eur).toMatchObject({ usd_rate: (0.9 + 0.93) / 2, sources: ["coingecko", "coinpaprika"] });
  });

  it("rejects a zero, negative or missing rate with a reason and never stores it", async () => {
    const bad = {
      zzz: { name: "Zero", unit: "Z", value: 0, type: "fiat" },
      yyy: { name: "Negative", unit: "Y", value: -1, type: "fiat" },
      www: { name: "Missing", unit: "W", type: "fiat" },
    };
    const r = await run("coingecko", upstream({ coingecko: json(exchangeRates(90_000, 0.92, bad)) }));
    expect(r.row).toMatchObject({ status: "succeeded", rejected: 0 });
    const rejected = await rows<{ record_key: string; reason: string }>(
      "SELECT record_key, reason FROM rejected_records WHERE run_id = ? ORDER BY record_key",
      r.runId,
    );
    expect(rejected).toEqual([
      { record_key: "fx:www", reason: "coingecko FX www: rate is missing" },
      { record_key: "fx:yyy", reason: "coingecko FX yyy: rate must be > 0, got -1" },
      { record_key: "fx:zzz", reason: "coingecko FX zzz: rate must be > 0, got 0" },
    ]);
    const by = await currencies();
    expect(by.zzz ?? by.yyy ?? by.www).toBeUndefined();
    expect((await api("/data?vs_currency=zzz")).status).toBe(400);
  });

  it("a replay of an archived FX payload restores the rates of its fetch", async () => {
    const first = await run("coingecko", upstream({}, { coingecko: 0.5, coinpaprika: 0.93 }));
    const [meta] = await rows<{ fetched_at: string }>("SELECT fetched_at FROM raw_payloads WHERE id = ?", `${first.runId}-fx`);
    await env.DB.prepare("DELETE FROM fx_history").run();
    const { s, sent } = testServices();
    const [replay] = await startReplays(
      s,
      await rows("SELECT * FROM raw_payloads WHERE id = ?", `${first.runId}-fx`).then((r) => r.map(toPayload)),
    );
    await drain(s, sent);
    const [done] = await rows<{ status: string; fetched: number }>(
      "SELECT status, fetched FROM ingestion_runs WHERE run_id = ?",
      replay.runId,
    );
    expect(done).toEqual({ status: "succeeded", fetched: 0 });
    const [history] = await rows<{ points: string }>("SELECT points FROM fx_history WHERE source = 'coingecko'");
    const points = JSON.parse(history.points) as { t: number[]; r: Record<string, number[]> };
    expect(points.t).toEqual([Date.parse(meta.fetched_at)]);
    expect(points.r.eur).toEqual([0.5]);
  });

  it("a replay message retried after its FX payload was stored does not store it again", async () => {
    // Rates of its own, so the FX body is archived anew (an identical body would reuse an earlier archive).
    const first = await run("coingecko", upstream({}, { coingecko: 0.4711, coinpaprika: 0.93 }));
    // The message stores every payload, then fails once as it closes the run; the queue delivers it again.
    let failed = false;
    const closingFails = hookedD1(env.DB, {
      before: ({ sql }) => {
        if (!failed && sql.some((q) => q.includes("COUNT(*) AS n FROM run_parts"))) {
          failed = true;
          throw new Error("D1 unavailable");
        }
      },
    });
    const { s, sent } = testServices({ vars: { DB: closingFails } as never });
    const fx = await rows("SELECT * FROM raw_payloads WHERE id = ?", `${first.runId}-fx`).then((r) => toPayload(r[0]));
    const payloads = [fx, ...(await payloadsToReplay(s, "coingecko"))] as Parameters<typeof startReplays>[1];
    const [replay] = await startReplays(s, payloads);
    const message = sent.shift()!;
    const { runMeteredJob } = await import("../src/jobs/queue");
    expect(await runMeteredJob(s, message)).toBeInstanceOf(Error);
    const rev = async () => (await rows<{ rev: number }>("SELECT rev FROM fx_rates WHERE source = 'coingecko'"))[0].rev;
    const afterFirst = await rev();
    expect(await runMeteredJob(s, message)).toBeNull();
    expect(await rev()).toBe(afterFirst);
    const [done] = await rows<{ status: string }>("SELECT status FROM ingestion_runs WHERE run_id = ?", replay.runId);
    expect(done.status).not.toBe("running");
  });
});

/** A raw_payloads row as drizzle names its fields. */
const toPayload = (r: Record<string, unknown>) =>
  ({
    id: r.id,
    source: r.source,
    runId: r.run_id,
    key: r.key,
    fetchedAt: r.fetched_at,
    bytes: r.bytes,
    records: r.records,
    contentType: r.content_type,
    origin: r.origin,
    digest: r.digest,
  }) as never;
