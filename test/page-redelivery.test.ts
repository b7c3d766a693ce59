import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import geckoPage1 from "../data/coingecko/markets-page-1.json";
import { PAGES_PER_STEP } from "../src/ingest/fetch-page";
import { startSourceRun } from "../src/ingest/start-run";
import type { JobMessage } from "../src/jobs/messages";
import { runMeteredJob } from "../src/jobs/queue";
import { readArchived } from "../src/lib/raw-archive";
import { drain, json, rows, storedRows, stubUpstream, testServices } from "./helpers";
import { hookedD1, signal } from "./interleave";

const coins = (n: number, from: number, at: string, price: number, tag = "redeliver") =>
  Array.from({ length: n }, (_, i) => ({
    ...(geckoPage1[0] as Record<string, unknown>),
    id: `${tag}-${from + i}`,
    symbol: `rdl${from + i}`,
    name: `Redelivered Coin ${from + i}`,
    market_cap_rank: from + i,
    current_price: price,
    last_updated: at,
  }));

/** Page `page` of a CoinGecko of one full step and a short page after it, every coin at `price`. */
const stepPage = (page: number, price: number, tag?: string) =>
  JSON.stringify(
    page > PAGES_PER_STEP
      ? coins(5, 250 * PAGES_PER_STEP + 1, "2026-11-22T12:05:00.000Z", price, tag)
      : coins(250, 250 * (page - 1) + 1, "2026-11-22T12:05:00.000Z", price, tag),
  );

/**
 * An upstream serving `other` for every page but `held`, whose first call waits (`waiting` says it
 * is waiting) until `release`, then answers `late`; any later call of it answers `again` at once.
 */
function holdingUpstream(held: number, answers: { late: string; again: string; other: (page: number) => string }) {
  const waiting = signal();
  const release = signal();
  let calls = 0;
  const up = stubUpstream((url) => {
    if (!url.pathname.endsWith("/coins/markets")) return undefined;
    const page = Number(url.searchParams.get("page"));
    if (page !== held) return json(answers.other(page));
    return async () => {
      if (++calls > 1) return json(answers.again);
      waiting.resolve();
      await release.promise;
      return json(answers.late);
    };
  });
  return { up, waiting, release };
}

beforeEach(async () => {
  await env.DB.prepare("DELETE FROM leases").run();
});

describe("a page message delivered again while its first delivery still runs", () => {
  it("is fetched, archived, stored and counted once, and enqueues the next step once", async () => {
    // The first step's pages are full (250 ids each), so a second step follows; its one page is short and
    // ends the run. The upstream moved between the two deliveries' calls of page 1: the first call
    // answers last, with the newer prices.
    const older = JSON.stringify(coins(250, 1, "2026-11-22T12:00:00.000Z", 1));
    const newer = stepPage(1, 2);
    const later = (page: number) => stepPage(page, 2);
    const { up, waiting: firstCallWaiting, release: firstCallGoesOn } = holdingUpstream(1, { late: newer, again: older, other: later });
    const { s, sent } = testServices({ fetch: up.fetch, vars: { COINGECKO_REQUESTS_PER_MINUTE: "60000" } });
    const enqueued: JobMessage[] = [];
    const jobs = {
      send: (m: JobMessage, o?: QueueSendOptions) => {
        enqueued.push(m);
        return s.env.JOBS.send(m, o);
      },
    } as Queue<JobMessage>;
    const svc = { ...s, env: { ...s.env, JOBS: jobs } };
    const start = await startSourceRun(svc, "coingecko", "manual");
    if (!start.started) throw new Error("the run did not start");
    const runId = start.run.runId;
    const message = sent.shift()!;

    // The first delivery is waiting for the upstream when the queue delivers the message again.
    const first = runMeteredJob(svc, message);
    await firstCallWaiting.promise;
    expect(await runMeteredJob(svc, message)).toBeNull();
    firstCallGoesOn.resolve();
    expect(await first).toBeNull();
    await drain(svc, sent);

    expect(up.calls.filter((c) => c.url.searchParams.get("page") === "1")).toHaveLength(1);
    expect(enqueued.filter((m) => m.type === "fetch_page" && m.page > 1).map((m) => m.type === "fetch_page" && m.page)).toEqual([
      PAGES_PER_STEP + 1,
    ]);
    const total = 250 * PAGES_PER_STEP + 5;
    const [run] = await rows("SELECT status, fetched, accepted, rejected, written FROM ingestion_runs WHERE run_id = ?", runId);
    expect(run).toEqual({ status: "succeeded", fetched: total, accepted: total, rejected: 0, written: total });
    // Every quote the run wrote is counted: one history point each, at the newer prices it stored.
    const points = await storedRows<{ n: number }>("SELECT COUNT(*) AS n FROM quote_history WHERE source_id LIKE 'redeliver-%'");
    expect(points).toEqual([{ n: total }]);
    const prices = await storedRows<{ price_usd: number }>(
      "SELECT DISTINCT price_usd FROM source_quotes WHERE source_id LIKE 'redeliver-%'",
    );
    expect(prices).toEqual([{ price_usd: 2 }]);
    // One archive per page, holding the body its part was read from; a step's counts are on its first page's part.
    const parts = await rows<{ part: string; key: string; fetched: number }>(
      "SELECT p.part, r.key, p.fetched FROM run_parts p JOIN raw_payloads r ON r.id = p.raw_id WHERE p.run_id = ? ORDER BY CAST(substr(p.part, 6) AS INTEGER)",
      runId,
    );
    const pages = Array.from({ length: PAGES_PER_STEP + 1 }, (_, i) => i + 1);
    expect(parts.map((p) => p.part)).toEqual(pages.map((n) => `page-${n}`));
    expect(parts.map((p) => p.fetched)).toEqual(pages.map((n) => (n === 1 ? 250 * PAGES_PER_STEP : n > PAGES_PER_STEP ? 5 : 0)));
    expect(await new Response(await readArchived(env.BUCKET, parts[0].key)).text()).toBe(newer);
    for (const [i, p] of parts.slice(1).entries())
      expect(await new Response(await readArchived(env.BUCKET, p.key)).text()).toBe(later(i + 2));
    expect(await rows("SELECT id FROM raw_payloads WHERE run_id = ?", runId)).toHaveLength(PAGES_PER_STEP + 1);
  });
});

describe("a step taken over from a delivery that stalled past its page lease", () => {
  it("is stored once from the taker's bodies; the staller's archives are deleted and its late store is fenced out", async () => {
    const body = (page: number) => stepPage(page, 3, "takeover");
    // The staller's late answer differs from the taker's: it is archived as a body of its own.
    const {
      up,
      waiting: stalling,
      release: goesOn,
    } = holdingUpstream(PAGES_PER_STEP, {
      late: stepPage(PAGES_PER_STEP, 4, "takeover"),
      again: body(PAGES_PER_STEP),
      other: body,
    });
    const { s, sent } = testServices({ fetch: up.fetch, vars: { COINGECKO_REQUESTS_PER_MINUTE: "60000" } });
    const start = await startSourceRun(s, "coingecko", "manual");
    if (!start.started) throw new Error("the run did not start");
    const runId = start.run.runId;
    const message = sent.shift()!;

    // The first delivery archived the step's first pages and stalls on its last; its page lease runs out.
    const first = runMeteredJob(s, message);
    await stalling.promise;
    const archivedBy = async () =>
      (await env.BUCKET.list({ prefix: "raw/coingecko/" })).objects.map((o) => o.key).filter((k) => k.includes(runId));
    const stallers = await archivedBy();
    expect(stallers).toHaveLength(PAGES_PER_STEP - 1);
    await env.DB.prepare("UPDATE leases SET expires_at = 0 WHERE name = 'pages:coingecko'").run();
    // The queue delivers the step again: it takes the step over, deletes what the staller archived, and does it all.
    expect(await runMeteredJob(s, message)).toBeNull();
    await drain(s, sent);
    expect((await archivedBy()).filter((k) => stallers.includes(k))).toEqual([]);
    // The staller wakes up, archives its last page and finds its store fenced out: it deletes what it archived.
    goesOn.resolve();
    expect(await first).toBeNull();
    expect(sent).toEqual([]);

    const total = 250 * PAGES_PER_STEP + 5;
    const [run] = await rows("SELECT status, fetched, written FROM ingestion_runs WHERE run_id = ?", runId);
    expect(run).toEqual({ status: "succeeded", fetched: total, written: total });
    const points = await storedRows<{ n: number }>("SELECT COUNT(*) AS n FROM quote_history WHERE source_id LIKE 'takeover-%'");
    expect(points).toEqual([{ n: total }]);
    // What is left in R2 is exactly what D1 indexes: one archive per page, none of the staller's.
    const indexed = await rows<{ key: string }>("SELECT key FROM raw_payloads WHERE run_id = ? ORDER BY key", runId);
    expect(indexed).toHaveLength(PAGES_PER_STEP + 1);
    expect((await archivedBy()).sort()).toEqual(indexed.map((r) => r.key));
    expect(stallers.some((k) => indexed.some((r) => r.key === k))).toBe(false);
  });
});

describe("a step whose store fails (a D1 error, its lease still held)", () => {
  it("gives the step up: what the failed delivery archived is deleted at once, and the retry fetches and stores the step", async () => {
    let failed = false;
    const db = hookedD1(env.DB, {
      before: ({ sql, kind }) => {
        if (failed || kind !== "batch" || !sql.some((q) => q.includes('"quote_buckets"'))) return;
        failed = true;
        throw new Error("D1 is overloaded");
      },
    });
    const up = stubUpstream((url) =>
      url.pathname.endsWith("/coins/markets") ? json(stepPage(Number(url.searchParams.get("page")), 5, "fails")) : undefined,
    );
    const { s, sent } = testServices({ fetch: up.fetch, vars: { DB: db, COINGECKO_REQUESTS_PER_MINUTE: "60000" } });
    const start = await startSourceRun(s, "coingecko", "manual");
    if (!start.started) throw new Error("the run did not start");
    const message = sent.shift()!;
    expect(await runMeteredJob(s, message)).toBeInstanceOf(Error);
    expect(failed).toBe(true);
    // Deleted by the delivery itself, not left to a retry that a dead-lettered message never gets.
    expect((await env.BUCKET.list({ prefix: "raw/coingecko/" })).objects.filter((o) => o.key.includes(start.run.runId))).toEqual([]);
    expect(await runMeteredJob(s, message)).toBeNull();
    await drain(s, sent);
    const runId = start.run.runId;
    expect((await rows<{ status: string }>("SELECT status FROM ingestion_runs WHERE run_id = ?", runId))[0].status).toBe("succeeded");
    // What is left in R2 is exactly what D1 indexes: none of the failed delivery's archives.
    const archived = (await env.BUCKET.list({ prefix: "raw/coingecko/" })).objects.map((o) => o.key).filter((k) => k.includes(runId));
    const indexed = await rows<{ key: string }>("SELECT key FROM raw_payloads WHERE run_id = ? ORDER BY key", runId);
    expect(archived.sort()).toEqual(indexed.map((r) => r.key));
  });
});

describe("a page message of a run that lost its source", () => {
  it("does nothing and is not sent again, even where its own expired delivery still names the page", async () => {
    const { s, sent } = testServices({ fetch: stubUpstream(() => undefined).fetch });
    const start = await startSourceRun(s, "coingecko", "manual");
    if (!start.started) throw new Error("the run did not start");
    const message = sent.shift()!;
    // Its earlier delivery died holding page 1; meanwhile another run took the source over.
    await env.DB.batch([
      env.DB.prepare("INSERT OR REPLACE INTO leases (name, holder, expires_at) VALUES ('pages:coingecko', ?, 0)").bind(
        `${start.run.runId} 1 2026-01-01 dead0001`,
      ),
      env.DB.prepare("UPDATE leases SET holder = 'run_other', expires_at = ? WHERE name = 'source:coingecko'").bind(Date.now() + 600_000),
    ]);
    expect(await runMeteredJob(s, message)).toBeNull();
    expect(sent).toEqual([]);
  });
});
