import { env, exports } from "cloudflare:workers";
import type { StoredQuote } from "../src/db/schema";
import type { Env } from "../src/env";
import { registerUpload } from "../src/ingest/csv-sweep";
import { storeNormalised } from "../src/ingest/store-chunk";
import type { JobMessage } from "../src/jobs/messages";
import { type Services, servicesFor } from "../src/services";
import type { SourceQuote } from "../src/sources/source-quote";

export const TOKEN = "test-admin-token";

/** A queue that records instead of delivering, so a test decides when each job runs. */
export function recordingQueue() {
  const sent: JobMessage[] = [];
  const queue = {
    send: async (m: JobMessage) => {
      sent.push(m);
    },
    sendBatch: async (ms: Iterable<MessageSendRequest<JobMessage>>) => {
      for (const m of ms) sent.push(m.body);
    },
  } as unknown as Queue<JobMessage>;
  return { queue, sent };
}

/** Services over the test's real D1/KV/R2 with a recording queue and an injectable upstream fetch. */
export function testServices(opts: { fetch?: typeof fetch; vars?: Partial<Env> } = {}) {
  const { queue, sent } = recordingQueue();
  const e = { ...(env as unknown as Env), ...opts.vars, JOBS: queue } as Env;
  const s: Services = servicesFor(e, opts.fetch ?? (() => Promise.reject(new Error("no upstream in tests"))));
  return { s, sent };
}

/** Puts a CSV in R2 and registers it the way the upload endpoint does; returns ids and the queued message. */
export async function stageCsv(s: Services, sent: JobMessage[], name: string, text: string | Uint8Array) {
  const key = `uploads/test-${crypto.randomUUID()}/${name}`;
  const obj = await s.env.BUCKET.put(key, text);
  const ids = await registerUpload(s, { key, filename: name, bytes: obj!.size, etag: obj!.etag });
  const message = sent.at(-1)!;
  return { ...ids, key, message };
}

export function api(path: string, init: RequestInit & { token?: string } = {}) {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  return exports.default.fetch(new Request(`http://coinfuse.test${path}`, { ...init, headers }));
}

/** PUT /assets/{uid}/mappings with the admin token: pins `body`'s mapping to that asset. */
export function pinMapping(assetUid: string, body: unknown) {
  return api(`/assets/${assetUid}/mappings`, {
    method: "PUT",
    token: TOKEN,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

export async function rows<T = Record<string, unknown>>(query: string, ...binds: unknown[]) {
  return (
    await env.DB.prepare(query)
      .bind(...binds)
      .all<T>()
  ).results;
}

/** Runs queued jobs (and the jobs they queue) until none is left, metered as the queue consumer meters them. */
export async function drain(s: Services, sent: JobMessage[], max = 100) {
  const { runMeteredJob } = await import("../src/jobs/queue");
  for (let i = 0; i < max && sent.length; i++) {
    const error = await runMeteredJob(s, sent.shift()!);
    if (error) throw error;
  }
  if (sent.length) throw new Error(`queue not drained after ${max} jobs`);
}

type Reply = Response | (() => Response | Promise<Response>);
/** A stand-in upstream: answers by URL substring, records each call with its time and headers. */
export function stubUpstream(routes: (url: URL) => Reply | Reply[] | undefined) {
  const calls: { url: URL; at: number; headers: Headers }[] = [];
  const queues = new Map<string, Reply[]>();
  const impl = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    calls.push({ url, at: Date.now(), headers: new Headers(init?.headers) });
    let reply = routes(url);
    if (Array.isArray(reply)) {
      const key = url.pathname + url.search;
      if (!queues.has(key)) queues.set(key, [...reply]);
      const q = queues.get(key)!;
      reply = q.length > 1 ? q.shift() : q[0];
    }
    if (!reply) return new Response("not found", { status: 404 });
    const res = typeof reply === "function" ? await reply() : reply;
    return res.clone();
  }) as typeof fetch;
  return { fetch: impl, calls };
}

export const json = (body: unknown, init: ResponseInit = {}) =>
  new Response(typeof body === "string" ? body : JSON.stringify(body), {
    status: 200,
    headers: { "content-type": "application/json" },
    ...init,
  });

/** The app with some variables overridden, as `wrangler dev --var` would. */
export async function apiWith(vars: Partial<Env>, path: string, init: RequestInit & { token?: string } = {}) {
  const { createApp } = await import("../src/app");
  const { createExecutionContext } = await import("cloudflare:test");
  const headers = new Headers(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  return createApp().fetch(
    new Request(`http://coinfuse.test${path}`, { ...init, headers }),
    { ...env, ...vars } as Env,
    createExecutionContext(),
  );
}

/**
 * The packed quote and history buckets unpacked into one row per quote and per point, in tables
 * shaped as the earlier per-coin layout (source_quotes, quote_history), so that assertions read
 * what is stored with plain SQL. Rebuilt on every call; never read by the worker.
 */
export async function unpackStorage() {
  const { blobBytes, decodePoints } = await import("../src/db/history-codec");
  const buckets = await rows<{ source: string; quotes: string }>("SELECT source, quotes FROM quote_buckets");
  const quotes = buckets.flatMap((b) =>
    Object.values(JSON.parse(b.quotes) as Record<string, StoredQuote>).map((q) => ({ source: b.source, ...q })),
  );
  const mappings = await rows<{ source: string; slot: number; source_id: string; asset_uid: string }>(
    "SELECT source, slot, source_id, asset_uid FROM asset_mappings",
  );
  const bySlot = new Map(mappings.map((m) => [`${m.source}:${m.slot}`, m]));
  const history = (
    await rows<{ source: string; bucket: number; resolution: string; period_start: string; points: number[] }>(
      "SELECT source, bucket, resolution, period_start, points FROM history_buckets",
    )
  ).flatMap((r) =>
    decodePoints(Date.parse(r.period_start), r.bucket, blobBytes(r.points)).map((p) => {
      const m = bySlot.get(`${r.source}:${p.slot}`);
      return {
        source: r.source,
        source_id: m?.source_id ?? `slot-${p.slot}`,
        resolution: r.resolution,
        at: new Date(p.at).toISOString(),
        asset_uid: m?.asset_uid ?? null,
        price_usd: p.priceUsd,
        market_cap_usd: p.marketCapUsd,
        volume_24h_usd: p.volume24hUsd,
      };
    }),
  );
  const db = env.DB;
  await db.batch([
    db.prepare("DROP TABLE IF EXISTS source_quotes"),
    db.prepare("DROP TABLE IF EXISTS quote_history"),
    db.prepare(`CREATE TABLE source_quotes (source, source_id, asset_uid, symbol, name, rank, price_usd, market_cap_usd, volume_24h_usd,
      change_24h_pct, circulating_supply, total_supply, max_supply, source_updated_at, ingested_at, run_id)`),
    db.prepare("CREATE TABLE quote_history (source, source_id, resolution, at, asset_uid, price_usd, market_cap_usd, volume_24h_usd)"),
  ]);
  for (let i = 0; i < quotes.length; i += 2000) {
    await db
      .prepare(`INSERT INTO source_quotes SELECT j.value ->> 'source', j.value ->> 'sourceId', j.value ->> 'assetUid', j.value ->> 'symbol',
        j.value ->> 'name', j.value ->> 'rank', j.value ->> 'priceUsd', j.value ->> 'marketCapUsd', j.value ->> 'volume24hUsd',
        j.value ->> 'change24hPct', j.value ->> 'circulatingSupply', j.value ->> 'totalSupply', j.value ->> 'maxSupply',
        j.value ->> 'sourceUpdatedAt', j.value ->> 'ingestedAt', j.value ->> 'runId' FROM json_each(?) j`)
      .bind(JSON.stringify(quotes.slice(i, i + 2000)))
      .run();
  }
  for (let i = 0; i < history.length; i += 5000) {
    await db
      .prepare(`INSERT INTO quote_history SELECT j.value ->> 'source', j.value ->> 'source_id', j.value ->> 'resolution', j.value ->> 'at',
        j.value ->> 'asset_uid', j.value ->> 'price_usd', j.value ->> 'market_cap_usd', j.value ->> 'volume_24h_usd' FROM json_each(?) j`)
      .bind(JSON.stringify(history.slice(i, i + 5000)))
      .run();
  }
}

/** `rows` over the unpacked quote and history tables (see unpackStorage). */
export async function storedRows<T = Record<string, unknown>>(query: string, ...binds: unknown[]) {
  await unpackStorage();
  return rows<T>(query, ...binds);
}

/**
 * A D1 binding that reports each statement's own `meta` (what Cloudflare bills) to `charge`, as an
 * independent count beside the Worker's meter. `raw()` and `first()` run as `all()`, whose meta they lack.
 */
export function metaCountingD1(d1: D1Database, charge: (meta?: D1Meta) => void): D1Database {
  const unwrap = new WeakMap<object, D1PreparedStatement>();
  const statement = (inner: D1PreparedStatement): D1PreparedStatement => {
    const all = async () => {
      const r = await inner.all();
      charge(r.meta);
      return r;
    };
    const s = {
      bind: (...v: unknown[]) => statement(inner.bind(...v)),
      all,
      run: async () => {
        const r = await inner.run();
        charge(r.meta);
        return r;
      },
      first: async (c?: string) => {
        const row = (await all()).results[0] as Record<string, unknown> | undefined;
        return row === undefined ? null : c === undefined ? row : row[c];
      },
      raw: async () => (await all()).results.map((r) => Object.values(r as object)),
    } as unknown as D1PreparedStatement;
    unwrap.set(s, inner);
    return s;
  };
  return {
    prepare: (q: string) => statement(d1.prepare(q)),
    batch: async (ss: D1PreparedStatement[]) => {
      const results = await d1.batch(ss.map((s) => unwrap.get(s) ?? s));
      for (const r of results) charge(r.meta);
      return results;
    },
  } as unknown as D1Database;
}

/** A market record with the figures unification compares; the others empty. */
export const marketQuote = (
  source: "coingecko" | "coinpaprika" | "csv",
  sourceId: string,
  symbol: string,
  name: string,
  priceUsd: number,
  rank: number,
  at = "2026-11-22T12:00:00.000Z",
): SourceQuote => ({
  ...{ source, sourceId, symbol, name, priceUsd, rank, marketCapUsd: null, volume24hUsd: null },
  ...{ change24hPct: null, circulatingSupply: null, totalSupply: null, maxSupply: null, sourceUpdatedAt: at },
});

/** Stores (and so resolves) one page of a source's records, as run `run-<part>`. */
export async function storeQuotes(source: string, part: string, quotes: SourceQuote[]) {
  const { s } = testServices();
  await storeNormalised(s.db, s.env.KV, {
    source,
    runId: `run-${part}`,
    part,
    fetched: quotes.length,
    normalised: { quotes, rejected: [] },
  });
}

/** Empties the given tables of the test's D1. */
export async function clearTables(...tables: string[]) {
  for (const t of tables) await env.DB.prepare(`DELETE FROM ${t}`).run();
}
