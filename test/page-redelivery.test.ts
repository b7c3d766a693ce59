import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import geckoPage1 from "../data/coingecko/markets-page-1.json";
import { startSourceRun } from "../src/ingest/start-run";
import type { JobMessage } from "../src/jobs/messages";
import { runMeteredJob } from "../src/jobs/queue";
import { readArchived } from "../src/lib/raw-archive";
import { drain, json, rows, storedRows, stubUpstream, testServices } from "./helpers";
import { signal } from "./interleave";

const coins = (n: number, from: number, at: string, price: number) =>
  Array.from({ length: n }, (_, i) => ({
    ...(geckoPage1[0] as Record<string, unknown>),
    id: `redeliver-${from + i}`,
    symbol: `rdl${from + i}`,
    name: `Redelivered Coin ${from + i}`,
    market_cap_rank: from + i,
    current_price: price,
    last_updated: at,
  }));

beforeEach(async () => {
  await env.DB.prepare("DELETE FROM leases").run();
});

describe("a page message delivered again while its first delivery still runs", () => {
  it("is fetched, archived, stored and counted once, and enqueues the next page once", async () => {
    // Page 1 is full (250 ids), so page 2 follows; page 2 is short and ends the run. The upstream moved
    // between the two deliveries' calls: the first call answers last, with the newer prices.
    const older = JSON.stringify(coins(250, 1, "2026-11-22T12:00:00.000Z", 1));
    const newer = JSON.stringify(coins(250, 1, "2026-11-22T12:05:00.000Z", 2));
    const last = JSON.stringify(coins(5, 251, "2026-11-22T12:05:00.000Z", 2));
    const firstCallWaiting = signal();
    const firstCallGoesOn = signal();
    let pageOneCalls = 0;
    const up = stubUpstream((url) => {
      if (!url.pathname.endsWith("/coins/markets")) return undefined;
      if (url.searchParams.get("page") === "2") return json(last);
      return async () => {
        if (++pageOneCalls > 1) return json(older);
        firstCallWaiting.resolve();
        await firstCallGoesOn.promise;
        return json(newer);
      };
    });
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
    expect(enqueued.filter((m) => m.type === "fetch_page" && m.page === 2)).toHaveLength(1);
    const [run] = await rows("SELECT status, fetched, accepted, rejected, written FROM ingestion_runs WHERE run_id = ?", runId);
    expect(run).toEqual({ status: "succeeded", fetched: 255, accepted: 255, rejected: 0, written: 255 });
    // Every quote the run wrote is counted: one history point each, at the newer prices it stored.
    const points = await storedRows<{ n: number }>("SELECT COUNT(*) AS n FROM quote_history WHERE source_id LIKE 'redeliver-%'");
    expect(points).toEqual([{ n: 255 }]);
    const prices = await storedRows<{ price_usd: number }>(
      "SELECT DISTINCT price_usd FROM source_quotes WHERE source_id LIKE 'redeliver-%'",
    );
    expect(prices).toEqual([{ price_usd: 2 }]);
    // One archive per page, holding the body its part was read from.
    const parts = await rows<{ part: string; key: string }>(
      "SELECT p.part, r.key FROM run_parts p JOIN raw_payloads r ON r.id = p.raw_id WHERE p.run_id = ? ORDER BY p.part",
      runId,
    );
    expect(parts.map((p) => p.part)).toEqual(["page-1", "page-2"]);
    expect(await new Response(await readArchived(env.BUCKET, parts[0].key)).text()).toBe(newer);
    expect(await rows("SELECT id FROM raw_payloads WHERE run_id = ?", runId)).toHaveLength(2);
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
