import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import geckoRates from "../data/coingecko/exchange_rates.json";
import geckoPage1 from "../data/coingecko/markets-page-1.json";
import geckoPage2 from "../data/coingecko/markets-page-2.json";
import paprika from "../data/coinpaprika/tickers.json";
import paprikaBtc from "../data/coinpaprika/tickers-btc-bitcoin.json";
import sampleCsv from "../data/csv/sample.csv?raw";
import { acquireLease, fenceStatement, releaseLease } from "../src/db/lease";
import { completeRun } from "../src/ingest/finish";
import { REBUILD_LEASE, rebuild } from "../src/ingest/rebuild";
import { startSourceRun } from "../src/ingest/start-run";
import type { JobMessage } from "../src/jobs/messages";
import { runMeteredJob } from "../src/jobs/queue";
import type { Services } from "../src/services";
import { forgetMapCopies } from "../src/unify/map-cache";
import { apiWith, drain, json, rows, stageCsv, storedRows, stubUpstream, TOKEN, testServices } from "./helpers";

const FIVE_MINUTES = 5 * 60_000;
const later = (iso: string, ms: number) => new Date(Date.parse(iso) + ms).toISOString();

/** CoinGecko's recorded pages at tick 0, and at tick 1 five minutes later with every price up 1%. */
const geckoPages = (tick: number) =>
  [geckoPage1, geckoPage2].map((page) =>
    (page as Record<string, unknown>[]).map((c) =>
      tick === 0
        ? c
        : {
            ...c,
            last_updated: later(c.last_updated as string, tick * FIVE_MINUTES),
            current_price: typeof c.current_price === "number" ? c.current_price * 1.01 : c.current_price,
          },
    ),
  );

/** The recorded upstream; CoinPaprika answers the same body at every tick (archived once, as a market that did not move). */
function upstream(tick: number) {
  const pages = geckoPages(tick);
  return stubUpstream((url) => {
    if (url.pathname.endsWith("/coins/markets")) return json(pages[Number(url.searchParams.get("page")) - 1] ?? []);
    if (url.pathname.endsWith("/tickers")) return json(paprika);
    if (url.pathname.endsWith("/exchange_rates")) return json(geckoRates);
    if (url.pathname.endsWith("/tickers/btc-bitcoin")) return json(paprikaBtc);
    return undefined;
  });
}

/** The first `n` rows of the sample CSV, ten minutes later and 2% dearer. */
function laterCsv(n: number) {
  const [header, ...lines] = sampleCsv.trim().split("\n");
  const moved = lines.slice(0, n).map((line) => {
    const cells = line.split('","');
    const ts = cells.length - 1;
    cells[ts] = `${Number(cells[ts].replace(/"/g, "")) + 2 * FIVE_MINUTES}"`;
    const price = 8;
    cells[price] = String(Number(cells[price]) * 1.02);
    return cells.join('","');
  });
  return `${[header, ...moved].join("\n")}\n`;
}

const ADMIN = { Authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };

/** Every table's rows gone, the schema kept (as after a bad DELETE, or a new database with the migrations applied). */
async function deleteEveryRow() {
  const tables = await rows<{ name: string }>(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name != 'd1_migrations'",
  );
  for (const t of tables) await env.DB.prepare(`DELETE FROM "${t.name}"`).run();
  return tables.map((t) => t.name);
}

/** A bucket and KV with nothing from other tests: the archive holds exactly what this test ingests. */
async function emptyArchive() {
  for (const prefix of ["raw/", "uploads/", "read-model/"]) {
    const listed = await env.BUCKET.list({ prefix });
    if (listed.objects.length) await env.BUCKET.delete(listed.objects.map((o) => o.key));
  }
  for (const source of ["coingecko", "coinpaprika", "csv"]) await env.KV.delete(`map:${source}`);
  forgetMapCopies();
}

/** An archive of one tick, a database that lost every row, and a rebuild started: its messages run up to its first replay message, returned unrun. */
async function rebuildUpToReplay() {
  await emptyArchive();
  await deleteEveryRow();
  await env.DB.prepare("INSERT INTO read_model (id, claimed, version, key, assets, built_at) VALUES (1, 0, 0, NULL, 0, NULL)").run();
  const { s, sent } = testServices();
  await ingest(s, sent, 1);
  await deleteEveryRow();
  await env.DB.prepare("INSERT INTO read_model (id, claimed, version, key, assets, built_at) VALUES (1, 0, 0, NULL, 0, NULL)").run();
  const res = await apiWith({ JOBS: s.env.JOBS }, "/etl/rebuild", { method: "POST", headers: ADMIN, body: "{}" });
  expect(res.status).toBe(202);
  while (sent.length && !(sent[0].type === "rebuild" && sent[0].step === "replay")) {
    const job = sent.shift()!;
    if (job.type === "rebuild") await rebuild(s, job, { listLimit: 1000 });
    else expect(await runMeteredJob(s, job)).toBeNull();
  }
  const replay = sent.shift()!;
  if (replay.type !== "rebuild" || replay.step !== "replay") throw new Error(`expected the first replay message, got ${replay.type}`);
  return { s, sent, replay };
}

async function ingest(s: Services, sent: JobMessage[], tick: number) {
  for (const source of ["coingecko", "coinpaprika"] as const) {
    const run = await startSourceRun({ ...s, fetch: upstream(tick).fetch }, source, "manual");
    expect(run.started).toBe(true);
    await drain({ ...s, fetch: upstream(tick).fetch }, sent);
  }
}

async function get<T = { data: unknown }>(path: string) {
  const res = await apiWith({}, path);
  expect(res.status).toBe(200);
  return res.json<T>();
}

/** What a user sees and what the database holds: assets, mappings (pins aside), latest quotes, history, and the archive's index. */
async function snapshot() {
  const list: unknown[] = [];
  for (let page = 1; ; page++) {
    const body = await get<{ data: { asset_uid: string }[]; metadata: { total: number } }>(`/data?page_size=250&page=${page}`);
    list.push(...body.data);
    if (page * 250 >= body.metadata.total) break;
  }
  const uids = (list as { asset_uid: string }[]).map((a) => a.asset_uid).sort();
  const details: Record<string, unknown> = {};
  for (const uid of uids) {
    const { data } = await get<{ data: { quotes: Record<string, unknown>[] } }>(`/data/${encodeURIComponent(uid)}`);
    // When a quote was stored is the one thing a replay cannot repeat.
    details[uid] = { ...data, quotes: data.quotes.map(({ ingested_at: _, ...q }) => q) };
  }
  const histories: Record<string, unknown> = {};
  for (const uid of ["bitcoin", "ethereum", uids[uids.length - 1]]) histories[uid] = (await get(`/data/${uid}/history`)).data;
  // FX is reference data the archive holds too: history in another currency converts at the rates of its time.
  histories["bitcoin-eur"] = (await get("/data/bitcoin/history?vs_currency=eur")).data;
  const currencies = (await get("/currencies")).data;
  return {
    list,
    details,
    histories,
    currencies,
    assets: await rows("SELECT asset_uid FROM assets ORDER BY asset_uid"),
    aliases: await rows("SELECT alias_uid, asset_uid FROM asset_aliases ORDER BY alias_uid"),
    mappings: await rows("SELECT source, source_id, asset_uid, rule, name FROM asset_mappings WHERE pinned = 0 ORDER BY source, source_id"),
    history: await storedRows(
      `SELECT source, source_id, resolution, at, asset_uid, price_usd, market_cap_usd, volume_24h_usd FROM quote_history
       ORDER BY source, source_id, resolution, at`,
    ),
    quotes: await storedRows(
      `SELECT source, source_id, asset_uid, symbol, name, rank, price_usd, market_cap_usd, volume_24h_usd, change_24h_pct,
        circulating_supply, total_supply, max_supply, source_updated_at FROM source_quotes ORDER BY source, source_id`,
    ),
    raw: await rows<{ fetched_at: string }>(
      "SELECT id, source, run_id, key, bytes, records, content_type, origin, digest, fetched_at FROM raw_payloads ORDER BY id",
    ),
    uploads: await rows("SELECT key, filename, bytes, etag, status, accepted, rejected FROM uploads ORDER BY key"),
  };
}

/** Runs queued jobs until none is left; rebuild messages with small per-message bounds, so the rebuild spans many of them. */
async function drainSmall(s: Services, sent: JobMessage[]) {
  const steps: string[] = [];
  for (let i = 0; i < 500 && sent.length; i++) {
    const job = sent.shift()!;
    if (job.type === "rebuild") {
      steps.push(job.step);
      await rebuild(s, job, { itemsPerMessage: 2, listLimit: 2, listCalls: 1 });
    } else {
      const error = await runMeteredJob(s, job);
      if (error) throw error;
    }
  }
  expect(sent).toEqual([]);
  return steps;
}

describe("POST /etl/rebuild", () => {
  it("brings back assets, mappings, latest quotes and history into a database that lost every row", { timeout: 180_000 }, async () => {
    await emptyArchive();
    await deleteEveryRow();
    await env.DB.prepare("INSERT INTO read_model (id, claimed, version, key, assets, built_at) VALUES (1, 0, 0, NULL, 0, NULL)").run();
    const { s, sent } = testServices({ vars: { COINGECKO_REQUESTS_PER_MINUTE: "60000", COINPAPRIKA_REQUESTS_PER_MINUTE: "60000" } });

    // Tick 0: both sources, then a CSV through the API; tick 1: CoinGecko moved, CoinPaprika did not, a second CSV put in R2 directly.
    await ingest(s, sent, 0);
    const upload = await apiWith({ JOBS: s.env.JOBS }, "/uploads/csv/sample.csv", {
      method: "PUT",
      headers: { ...ADMIN, "content-type": "text/csv" },
      body: sampleCsv,
    });
    expect(upload.status).toBe(202);
    await drain(s, sent);
    await ingest(s, sent, 1);
    await stageCsv(s, sent, "later.csv", laterCsv(30));
    await drain(s, sent);

    const before = await snapshot();
    expect(before.list.length).toBeGreaterThan(300);
    // Two CoinGecko ticks of two pages each and one CoinPaprika body (the second was the same bytes),
    // and each source's FX body (the same bytes at both ticks).
    expect(before.raw.length).toBe(7);
    // Each archived object carries what its key cannot: its part, exact fetch time and origin.
    for (const r of before.raw as { id: string; run_id: string; key: string; origin: string; fetched_at: string }[]) {
      const head = await env.BUCKET.head(r.key);
      expect(head?.customMetadata).toMatchObject({ run_id: r.run_id, fetched_at: r.fetched_at, origin: r.origin });
      expect(`${r.run_id}-${head?.customMetadata?.part}`).toBe(r.id);
    }
    expect(before.history.length).toBeGreaterThan(before.quotes.length);
    expect(before.uploads).toHaveLength(2);

    const emptied = await deleteEveryRow();
    expect(emptied).toEqual(
      expect.arrayContaining(["assets", "asset_mappings", "quote_buckets", "history_buckets", "raw_payloads", "uploads"]),
    );
    expect(await rows("SELECT 1 FROM asset_mappings UNION ALL SELECT 1 FROM quote_buckets UNION ALL SELECT 1 FROM raw_payloads")).toEqual(
      [],
    );

    const res = await apiWith({ JOBS: s.env.JOBS }, "/etl/rebuild", { method: "POST", headers: ADMIN, body: "{}" });
    expect(res.status).toBe(202);
    const { data } = await res.json<{ data: { runs: { run_id: string; source: string; status: string; trigger: string }[] } }>();
    expect(data.runs.map((r) => [r.source, r.status, r.trigger])).toEqual([
      ["coingecko", "queued", "replay"],
      ["coinpaprika", "queued", "replay"],
      ["csv", "queued", "replay"],
    ]);
    const steps = await drainSmall(s, sent);
    // Listing two keys a call and replaying two objects a message: the work went through many bounded messages.
    expect(steps.filter((x) => x === "list").length).toBeGreaterThan(3);
    expect(steps.filter((x) => x === "replay").length).toBeGreaterThan(3);

    // The recorded pages and CSV hold a few invalid records: replayed, they are rejected again.
    const finished = await Promise.all(data.runs.map((r) => get<{ data: { status: string } }>(`/etl/runs/${r.run_id}`)));
    expect(finished.map((r) => r.data.status)).toEqual(["partial", "partial", "succeeded"]);
    expect(await rows("SELECT * FROM leases")).toEqual([]);

    const after = await snapshot();
    expect(after.assets).toEqual(before.assets);
    expect(after.aliases).toEqual(before.aliases);
    expect(after.mappings).toEqual(before.mappings);
    expect(after.quotes).toEqual(before.quotes);
    expect(after.history).toEqual(before.history);
    expect(after.list).toEqual(before.list);
    expect(after.details).toEqual(before.details);
    expect(after.histories).toEqual(before.histories);
    // The same rates; `as_of` is the last fetch that archived a body (an identical body fetched later is not archived again).
    const rates = (cs: unknown) => (cs as { as_of: string }[]).map(({ as_of: _, ...c }) => c);
    expect(rates(after.currencies)).toEqual(rates(before.currencies));
    expect((before.currencies as { code: string }[]).map((c) => c.code)).toContain("eur");
    // The index rows come back from R2 as they were: id, part, origin and the exact fetch time from each object's metadata.
    expect(after.raw).toEqual(before.raw);
    expect(after.uploads).toEqual(before.uploads);
  });

  it("answers 409 conflict while a rebuild runs, and starts again once it finished", async () => {
    await env.DB.prepare("DELETE FROM leases").run();
    const { s, sent } = testServices();
    const post = () => apiWith({ JOBS: s.env.JOBS }, "/etl/rebuild", { method: "POST", headers: ADMIN, body: "{}" });
    const first = await post();
    expect(first.status).toBe(202);
    const runs = (await first.json<{ data: { runs: { run_id: string }[] } }>()).data.runs.map((r) => r.run_id);

    const second = await post();
    expect(second.status).toBe(409);
    const body = await second.json<{ error: { code: string; details: { running_run_ids: string[] }[]; request_id: string } }>();
    expect(body.error.code).toBe("conflict");
    expect(body.error.details[0].running_run_ids).toEqual(runs);
    expect(body.error.request_id).toBe(second.headers.get("x-request-id"));

    await drain(s, sent, 200);
    const [lease] = await rows("SELECT * FROM leases WHERE name = ?", REBUILD_LEASE);
    expect(lease).toBeUndefined();
    const third = await post();
    expect(third.status).toBe(202);
    await drain(s, sent, 200);
  });

  it("needs the admin token, takes an empty body only, and is in the OpenAPI document", async () => {
    expect((await apiWith({}, "/etl/rebuild", { method: "POST" })).status).toBe(401);
    const bad = await apiWith({}, "/etl/rebuild", { method: "POST", headers: ADMIN, body: '{"source":"csv"}' });
    expect(bad.status).toBe(400);
    await env.DB.prepare("DELETE FROM leases").run();
    const { s, sent } = testServices();
    const bare = await apiWith({ JOBS: s.env.JOBS }, "/etl/rebuild", { method: "POST", headers: { Authorization: ADMIN.Authorization } });
    expect(bare.status).toBe(202);
    await drain(s, sent, 200);
    const doc = await (await apiWith({}, "/openapi.json")).json<{ paths: Record<string, { post?: { responses: object } }> }>();
    expect(Object.keys(doc.paths["/etl/rebuild"].post?.responses ?? {})).toEqual(expect.arrayContaining(["202", "401", "409", "503"]));
  });

  it("waits for a source another run took over while the rebuild stalled, stores nothing of it meanwhile, and goes on once it has it back", async () => {
    // A clean database and archive, so that every page ingested is archived anew.
    // An archive of one tick, a database that lost every row, a rebuild started and run up to its first replay message.
    const { s, sent, replay } = await rebuildUpToReplay();
    // The rebuild stalled past CoinGecko's lease and a run took the source over: the rebuild's heartbeat cannot take it back.
    await env.DB.prepare("UPDATE leases SET holder = 'run_other', expires_at = ? WHERE name = 'source:coingecko'")
      .bind(Date.now() + 600_000)
      .run();
    expect(await runMeteredJob(s, replay)).toBeNull();
    // It sends itself again, to go on from where it was (the start: nothing was replayed).
    expect(sent).toMatchObject([{ type: "rebuild", step: "replay", runs: replay.runs, after: replay.after ?? ["", ""] }]);
    expect(await rows("SELECT bucket FROM quote_buckets WHERE source = 'coingecko'")).toEqual([]);
    // A write the rebuild makes for that source all the same (it stalled between its heartbeat and the write) is fenced.
    const store = (await import("../src/ingest/store-chunk")).storeNormalised;
    const fence = fenceStatement("source:coingecko", replay.runs.coingecko);
    const normalised = { quotes: [], rejected: [] };
    await expect(
      store(s.db, s.env.KV, { source: "coingecko", runId: replay.runs.coingecko, part: "late", fetched: 0, normalised, also: [fence] }),
    ).rejects.toThrow(/lease_fence/);
    // The other run finishes: the waiting message takes the source back and replays it.
    await env.DB.prepare("DELETE FROM leases WHERE name = 'source:coingecko'").run();
    await drain(s, sent, 200);
    expect((await rows("SELECT bucket FROM quote_buckets WHERE source = 'coingecko'")).length).toBeGreaterThan(0);
  });

  it("fails, naming the source, once a run that took over a source's expired lease closed the rebuild's run of it, instead of waiting for good", async () => {
    // An archive of one tick, a database that lost every row, a rebuild started and run up to its first replay message.
    const { s, sent, replay } = await rebuildUpToReplay();
    // The rebuild stalls past CoinGecko's lease; a cron run takes the source over and closes the rebuild's run of it.
    await env.DB.prepare("UPDATE leases SET expires_at = 0 WHERE name = 'source:coingecko'").run();
    const cron = await startSourceRun(s, "coingecko", "cron");
    if (!cron.started) throw new Error("the cron run did not take the expired lease over");
    sent.length = 0;
    expect(await runMeteredJob(s, replay)).toBeNull();
    // No message to wait with: the rebuild is over, every run closed, its leases released; the cron run keeps its own.
    expect(sent).toEqual([]);
    const runs = await rows<{ source: string; status: string; error: string }>(
      `SELECT source, status, error FROM ingestion_runs WHERE run_id IN (?, ?, ?) ORDER BY source`,
      replay.runs.coingecko,
      replay.runs.coinpaprika,
      replay.runs.csv,
    );
    expect(runs.map((r) => [r.source, r.status])).toEqual([
      ["coingecko", "failed"],
      ["coinpaprika", "failed"],
      ["csv", "failed"],
    ]);
    expect(runs[0].error).toMatch(/abandoned/);
    expect(runs[1].error).toMatch(/coingecko run was closed by a run that took over its expired lease/);
    expect(await rows("SELECT name, holder FROM leases ORDER BY name")).toEqual([{ name: "source:coingecko", holder: cron.run.runId }]);
  });

  it("goes on past a source whose run its own close finished already (its last message delivered again), and ends", async () => {
    // An archive of one tick, a database that lost every row, a rebuild started and run up to its first replay message.
    const { s, sent, replay } = await rebuildUpToReplay();
    sent.unshift(replay);
    // The rebuild's close had finished its CoinGecko run (and released the source) when its worker died.
    await completeRun(s, replay.runs.coingecko, { holdsLease: true });
    await drain(s, sent, 200);
    const runs = await rows<{ source: string; status: string; error: string | null }>(
      "SELECT source, status, error FROM ingestion_runs WHERE run_id IN (?, ?, ?) ORDER BY source",
      replay.runs.coingecko,
      replay.runs.coinpaprika,
      replay.runs.csv,
    );
    expect(runs.every((r) => ["succeeded", "partial"].includes(r.status))).toBe(true);
    expect(await rows("SELECT name FROM leases")).toEqual([]);
  });

  it("waits for a source's running run before it replays anything", async () => {
    await env.DB.prepare("DELETE FROM leases").run();
    const { s, sent } = testServices();
    expect(await acquireLease(s.db, "source:coinpaprika", "run_live", 60_000)).toBe(true);
    const res = await apiWith({ JOBS: s.env.JOBS }, "/etl/rebuild", { method: "POST", headers: ADMIN, body: "{}" });
    const runs = (await res.json<{ data: { runs: { run_id: string }[] } }>()).data.runs.map((r) => r.run_id);
    // The start finds CoinPaprika running: it waits (sends itself again) and marks nothing running.
    await runMeteredJob(s, sent.shift()!);
    expect(sent).toMatchObject([{ type: "rebuild", step: "start" }]);
    const statuses = await rows<{ status: string }>(
      `SELECT status FROM ingestion_runs WHERE run_id IN (${runs.map(() => "?").join(",")})`,
      ...runs,
    );
    expect(statuses.map((r) => r.status)).toEqual(["queued", "queued", "queued"]);
    await releaseLease(s.db, "source:coinpaprika", "run_live");
    await drain(s, sent, 200);
    const finished = await rows<{ status: string }>(
      `SELECT status FROM ingestion_runs WHERE run_id IN (${runs.map(() => "?").join(",")})`,
      ...runs,
    );
    expect(finished.map((r) => r.status)).not.toContain("queued");
    expect(finished.map((r) => r.status)).not.toContain("running");
    expect(finished.map((r) => r.status)).not.toContain("failed");
  });
});
