import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { runBatch } from "../src/db/batch";
import { dbFor } from "../src/db/client";
import { QUOTES_PER_BUCKET } from "../src/db/history-codec";
import { type QuoteBucket, quoteBucketStatements } from "../src/db/quote-store";
import { publishReadModel, SORT_KEYS } from "../src/db/read-model";
import type { StoredQuote } from "../src/db/schema";
import { ingestUpload } from "../src/ingest/csv-upload";
import { api, apiWith, pinMapping, stageCsv, TOKEN, testServices } from "./helpers";

type Body<T = unknown> = { data: T; metadata: Record<string, unknown> };

const CSV = [
  "id,symbol,name,rank,price,market_cap,volume_24h,change_24h",
  "api-alpha,ALP,Alpha Api,3,10,1000,50,1.5",
  "api-beta,BET,Beta Api,1,20,5000,10,-2",
  "api-gamma,GAM,Gamma Api,2,5,,70,",
  "api-delta,DEL,Delta Api,,1,10,1,0.1",
].join("\n");

beforeAll(async () => {
  const { s, sent } = testServices();
  const up = await stageCsv(s, sent, "api.csv", CSV);
  await ingestUpload(s, up.message as never);
});

describe("GET /data", () => {
  it("pages with metadata whose request_id equals the x-request-id header", async () => {
    const res = await api("/data?page=1&page_size=2&sort=rank");
    expect(res.status).toBe(200);
    const body = await res.json<Body<{ asset_uid: string; rank: number }[]>>();
    expect(body.metadata).toMatchObject({ page: 1, page_size: 2, total: 4, request_id: res.headers.get("x-request-id") });
    expect(typeof body.metadata.api_latency_ms).toBe("number");
    expect(body.data.map((a) => a.rank)).toEqual([1, 2]);
  });

  it("sorts by every key, unknown ranks last", async () => {
    const get = async (q: string) => (await (await api(`/data?${q}`)).json<Body<{ name: string }[]>>()).data.map((a) => a.name);
    expect(await get("sort=rank")).toEqual(["Beta Api", "Gamma Api", "Alpha Api", "Delta Api"]);
    expect(await get("sort=price&order=asc")).toEqual(["Delta Api", "Gamma Api", "Alpha Api", "Beta Api"]);
    expect(await get("sort=market_cap")).toEqual(["Beta Api", "Alpha Api", "Delta Api", "Gamma Api"]);
    expect(await get("sort=name&order=desc")).toEqual(["Gamma Api", "Delta Api", "Beta Api", "Alpha Api"]);
    expect(await get("sort=volume")).toEqual(["Gamma Api", "Alpha Api", "Beta Api", "Delta Api"]);
  });

  it("filters by source, case-insensitive symbol and name/symbol prefix", async () => {
    const total = async (q: string) => (await (await api(`/data?page_size=1&${q}`)).json<Body>()).metadata.total;
    expect(await total("source=csv")).toBe(4);
    expect(await total("source=coingecko")).toBe(0);
    expect(await total("symbol=alp")).toBe(1);
    expect(await total("q=gam")).toBe(1);
    expect(await total("q=beta%20a")).toBe(1);
    expect(await total("q=zzz")).toBe(0);
  });

  it("answers 400 validation_error naming the parameter", async () => {
    for (const [q, param] of [
      ["page_size=251", "page_size"],
      ["page=0", "page"],
      ["sort=nonsense", "sort"],
      ["order=sideways", "order"],
      ["source=nope", "source"],
      [`q=${"x".repeat(101)}`, "q"],
      ["symbol=%00", "symbol"],
    ]) {
      const res = await api(`/data?${q}`);
      expect(res.status, q).toBe(400);
      const body = await res.json<{ error: { code: string; message: string; request_id: string } }>();
      expect(body.error.code).toBe("validation_error");
      expect(body.error.message).toContain(param);
      expect(body.error.request_id).toBe(res.headers.get("x-request-id"));
    }
  });

  it("sends ETag and Cache-Control, and 304 on If-None-Match", async () => {
    const a = await api("/data?page_size=3");
    const tag = a.headers.get("etag");
    expect(tag).toBeTruthy();
    expect(a.headers.get("cache-control")).toContain("max-age");
    const b = await api("/data?page_size=3", { headers: { "if-none-match": tag! } });
    expect(b.status).toBe(304);
    expect(await b.text()).toBe("");
  });
});

describe("GET /data/{asset_uid}", () => {
  it("returns per-source quotes, consensus and mappings; 404 for unknown assets", async () => {
    const list = await (await api("/data?symbol=ALP")).json<Body<{ asset_uid: string }[]>>();
    const uid = list.data[0].asset_uid;
    const res = await api(`/data/${uid}`);
    const body =
      await res.json<
        Body<{ quotes: { source: string }[]; consensus: { price_usd: number; sources: number }; mappings: { rule: string }[] }>
      >();
    expect(body.data.quotes.map((q) => q.source)).toEqual(["csv"]);
    expect(body.data.consensus).toEqual({ price_usd: 10, spread_pct: 0, sources: 1, excluded: [] });
    expect(body.data.mappings[0].rule).toBe("new_asset");
    const missing = await api("/data/definitely-not-a-coin");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: "not_found" } });
    const hist = await api(`/data/${uid}/history?source=csv`);
    expect((await hist.json<Body<unknown[]>>()).data).toHaveLength(1);
    expect((await api("/data/definitely-not-a-coin/history")).status).toBe(404);
    expect((await api(`/data/${uid}/history?from=yesterday`)).status).toBe(400);
  });
});

describe("operations endpoints", () => {
  it("/stats, /stats/runs and /stats/checkpoints", async () => {
    const stats = await (await api("/stats")).json<
      Body<{ totals: { assets: number }; runs: { total: number }; sources: Record<string, unknown> }>
    >();
    expect(stats.data.totals.assets).toBeGreaterThanOrEqual(4);
    expect(stats.data.runs.total).toBeGreaterThanOrEqual(1);
    expect(Object.keys(stats.data.sources).sort()).toEqual(["coingecko", "coinpaprika", "csv"]);
    const runs = await (await api("/stats/runs?source=csv&status=partial")).json<Body<{ source: string }[]>>();
    expect(runs.data.every((r) => r.source === "csv")).toBe(true);
    expect((await api("/stats/runs?status=bogus")).status).toBe(400);
    const cps = await (await api("/stats/checkpoints")).json<Body<{ source: string }[]>>();
    expect(cps.data.map((c) => c.source)).toEqual(["coingecko", "coinpaprika", "csv"]);
  });

  it("/metrics is valid Prometheus text derived from D1", async () => {
    const res = await api("/metrics");
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    const samples = text.split("\n").filter((l) => l && !l.startsWith("#"));
    const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (-?[0-9.]+([eE][+-]?\d+)?|NaN|\+Inf|-Inf)$/;
    expect(samples.filter((l) => !sample.test(l))).toEqual([]);
    expect(text).toMatch(/# TYPE coinfuse_runs_total counter/);
    expect(text).toMatch(/coinfuse_quotes\{source="csv"\} [1-9]/);
    // What filters derive from the snapshot is counted beside it: a source-scoped page keeps its order.
    const derived = async () => Number(/^coinfuse_read_model_derived_bytes (\d+)$/m.exec(await (await api("/metrics")).text())?.[1]);
    const before = await derived();
    expect((await api("/data?source=csv&sort=change_24h")).status).toBe(200);
    expect(await derived()).toBeGreaterThan(before);
  });

  it("/openapi.json documents every route as OpenAPI 3.1 and /docs serves Swagger UI", async () => {
    const doc = await (await api("/openapi.json")).json<{ openapi: string; paths: Record<string, unknown> }>();
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths).length).toBeGreaterThanOrEqual(18);
    const docs = await api("/docs");
    expect(await docs.text()).toContain("swagger-ui");
  });

  it("every error has the one shape, including unknown routes", async () => {
    const res = await api("/no-such-route");
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: { code: "not_found", message: expect.any(String), details: [], request_id: res.headers.get("x-request-id") },
    });
  });
});

describe("writes", () => {
  it("fail closed with 503 admin_disabled when no ADMIN_TOKEN is configured", async () => {
    const res = await apiWith({ ADMIN_TOKEN: undefined }, "/etl/run-all", { method: "POST", token: TOKEN });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { code: "admin_disabled" } });
  });

  it("a bad configuration value is a clear error naming the variable", async () => {
    const res = await apiWith({ MAX_UPLOAD_BYTES: "lots" }, "/data");
    expect(res.status).toBe(500);
    expect((await res.json<{ error: { message: string } }>()).error.message).toContain("MAX_UPLOAD_BYTES");
  });

  it("need the admin token", async () => {
    for (const [method, path] of [
      ["POST", "/etl/run/coingecko"],
      ["POST", "/etl/run-all"],
      ["POST", "/etl/replay"],
      ["PUT", "/uploads/csv/a.csv"],
      ["PUT", "/assets/bitcoin/mappings"],
    ]) {
      const anon = await api(path, { method, body: method === "PUT" ? "a,b" : undefined });
      expect(anon.status, path).toBe(401);
      expect(await anon.json()).toMatchObject({ error: { code: "unauthorized" } });
      const wrong = await api(path, { method, token: "wrong-token", body: method === "PUT" ? "a,b" : undefined });
      expect(wrong.status, path).toBe(401);
    }
  });

  it("reject oversize (413) and non-CSV (415) uploads, and bad pin bodies (400/404)", async () => {
    const big = await apiWith({ MAX_UPLOAD_BYTES: "1000" }, "/uploads/csv/big.csv", {
      method: "PUT",
      token: TOKEN,
      headers: { "content-type": "text/csv" },
      body: "x".repeat(1024),
    });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error: { code: "payload_too_large" } });
    const json = await api("/uploads/csv/x.json", {
      method: "PUT",
      token: TOKEN,
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(json.status).toBe(415);
    expect(await json.json()).toMatchObject({ error: { code: "unsupported_media_type" } });
    const bad = await pinMapping("anything", { source: "nope", source_id: 1 });
    expect(bad.status).toBe(400);
    const missing = await pinMapping("no-such-asset", { source: "csv", source_id: "x" });
    expect(missing.status).toBe(404);
  });
});

describe("GET /data at 50,000 assets", () => {
  it("reads at most 120 D1 rows for every sort, filter and depth, and pages agree with a plain sort", async () => {
    const db = dbFor(env.DB);
    const N = 50_000;
    const now = "2026-01-01T00:00:00.000Z";
    const buckets = { coingecko: new Map<number, QuoteBucket>(), coinpaprika: new Map<number, QuoteBucket>() };
    for (let b = 0; b * QUOTES_PER_BUCKET < N; b++) {
      const quotes: Record<string, StoredQuote> = {};
      for (let slot = b * QUOTES_PER_BUCKET; slot < Math.min(N, (b + 1) * QUOTES_PER_BUCKET); slot++) {
        const i = slot + 1;
        quotes[`load-${i}`] = {
          ...{ sourceId: `load-${i}`, symbol: `L${i}`, name: `Load ${i}`, rank: i, priceUsd: i * 0.5, marketCapUsd: i * 100 },
          ...{ volume24hUsd: (i * 7919) % 1000, change24hPct: ((i * 31) % 200) - 100, circulatingSupply: null, totalSupply: null },
          ...{ maxSupply: null, sourceUpdatedAt: now, assetUid: `load-${i}`, slot, ingestedAt: now, runId: "load" },
        };
      }
      buckets[b % 2 ? "coinpaprika" : "coingecko"].set(b, quotes);
    }
    for (const [source, bs] of Object.entries(buckets)) await runBatch(db, quoteBucketStatements(source, bs, now));
    await publishReadModel(db, env.BUCKET);
    const rowsRead = (res: Response) => Number(/d1;[^,]*desc="rows_read=(\d+)"/.exec(res.headers.get("server-timing") ?? "")?.[1] ?? "NaN");
    const worst: string[] = [];
    for (const sort of SORT_KEYS) {
      for (const order of ["asc", "desc"] as const) {
        for (const filter of ["", "&source=coingecko", "&symbol=L777", "&q=load%204999"]) {
          for (const page of [1, 400]) {
            const res = await api(`/data?page=${page}&page_size=50&sort=${sort}&order=${order}${filter}`);
            expect(res.status).toBe(200);
            if (!(rowsRead(res) <= 120)) worst.push(`${sort} ${order} ${filter} page ${page}: ${rowsRead(res)}`);
          }
        }
      }
    }
    expect(worst).toEqual([]);
    const deep = await (await api("/data?page=700&page_size=50&sort=market_cap&order=desc")).json<Body<{ asset_uid: string }[]>>();
    // market cap = i * 100 over the load coins, so page 700 descending starts at the 34,951st largest.
    const load = deep.data.filter((a) => a.asset_uid.startsWith("load-"));
    expect(load[0]?.asset_uid).toBe(`load-${N - 34_950}`);
    expect(deep.metadata.total).toBeGreaterThanOrEqual(N);
    // A search matching thousands ("Load 1…": 1, 10–19, 100–199, …) pages through them in either order.
    const matching = Array.from({ length: N }, (_, i) => i).filter((i) => String(i).startsWith("1"));
    for (const order of ["asc", "desc"] as const) {
      const want = (order === "asc" ? matching : [...matching].reverse()).slice(100, 150).map((i) => `load-${i}`);
      const page = await (await api(`/data?page=3&page_size=50&sort=market_cap&order=${order}&q=load%201`)).json<
        Body<{ asset_uid: string }[]>
      >();
      expect(page.metadata.total).toBe(matching.length);
      expect(page.data.map((a) => a.asset_uid)).toEqual(want);
    }
  });
});
