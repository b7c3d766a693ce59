import { createExecutionContext, createMessageBatch, createScheduledController, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import geckoPage1 from "../data/coingecko/markets-page-1.json";
import paprika from "../data/coinpaprika/tickers.json";
import { publishReadModel, SNAPSHOT_KEY } from "../src/db/read-model";
import { PAGES_PER_STEP } from "../src/ingest/fetch-page";
import { payloadsToReplay, startReplays } from "../src/ingest/replay";
import { startSourceRun } from "../src/ingest/start-run";
import { handleQueue } from "../src/jobs/queue";
import { handleScheduled } from "../src/jobs/scheduled";
import { setClock } from "../src/lib/clock";
import { readArchived } from "../src/lib/raw-archive";
import { api, drain, json, rows, storedRows, stubUpstream, TOKEN, testServices } from "./helpers";
import { hookedD1 } from "./interleave";

/** A CoinGecko of `total` coins built from the recorded page (ids made unique per test). */
function geckoUniverse(total: number, tag: string) {
  return Array.from({ length: total }, (_, i) => {
    const base = geckoPage1[i % geckoPage1.length] as Record<string, unknown>;
    return { ...base, id: `${tag}-${i}`, symbol: `${tag}${i}`, name: `${tag} coin ${i}`, market_cap_rank: i + 1 };
  });
}

function geckoRoutes(coins: unknown[]) {
  return (url: URL) => {
    if (!url.pathname.endsWith("/coins/markets")) return undefined;
    const page = Number(url.searchParams.get("page"));
    return json(coins.slice((page - 1) * 250, page * 250));
  };
}

/** The calls for quotes (each run also fetches its source's FX rates with its first page). */
const quoteCalls = (up: { calls: { url: URL; at: number; headers: Headers }[] }) =>
  up.calls.filter((c) => c.url.pathname.endsWith("/coins/markets") || c.url.pathname.endsWith("/tickers"));

async function clearLeases() {
  await env.DB.prepare("DELETE FROM leases").run();
  await env.DB.prepare("DELETE FROM request_budgets").run();
}

beforeEach(clearLeases);

/** Full CoinGecko pages of coins tagged `tag`, but page 3 is malformed JSON. */
function thirdPageBroken(tag: string) {
  const coins = geckoUniverse(250 * (PAGES_PER_STEP + 1), tag);
  return stubUpstream((url) => {
    if (!url.pathname.endsWith("/coins/markets")) return undefined;
    const page = Number(url.searchParams.get("page"));
    return page === 3 ? json(`[{"id": "broken-${tag}", `) : json(coins.slice((page - 1) * 250, page * 250));
  });
}

describe("HTTP sources", () => {
  it("pages CoinGecko until the short page, archives each body byte for byte, and keys every call", async () => {
    const coins = geckoUniverse(510, "pg");
    const up = stubUpstream(geckoRoutes(coins));
    const { s, sent } = testServices({ fetch: up.fetch, vars: { COINGECKO_REQUESTS_PER_MINUTE: "6000" } });
    const start = await startSourceRun(s, "coingecko", "manual");
    if (!start.started) throw new Error("not started");
    await drain(s, sent);
    const [run] = await rows<{ status: string; fetched: number; accepted: number; written: number }>(
      "SELECT status, fetched, accepted, written FROM ingestion_runs WHERE run_id = ?",
      start.run.runId,
    );
    expect(run).toEqual({ status: "succeeded", fetched: 510, accepted: 510, written: 510 });
    expect(quoteCalls(up).map((c) => c.url.searchParams.get("page"))).toEqual(["1", "2", "3"]);
    expect(up.calls.every((c) => c.headers.get("x-cg-demo-api-key") === "test-gecko-key")).toBe(true);
    const raws = await rows<{ key: string; bytes: number }>(
      "SELECT key, bytes FROM raw_payloads WHERE run_id = ? ORDER BY id",
      start.run.runId,
    );
    expect(raws).toHaveLength(3);
    // Stored gzipped; read back, the bytes are the body as received.
    const third = await env.BUCKET.get(raws[2].key);
    expect(third!.httpMetadata?.contentEncoding).toBe("gzip");
    expect(third!.size).toBeLessThan(JSON.stringify(coins.slice(500)).length);
    expect(await new Response(await readArchived(env.BUCKET, raws[2].key)).text()).toBe(JSON.stringify(coins.slice(500)));
    const index = await (await api("/data/raw/coingecko?page_size=3")).json<{ data: { id: string; records: number }[] }>();
    expect(index.data[0]).toMatchObject({ records: 10 });
    const served = await api(`/data/raw/coingecko/${index.data[0].id}`);
    expect(served.headers.get("content-type")).toContain("application/json");
    expect(await served.text()).toBe(JSON.stringify(coins.slice(500)));
    expect((await api("/data/raw/coingecko/no-such-payload")).status).toBe(404);
    expect((await api("/data/raw/nope")).status).toBe(400);
    const served2 = await (await api(`/etl/runs/${start.run.runId}`)).json<{ data: { status: string; records: { fetched: number } } }>();
    expect(served2.data).toMatchObject({ status: "succeeded", records: { fetched: 510 } });
    expect((await api("/etl/runs/run_nope")).status).toBe(404);
    expect((await api("/uploads/upl_nope")).status).toBe(404);
    expect(await rows("SELECT holder FROM leases")).toEqual([]);
  });

  it("waits for Retry-After after a 429, then succeeds", async () => {
    const up = stubUpstream((url) =>
      url.pathname.endsWith("/tickers")
        ? [new Response("slow down", { status: 429, headers: { "retry-after": "1" } }), json(paprika)]
        : undefined,
    );
    const { s, sent } = testServices({ fetch: up.fetch });
    const start = await startSourceRun(s, "coinpaprika", "manual");
    await drain(s, sent);
    expect(quoteCalls(up)).toHaveLength(2);
    expect(quoteCalls(up)[1].at - quoteCalls(up)[0].at).toBeGreaterThanOrEqual(950);
    const [run] = await rows<{ status: string }>(
      "SELECT status FROM ingestion_runs WHERE run_id = ?",
      start.started ? start.run.runId : "",
    );
    expect(run.status).toBe("partial");
  });

  it("waits until x-ratelimit-reset (CoinGecko's header) after a 429", async () => {
    const coins = geckoUniverse(10, "rl");
    const reset = () =>
      new Response("{}", {
        status: 429,
        headers: { "x-ratelimit-reset": new Date(Date.now() + 1000).toUTCString(), "x-ratelimit-remaining": "0" },
      });
    const up = stubUpstream((url) => (url.pathname.endsWith("/coins/markets") ? [reset, json(coins)] : undefined));
    const { s, sent } = testServices({ fetch: up.fetch });
    await startSourceRun(s, "coingecko", "manual");
    await drain(s, sent);
    expect(quoteCalls(up)).toHaveLength(2);
    expect(quoteCalls(up)[1].at - quoteCalls(up)[0].at).toBeGreaterThanOrEqual(1000);
  });

  it("retries 5xx answers and succeeds", async () => {
    const coins = geckoUniverse(5, "fx");
    const up = stubUpstream((url) =>
      url.pathname.endsWith("/coins/markets") ? [json({ e: 1 }, { status: 500 }), json({ e: 1 }, { status: 503 }), json(coins)] : undefined,
    );
    const { s, sent } = testServices({ fetch: up.fetch });
    const start = await startSourceRun(s, "coingecko", "manual");
    await drain(s, sent);
    expect(quoteCalls(up)).toHaveLength(3);
    const [run] = await rows<{ status: string; accepted: number }>(
      "SELECT status, accepted FROM ingestion_runs WHERE run_id = ?",
      start.started ? start.run.runId : "",
    );
    expect(run).toEqual({ status: "succeeded", accepted: 5 });
  });

  it("times out a silent upstream and retries", async () => {
    const coins = geckoUniverse(3, "to");
    let n = 0;
    const hang = (async (input: RequestInfo | URL, init?: RequestInit) => {
      if (String(input).includes("/exchange_rates")) return new Response("not here", { status: 404 });
      n++;
      if (n === 1) {
        return new Promise<Response>((_, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal!.reason)));
      }
      return json(coins);
    }) as typeof fetch;
    const { s, sent } = testServices({ fetch: hang, vars: { UPSTREAM_TIMEOUT_MS: "200" } });
    const start = await startSourceRun(s, "coingecko", "manual");
    await drain(s, sent);
    expect(n).toBe(2);
    const [run] = await rows<{ status: string }>(
      "SELECT status FROM ingestion_runs WHERE run_id = ?",
      start.started ? start.run.runId : "",
    );
    expect(run.status).toBe("succeeded");
  });

  for (const [kind, body] of [
    ["malformed", '{"this is": not json'],
    ["truncated", JSON.stringify(paprika).slice(0, 5000)],
  ] as const) {
    it(`fails the run on ${kind} JSON, archives the body, and keeps stored data intact`, async () => {
      const good = stubUpstream((url) => (url.pathname.endsWith("/tickers") ? json(paprika) : undefined));
      const first = testServices({ fetch: good.fetch });
      await startSourceRun(first.s, "coinpaprika", "manual");
      await drain(first.s, first.sent);
      const before = await storedRows(
        "SELECT source_id, price_usd, source_updated_at FROM source_quotes WHERE source = 'coinpaprika' ORDER BY source_id",
      );

      const bad = stubUpstream((url) => (url.pathname.endsWith("/tickers") ? json(body) : undefined));
      const { s, sent } = testServices({ fetch: bad.fetch });
      const start = await startSourceRun(s, "coinpaprika", "manual");
      await drain(s, sent);
      const runId = start.started ? start.run.runId : "";
      const [run] = await rows<{ status: string; error: string }>("SELECT status, error FROM ingestion_runs WHERE run_id = ?", runId);
      expect(run.status).toBe("failed");
      expect(run.error).toMatch(/malformed JSON/);
      expect(
        await storedRows(
          "SELECT source_id, price_usd, source_updated_at FROM source_quotes WHERE source = 'coinpaprika' ORDER BY source_id",
        ),
      ).toEqual(before);
      const [raw] = await rows<{ key: string }>("SELECT key FROM raw_payloads WHERE run_id = ?", runId);
      expect(await new Response(await readArchived(env.BUCKET, raw.key)).text()).toBe(body);
      const health = await (await api("/health")).json<{
        status: string;
        sources: Record<string, { status: string; last_error: string }>;
      }>();
      expect(health.status).toBe("degraded");
      expect(health.sources.coinpaprika.last_error).toMatch(/malformed/);
    });
  }

  it("ends a run that stored its first page and then met malformed JSON as partial, saying why", async () => {
    await clearLeases();
    const coins = geckoUniverse(250, "half");
    const up = stubUpstream((url) => {
      if (!url.pathname.endsWith("/coins/markets")) return undefined;
      return url.searchParams.get("page") === "1" ? json(coins) : json('[{"id": "broken", ');
    });
    const { s, sent } = testServices({ fetch: up.fetch });
    const start = await startSourceRun(s, "coingecko", "manual");
    await drain(s, sent);
    const runId = start.started ? start.run.runId : "";
    const [run] = await rows<{ status: string; error: string; written: number }>(
      "SELECT status, error, written FROM ingestion_runs WHERE run_id = ?",
      runId,
    );
    expect(run).toEqual({ status: "partial", error: expect.stringMatching(/malformed JSON/), written: 250 });
  });

  it("stores the pages of a step before one that fails, and ends the run partial naming that page; no page after it is called", async () => {
    const up = thirdPageBroken("mid");
    const { s, sent } = testServices({ fetch: up.fetch, vars: { COINGECKO_REQUESTS_PER_MINUTE: "6000" } });
    const start = await startSourceRun(s, "coingecko", "manual");
    if (!start.started) throw new Error("not started");
    await drain(s, sent);
    const runId = start.run.runId;
    const [run] = await rows<{ status: string; error: string; fetched: number; written: number }>(
      "SELECT status, error, fetched, written FROM ingestion_runs WHERE run_id = ?",
      runId,
    );
    expect(run).toEqual({
      status: "partial",
      error: expect.stringMatching(/^coingecko page 3: malformed JSON/),
      fetched: 500,
      written: 500,
    });
    expect(quoteCalls(up).map((c) => c.url.searchParams.get("page"))).toEqual(["1", "2", "3"]);
    // Pages 1 and 2 stored as parts with their archives; page 3's body archived and indexed with the close.
    expect(await rows("SELECT part, fetched FROM run_parts WHERE run_id = ? ORDER BY part", runId)).toEqual([
      { part: "page-1", fetched: 500 },
      { part: "page-2", fetched: 0 },
    ]);
    const raws = await rows<{ id: string; records: number | null }>(
      "SELECT id, records FROM raw_payloads WHERE run_id = ? ORDER BY id",
      runId,
    );
    expect(raws).toEqual([
      { id: `${runId}-page-1`, records: 250 },
      { id: `${runId}-page-2`, records: 250 },
      { id: `${runId}-page-3`, records: null },
    ]);
    const [stored] = await storedRows<{ n: number }>("SELECT COUNT(*) AS n FROM source_quotes WHERE source_id LIKE 'mid-%'");
    expect(stored.n).toBe(500);
    expect(await rows("SELECT holder FROM leases")).toEqual([]);
  });

  it("a step whose close is lost after it stored its pages goes on, redelivered, from the page that failed, and ends partial naming it", async () => {
    const up = thirdPageBroken("lost");
    // The worker dies between the step's transaction and the close that names page 3: that batch never commits.
    let crashed = false;
    const db = hookedD1(env.DB, {
      before: ({ sql, kind }) => {
        if (crashed || kind !== "batch" || !sql.some((q) => q.includes('"raw_payloads"')) || sql.some((q) => q.includes('"run_parts"')))
          return;
        crashed = true;
        throw new Error("worker died");
      },
    });
    const { s, sent } = testServices({ fetch: up.fetch, vars: { DB: db, COINGECKO_REQUESTS_PER_MINUTE: "6000" } });
    const start = await startSourceRun(s, "coingecko", "manual");
    if (!start.started) throw new Error("not started");
    const message = sent.shift()!;
    const { runMeteredJob } = await import("../src/jobs/queue");
    expect(await runMeteredJob(s, message)).toBeInstanceOf(Error);
    expect(crashed).toBe(true);
    // The queue delivers the step again: its pages are stored, so it goes on from page 3.
    expect(await runMeteredJob(s, message)).toBeNull();
    await drain(s, sent);
    const [run] = await rows<{ status: string; error: string; fetched: number; written: number }>(
      "SELECT status, error, fetched, written FROM ingestion_runs WHERE run_id = ?",
      start.run.runId,
    );
    expect(run).toEqual({
      status: "partial",
      error: expect.stringMatching(/^coingecko page 3: malformed JSON/),
      fetched: 500,
      written: 500,
    });
    expect(quoteCalls(up).map((c) => c.url.searchParams.get("page"))).toEqual(["1", "2", "3", "3"]);
  });

  it("a step past half its page lease stores the pages it has, and the run goes on from the next page", async () => {
    const coins = geckoUniverse(250 * PAGES_PER_STEP + 10, "slow");
    const routes = geckoRoutes(coins);
    // Page 2's call answers three minutes later (the page lease is five).
    const up = stubUpstream((url) => {
      if (url.pathname.endsWith("/coins/markets") && url.searchParams.get("page") === "2") {
        const later = Date.now() + 3 * 60_000;
        setClock(() => later);
      }
      return routes(url);
    });
    try {
      const { s, sent } = testServices({ fetch: up.fetch, vars: { COINGECKO_REQUESTS_PER_MINUTE: "60000" } });
      const start = await startSourceRun(s, "coingecko", "manual");
      if (!start.started) throw new Error("not started");
      const { runMeteredJob } = await import("../src/jobs/queue");
      expect(await runMeteredJob(s, sent.shift()!)).toBeNull();
      expect(sent.map((m) => m.type === "fetch_page" && m.page)).toEqual([3]);
      await drain(s, sent);
      const [run] = await rows("SELECT status, fetched, written FROM ingestion_runs WHERE run_id = ?", start.run.runId);
      expect(run).toEqual({ status: "succeeded", fetched: coins.length, written: coins.length });
      expect(await rows("SELECT part, fetched FROM run_parts WHERE run_id = ? AND part IN ('page-1', 'page-3')", start.run.runId)).toEqual([
        { part: "page-1", fetched: 500 },
        { part: "page-3", fetched: coins.length - 500 },
      ]);
    } finally {
      setClock(() => Date.now());
    }
  });

  it("stops at SOURCE_PAGE_LIMIT inside a step", async () => {
    const coins = geckoUniverse(250 * PAGES_PER_STEP, "lim");
    const up = stubUpstream(geckoRoutes(coins));
    const { s, sent } = testServices({ fetch: up.fetch, vars: { COINGECKO_REQUESTS_PER_MINUTE: "6000", SOURCE_PAGE_LIMIT: "2" } });
    const start = await startSourceRun(s, "coingecko", "manual");
    if (!start.started) throw new Error("not started");
    await drain(s, sent);
    const [run] = await rows("SELECT status, fetched, written FROM ingestion_runs WHERE run_id = ?", start.run.runId);
    expect(run).toEqual({ status: "succeeded", fetched: 500, written: 500 });
    expect(quoteCalls(up).map((c) => c.url.searchParams.get("page"))).toEqual(["1", "2"]);
  });

  it("refuses a second run of a running source: the lease is in D1", async () => {
    const { s } = testServices();
    const first = await startSourceRun(s, "coingecko", "manual");
    const second = await startSourceRun(s, "coingecko", "manual");
    expect(first.started).toBe(true);
    expect(second).toEqual({ started: false, runningRunId: first.started ? first.run.runId : null });
    const res = await api("/etl/run/coingecko", { method: "POST", token: TOKEN });
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({ error: { code: "conflict" } });
  });

  it("writes no quote rows when the same payload comes twice, and history only for newer quotes", async () => {
    const up = stubUpstream((url) => (url.pathname.endsWith("/tickers") ? json(paprika) : undefined));
    const runs: string[] = [];
    for (let i = 0; i < 2; i++) {
      const { s, sent } = testServices({ fetch: up.fetch });
      const start = await startSourceRun(s, "coinpaprika", "manual");
      runs.push(start.started ? start.run.runId : "");
      await drain(s, sent);
    }
    const [second] = await rows<{ accepted: number; written: number }>(
      "SELECT accepted, written FROM ingestion_runs WHERE run_id = ?",
      runs[1],
    );
    expect(second.accepted).toBeGreaterThan(300);
    expect(second.written).toBe(0);
    const dupes = await storedRows(
      "SELECT source_id, COUNT(*) n FROM quote_history WHERE source = 'coinpaprika' AND resolution = 'raw' GROUP BY source_id, at HAVING n > 1",
    );
    expect(dupes).toEqual([]);
  });

  it("ignores a page message delivered again after its part was stored", async () => {
    const coins = geckoUniverse(20, "dd");
    const up = stubUpstream(geckoRoutes(coins));
    const { s, sent } = testServices({ fetch: up.fetch });
    const start = await startSourceRun(s, "coingecko", "manual");
    const message = sent[0];
    await drain(s, sent);
    const snapshot = await rows("SELECT * FROM ingestion_runs WHERE run_id = ?", start.started ? start.run.runId : "");
    sent.push(message);
    await drain(s, sent);
    expect(quoteCalls(up)).toHaveLength(1);
    expect(await rows("SELECT * FROM ingestion_runs WHERE run_id = ?", start.started ? start.run.runId : "")).toEqual(snapshot);
  });

  it("replays archived payloads without calling upstream", async () => {
    const up = stubUpstream((url) => (url.pathname.endsWith("/tickers") ? json(paprika) : undefined));
    const first = testServices({ fetch: up.fetch });
    await startSourceRun(first.s, "coinpaprika", "manual");
    await drain(first.s, first.sent);
    const calls = up.calls.length;
    const { s, sent } = testServices({ fetch: up.fetch });
    const [run] = await startReplays(s, await payloadsToReplay(s, "coinpaprika"));
    await drain(s, sent);
    expect(up.calls.length).toBe(calls);
    const [done] = await rows<{ trigger: string; status: string; written: number; accepted: number }>(
      "SELECT trigger, status, written, accepted FROM ingestion_runs WHERE run_id = ?",
      run.runId,
    );
    expect(done).toMatchObject({ trigger: "replay", status: "partial", written: 0 });
    expect(done.accepted).toBeGreaterThan(300);
  });

  it("holds its source's lease like any run: while another run of the source holds it, it waits queued, then runs", async () => {
    const up = stubUpstream((url) => (url.pathname.endsWith("/tickers") ? json(paprika) : undefined));
    const first = testServices({ fetch: up.fetch });
    await startSourceRun(first.s, "coinpaprika", "manual");
    await drain(first.s, first.sent);
    // A second live run takes the source; a replay asked for meanwhile must not run beside it.
    const live = testServices({ fetch: up.fetch });
    const started = await startSourceRun(live.s, "coinpaprika", "manual");
    const liveId = started.started ? started.run.runId : "";
    const { s, sent } = testServices({ fetch: up.fetch });
    const [run] = await startReplays(s, await payloadsToReplay(s, "coinpaprika"));
    const message = sent.shift()!;
    const { runMeteredJob } = await import("../src/jobs/queue");
    expect(await runMeteredJob(s, message)).toBeNull();
    expect(sent).toEqual([message]);
    const status = async (id: string) =>
      (
        await rows<{ status: string; started_at: string | null; finished_at: string | null }>(
          "SELECT status, started_at, finished_at FROM ingestion_runs WHERE run_id = ?",
          id,
        )
      )[0];
    expect(await status(run.runId)).toMatchObject({ status: "queued", started_at: null });
    expect(await rows("SELECT part FROM run_parts WHERE run_id = ?", run.runId)).toEqual([]);
    await drain(live.s, live.sent);
    await drain(s, sent);
    const [replayed, liveRun] = [await status(run.runId), await status(liveId)];
    // Both finished (partial: the stub upstream lists no FX or contracts), the replay only after the live run.
    expect([replayed.status, liveRun.status]).toEqual(["partial", "partial"]);
    expect(replayed.started_at! >= liveRun.finished_at!).toBe(true);
    expect(await rows("SELECT name FROM leases WHERE name = 'source:coinpaprika'")).toEqual([]);
  });
});

describe("queue consumer", () => {
  it("acks and retries each message on its own", async () => {
    const { s } = testServices();
    const start = await startSourceRun(s, "coingecko", "manual");
    const runId = start.started ? start.run.runId : "";
    const brokenR2 = { ...env, BUCKET: { put: () => Promise.reject(new Error("R2 unavailable")) } } as never;
    const up = stubUpstream(() => json(geckoUniverse(3, "qq")));
    const batch = createMessageBatch("coinfuse-jobs", [
      { id: "ok", timestamp: new Date(), attempts: 1, body: { type: "replay", run_id: "run_missing", raw_ids: ["x"] } },
      { id: "garbage", timestamp: new Date(), attempts: 1, body: { nope: true } },
      { id: "r2-down", timestamp: new Date(), attempts: 3, body: { type: "fetch_page", run_id: runId, source: "coingecko", page: 1 } },
    ]);
    const ctx = createExecutionContext();
    await handleQueue(batch, brokenR2, up.fetch);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks.sort()).toEqual(["garbage", "ok"]);
    expect(result.retryMessages.map((m) => m.msgId)).toEqual(["r2-down"]);
    const [run] = await rows<{ status: string }>("SELECT status FROM ingestion_runs WHERE run_id = ?", runId);
    expect(run.status).toBe("running");
  });

  it("records dead-lettered messages and fails their run", async () => {
    const { s } = testServices();
    const start = await startSourceRun(s, "coinpaprika", "manual");
    const runId = start.started ? start.run.runId : "";
    const batch = createMessageBatch("coinfuse-dlq", [
      { id: "dead-1", timestamp: new Date(), attempts: 6, body: { type: "fetch_page", run_id: runId, source: "coinpaprika", page: 1 } },
    ]);
    await handleQueue(batch, env as never);
    expect(await rows("SELECT message_id, attempts FROM dead_letters WHERE message_id = 'dead-1'")).toEqual([
      { message_id: "dead-1", attempts: 6 },
    ]);
    const [run] = await rows<{ status: string; error: string }>("SELECT status, error FROM ingestion_runs WHERE run_id = ?", runId);
    expect(run).toEqual({ status: "failed", error: expect.stringMatching(/dead-lettered/) });
    expect(await rows("SELECT * FROM leases")).toEqual([]);
    const stats = await (await api("/stats")).json<{ data: { dead_letters: number } }>();
    expect(stats.data.dead_letters).toBeGreaterThanOrEqual(1);
  });

  it("a dead-lettered replay fails its run and gives its source back", async () => {
    const up = stubUpstream((url) => (url.pathname.endsWith("/tickers") ? json(paprika) : undefined));
    const first = testServices({ fetch: up.fetch });
    await startSourceRun(first.s, "coinpaprika", "manual");
    await drain(first.s, first.sent);
    const { s, sent } = testServices();
    const [run] = await startReplays(s, await payloadsToReplay(s, "coinpaprika"));
    // The replay took its source, then kept failing (R2 gone) until the queue gave up on it.
    const broken = { ...env, BUCKET: { get: () => Promise.reject(new Error("R2 unavailable")) } } as never;
    const replay = sent.shift()!;
    await handleQueue(createMessageBatch("coinfuse-jobs", [{ id: "r", timestamp: new Date(), attempts: 1, body: replay }]), broken);
    expect(await rows("SELECT holder FROM leases WHERE name = 'source:coinpaprika'")).toEqual([{ holder: run.runId }]);
    await handleQueue(
      createMessageBatch("coinfuse-dlq", [{ id: "dead-r", timestamp: new Date(), attempts: 6, body: replay }]),
      env as never,
    );
    const [failed] = await rows<{ status: string }>("SELECT status FROM ingestion_runs WHERE run_id = ?", run.runId);
    expect(failed.status).toBe("failed");
    expect(await rows("SELECT * FROM leases WHERE name = 'source:coinpaprika'")).toEqual([]);
  });
});

describe("cron", () => {
  it("publishes the read model on a tick when no snapshot of this build's format is stored while one was published, and not otherwise", async () => {
    const { s } = testServices();
    await publishReadModel(s.db, s.env.BUCKET);
    const head = () => env.BUCKET.head(SNAPSHOT_KEY);
    const published = async () => (await rows<{ version: number }>("SELECT version FROM read_model WHERE id = 1"))[0].version;
    const tick = () => handleScheduled(createScheduledController({ cron: "* * * * *" }), s.env);

    const current = (await head())!;
    await tick();
    expect((await head())!.etag).toBe(current.etag);

    // Gone (the first tick after a deploy from per-version objects): stored again, at a new version.
    await env.BUCKET.delete(SNAPSHOT_KEY);
    await tick();
    expect((await head())?.customMetadata).toEqual({ version: String(await published()), format: "CFS4" });

    // Stored by a build of another format: published again in this one.
    const before = await published();
    const object = (await env.BUCKET.get(SNAPSHOT_KEY))!;
    await env.BUCKET.put(SNAPSHOT_KEY, await object.arrayBuffer(), { customMetadata: { version: String(before), format: "CFS3" } });
    await tick();
    expect(await published()).toBeGreaterThan(before);
    expect((await head())?.customMetadata).toEqual({ version: String(await published()), format: "CFS4" });
  });

  it("fans out one message per due source, and an overlapping tick adds nothing", async () => {
    await env.DB.prepare("DELETE FROM ingestion_runs").run();
    const { s, sent } = testServices();
    await handleScheduled(createScheduledController({ cron: "* * * * *" }), s.env);
    expect(sent.map((m) => (m.type === "fetch_page" ? `${m.type}:${m.source}:${m.page}` : m.type)).sort()).toEqual([
      "csv_sweep",
      "fetch_page:coingecko:1",
      "fetch_page:coinpaprika:1",
    ]);
    const queued = await rows<{ source: string; trigger: string; status: string }>(
      "SELECT source, trigger, status FROM ingestion_runs ORDER BY source",
    );
    expect(queued.every((r) => r.trigger === "cron" && r.status === "queued")).toBe(true);
    await handleScheduled(createScheduledController({ cron: "* * * * *" }), s.env);
    expect(sent).toHaveLength(3);
  });
});
