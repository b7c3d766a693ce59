import { beforeAll, describe, expect, it } from "vitest";
import { runBatch } from "../src/db/batch";
import { DEFAULT_CONSENSUS } from "../src/db/consensus";
import { historyRowStatements } from "../src/db/quote-store";
import { publishReadModel } from "../src/db/read-model";
import { storeNormalised } from "../src/ingest/store-chunk";
import { api, pinMapping, rows, testServices } from "./helpers";

type Body<T> = { data: T; metadata: Record<string, unknown> };
type Src = "coingecko" | "coinpaprika" | "csv";
const q = (source: Src, sourceId: string, symbol: string, name: string, priceUsd: number, at: string, extra = {}) => ({
  ...{ source, sourceId, symbol, name, priceUsd, rank: null, marketCapUsd: null, volume24hUsd: null, change24hPct: null },
  ...{ circulatingSupply: null, totalSupply: null, maxSupply: null, sourceUpdatedAt: at, ...extra },
});
const T = (min: number) => new Date(Date.parse("2026-11-22T12:00:00.000Z") + min * 60_000).toISOString();

/** Stores quotes as one part of a run, as the pipeline does after unification. */
function store(source: Src, runId: string, quotes: ReturnType<typeof q>[]) {
  const { s } = testServices();
  return storeNormalised(s.db, s.env.KV, { source, runId, part: "p", fetched: quotes.length, normalised: { quotes, rejected: [] } });
}

beforeAll(async () => {
  const { s } = testServices();
  // Trio: three sources within 1 % of each other.
  await store("coingecko", "c1", [q("coingecko", "trio", "TRI", "Trio Coin", 100, T(0), { volume24hUsd: 50 })]);
  await store("coinpaprika", "c2", [q("coinpaprika", "tri-trio-coin", "TRI", "Trio Coin", 101, T(0))]);
  await store("csv", "c3", [q("csv", "tri:trio-coin", "TRI", "Trio Coin", 100.5, T(0))]);
  // Later ticks of the trio's CoinGecko quote: 12:03, 12:40, then a gap, 14:10.
  await store("coingecko", "c4", [q("coingecko", "trio", "TRI", "Trio Coin", 104, T(3), { volume24hUsd: 60 })]);
  await store("coingecko", "c5", [q("coingecko", "trio", "TRI", "Trio Coin", 98, T(40), { volume24hUsd: 70 })]);
  await store("coingecko", "c6", [q("coingecko", "trio", "TRI", "Trio Coin", 110, T(130), { volume24hUsd: 80 })]);
  // Skewed: one source 40 % off the other two, all fresh.
  await store("coingecko", "d1", [q("coingecko", "skew", "SKW", "Skew Coin", 10, T(130))]);
  await store("coinpaprika", "d2", [q("coinpaprika", "skw-skew-coin", "SKW", "Skew Coin", 10.1, T(130))]);
  await store("csv", "d3", [q("csv", "skw:skew-coin", "SKW", "Skew Coin", 14, T(130))]);
  // Stale: CoinPaprika's quote is 3 hours older than CoinGecko's.
  await store("coingecko", "e1", [q("coingecko", "old-friend", "OLDF", "Old Friend", 5, T(180))]);
  await store("coinpaprika", "e2", [q("coinpaprika", "oldf-old-friend", "OLDF", "Old Friend", 5.2, T(0))]);
  // A name that needs quoting in CSV.
  await store("csv", "f1", [q("csv", "quo:say-hi-now", "QUO", 'Say "Hi", Now', 2, T(0))]);
  await publishReadModel(s.db, s.env.BUCKET, DEFAULT_CONSENSUS);
});

const uidOf = async (source: Src, sourceId: string) =>
  (await rows<{ asset_uid: string }>("SELECT asset_uid FROM asset_mappings WHERE source = ? AND source_id = ?", source, sourceId))[0]
    .asset_uid;

describe("GET /data?ids", () => {
  it("takes asset_uids, aliases and source:source_id, leaves unknown ones out, and combines with filters", async () => {
    const trio = await uidOf("coingecko", "trio");
    const skew = await uidOf("coingecko", "skew");
    const body = await (await api(`/data?ids=${trio},coinpaprika:skw-skew-coin,nobody-zz,csv:nope`)).json<Body<{ asset_uid: string }[]>>();
    expect(body.data.map((a) => a.asset_uid).sort()).toEqual([skew, trio].sort());
    expect(body.metadata.total).toBe(2);
    const scoped = await (await api(`/data?ids=${trio},${skew}&symbol=SKW`)).json<Body<{ asset_uid: string }[]>>();
    expect(scoped.data.map((a) => a.asset_uid)).toEqual([skew]);
  });

  it("resolves an alias among the ids", async () => {
    const friend = await uidOf("coingecko", "old-friend");
    await store("csv", "alias", [q("csv", "lone:lone-wolf", "LONE", "Lone Wolf", 3, T(0))]);
    const lone = await uidOf("csv", "lone:lone-wolf");
    expect((await pinMapping(friend, { source: "csv", source_id: "lone:lone-wolf" })).status).toBe(200);
    const body = await (await api(`/data?ids=${lone}`)).json<Body<{ asset_uid: string }[]>>();
    expect(body.data.map((a) => a.asset_uid)).toEqual([friend]);
  });

  it("answers 400 validation_error to an empty id or more than 250", async () => {
    const empty = await api("/data?ids=bitcoin,,ethereum");
    expect(empty.status).toBe(400);
    expect(await empty.json()).toMatchObject({ error: { code: "validation_error" } });
    const many = await api(`/data?ids=${Array.from({ length: 251 }, (_, i) => `a${i}`).join(",")}`);
    expect(many.status).toBe(400);
    expect(((await many.json()) as { error: { message: string } }).error.message).toMatch(/at most 250/);
    expect((await api(`/data?ids=${Array.from({ length: 250 }, (_, i) => `a${i}`).join(",")}`)).status).toBe(200);
  });
});

describe("history as asked", () => {
  it("interval gives the bucket's last price with min and max, and leaves an empty bucket out", async () => {
    const trio = await uidOf("coingecko", "trio");
    const body = await (await api(`/data/${trio}/history?source=coingecko&interval=1h`)).json<
      Body<{ at: string; price_usd: number; min_usd: number; max_usd: number; source: string }[]>
    >();
    expect(body.data.map((p) => [p.at, p.price_usd, p.min_usd, p.max_usd])).toEqual([
      ["2026-11-22T12:00:00.000Z", 98, 98, 104],
      ["2026-11-22T14:00:00.000Z", 110, 110, 110],
    ]);
  });

  it("source=consensus gives the median of the sources in each bucket", async () => {
    const trio = await uidOf("coingecko", "trio");
    const body = await (await api(`/data/${trio}/history?source=consensus&interval=1h`)).json<
      Body<{ at: string; price_usd: number; source: string }[]>
    >();
    // 12:00 bucket: CoinGecko's last 98, CoinPaprika 101, CSV 100.5 -> 100.5; 14:00: CoinGecko alone.
    expect(body.data.map((p) => [p.source, p.at, p.price_usd])).toEqual([
      ["consensus", "2026-11-22T12:00:00.000Z", 100.5],
      ["consensus", "2026-11-22T14:00:00.000Z", 110],
    ]);
  });

  it("format=csv downloads the points with a header row", async () => {
    const trio = await uidOf("coingecko", "trio");
    const res = await api(`/data/${trio}/history?source=coingecko&format=csv`);
    expect(res.headers.get("content-type")).toMatch(/^text\/csv/);
    expect(res.headers.get("content-disposition")).toMatch(/attachment/);
    const lines = (await res.text()).trim().split("\r\n");
    expect(lines[0]).toBe("source,at,price_usd,market_cap_usd,volume_24h_usd,resolution,min_usd,max_usd");
    expect(lines.slice(1).map((l) => l.split(",").slice(0, 3).join(","))).toEqual([
      "coingecko,2026-11-22T12:00:00.000Z,100",
      "coingecko,2026-11-22T12:03:00.000Z,104",
      "coingecko,2026-11-22T12:40:00.000Z,98",
      "coingecko,2026-11-22T14:10:00.000Z,110",
    ]);
  });
});

describe("GET /data/{uid}/ohlc", () => {
  it("computes candles from the stored points, across a roll-up boundary, with the points behind each", async () => {
    const trio = await uidOf("coingecko", "trio");
    const [m] = await rows<{ slot: number }>("SELECT slot FROM asset_mappings WHERE source = 'coingecko' AND source_id = 'trio'");
    // Two hourly roll-up points the day before, as the retention job leaves them.
    const day = Date.parse("2026-11-21T00:00:00.000Z");
    const point = (h: number, price: number) => ({
      slot: m.slot,
      at: day + h * 3_600_000,
      priceUsd: price,
      marketCapUsd: null,
      volume24hUsd: 10,
    });
    const { s } = testServices();
    await runBatch(
      s.db,
      historyRowStatements("coingecko", "hour", [{ bucket: Math.floor(m.slot / 64), start: day, points: [point(22, 90), point(23, 95)] }]),
    );
    const body = await (await api(`/data/${trio}/ohlc?interval=1d&source=coingecko`)).json<
      Body<{ t: string; open: number; high: number; low: number; close: number; volume_24h_usd: number; points: number }[]>
    >();
    expect(body.data).toEqual([
      { t: "2026-11-21T00:00:00.000Z", open: 90, high: 95, low: 90, close: 95, volume_24h_usd: 10, points: 2 },
      { t: "2026-11-22T00:00:00.000Z", open: 100, high: 110, low: 98, close: 110, volume_24h_usd: 80, points: 4 },
    ]);
    const consensus = await (await api(`/data/${trio}/ohlc?interval=4h`)).json<Body<{ t: string; open: number; close: number }[]>>();
    expect(consensus.data.at(-1)).toMatchObject({ t: "2026-11-22T12:00:00.000Z", close: 110 });
    expect((await api(`/data/${trio}/ohlc?interval=7m`)).status).toBe(400);
    expect((await api(`/data/${trio}/ohlc`)).status).toBe(400);
    expect((await api("/data/nobody-zz/ohlc?interval=1h")).status).toBe(404);
  });
});

describe("consensus", () => {
  it("leaves out an outlier among three fresh sources and a stale source, and says why", async () => {
    type Detail = Body<{
      price_usd: number;
      consensus: { price_usd: number; sources: number; excluded: { source: string; reason: string }[] };
    }>;
    const skew = await (await api(`/data/${await uidOf("coingecko", "skew")}`)).json<Detail>();
    expect(skew.data.consensus).toMatchObject({ price_usd: 10.05, sources: 2, excluded: [{ source: "csv", reason: "outlier" }] });
    expect(skew.data.price_usd).toBe(10.05);
    const friend = await (await api(`/data/${await uidOf("coingecko", "old-friend")}`)).json<Detail>();
    expect(friend.data.consensus.excluded).toContainEqual({ source: "coinpaprika", reason: "stale" });
    expect(friend.data.consensus.price_usd).toBe(5);
    // The trio's CoinGecko quote moved on 130 minutes past the other two: they are stale against it.
    const trio = await (await api(`/data/${await uidOf("coingecko", "trio")}`)).json<Detail>();
    expect(trio.data.consensus).toMatchObject({
      price_usd: 110,
      sources: 1,
      excluded: [
        { source: "coinpaprika", reason: "stale" },
        { source: "csv", reason: "stale" },
      ],
    });
    // /data serves the same consensus.
    const listed = await (await api(`/data?ids=${await uidOf("coingecko", "skew")}`)).json<Body<{ price_usd: number }[]>>();
    expect(listed.data[0].price_usd).toBe(10.05);
    const health = await (await api("/health")).json<{ consensus: { single_source_assets: number } }>();
    expect(health.consensus.single_source_assets).toBeGreaterThanOrEqual(2);
  });
});

describe("GET /data/export", () => {
  it("streams every matching asset as CSV with a header row, quoting names with commas and quotes", async () => {
    const res = await api("/data/export?format=csv&sort=name");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/csv/);
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="coinfuse-assets.csv"');
    // Cached like every public read, and carries the request id like every response.
    expect(res.headers.get("cache-tag")).toBe("coinfuse-data");
    expect(res.headers.get("x-request-id")).toBeTruthy();
    const text = await res.text();
    const lines = text.trim().split("\r\n");
    expect(lines[0]).toBe(
      "asset_uid,symbol,name,rank,price_usd,market_cap_usd,volume_24h_usd,change_24h_pct,sources,source_ids,updated_at",
    );
    const total = ((await (await api("/data?page_size=1")).json()) as Body<unknown>).metadata.total;
    expect(lines.length - 1).toBe(total);
    expect(text).toContain(',"Say ""Hi"", Now",');
  });

  it("streams NDJSON Assets with the /data filters", async () => {
    const res = await api("/data/export?format=ndjson&source=coinpaprika&sort=symbol");
    expect(res.headers.get("content-type")).toMatch(/^application\/x-ndjson/);
    const assets = (await res.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { symbol: string; sources: string[] });
    expect(assets.length).toBeGreaterThanOrEqual(2);
    expect(assets.every((a) => a.sources.includes("coinpaprika"))).toBe(true);
    expect(assets.map((a) => a.symbol)).toEqual([...assets.map((a) => a.symbol)].sort());
    expect((await api("/data/export?format=xml")).status).toBe(400);
  });
});
