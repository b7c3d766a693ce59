// First ingestion of a market with the providers' real collision density, through the real pipeline.
//   node bench/ingest.mjs [n=19000]   (INGEST_PORT=18810 moves the Worker; the upstream takes the next port)
// 1. writes n CoinGecko markets (n/250 pages) and about 0.7 n CoinPaprika tickers to bench/out/upstream/
//    (bench/universe-gen.mjs: about a third of CoinGecko coins share their ticker
//    with another, in groups of up to dozens: bridged copies "X (Arbitrum)", "Bridged X",
//    "Binance-Peg X"; namesake families "Pepe", "Baby Pepe", "Pepe 2.0"; unrelated coins on one
//    short ticker), the way 18,982 real CoinGecko and 13,383 real CoinPaprika identities collide;
// 2. serves them on loopback (scripts/recorded-upstream.mjs), starts a fresh `wrangler dev`,
//    runs coinpaprika then coingecko (POST /etl/run/{source}, poll GET /etl/runs/{id});
// 3. prints records/s per source and over both (goal: >= 5,000 records/s), what the runs cost
//    (their `usage`), the resolve step of each CoinGecko step of up to sixteen pages (the first, holding
//    page 2, against the last, holding page 76: it must not grow with the map), and how the ids
//    were unified against the universe's truth (recall: ids of one coin on one asset; precision:
//    ids on one asset that are one coin);
// 4. on a second fresh stack, both sources at once the way a cron tick starts them (POST
//    /etl/run-all, until every run has finished): records/s over the whole (goal: >= 5,000).
import fs from "node:fs";
import path from "node:path";
import { startRecordedUpstream } from "../scripts/recorded-upstream.mjs";
import { call, devLog, emit, fail, logProblems, median, root, startWorker, TOKEN, upstreamVars, waitFinished } from "./lib.mjs";
import { writeCollidingUpstream } from "./universe-gen.mjs";

const N = Number(process.argv[2] ?? 19_000);
const WORKER_PORT = Number(process.env.INGEST_PORT ?? 18810);
const UPSTREAM_PORT = WORKER_PORT + 1;
const out = path.join(root, "bench", "out");
const TARGET_RECORDS_PER_S = 5000;

const gen = writeCollidingUpstream(path.join(out, "upstream"), N);
emit({ bench: "ingest_upstream", dir: path.relative(root, gen.dir), coingecko_pages: gen.pages, ...gen.stats });

const pipeline = {};
let assets = [];
const upstream = await startRecordedUpstream(UPSTREAM_PORT, gen.dir);
let worker;
try {
  worker = await startWorker({
    name: "ingest",
    port: WORKER_PORT,
    vars: { ...upstreamVars(UPSTREAM_PORT) },
  });
  const health = await call(worker.base, "GET", "/health");
  if (health.status !== 200 && health.status !== 503) throw new Error(`worker did not come up (health ${health.status})`);

  for (const source of ["coinpaprika", "coingecko"]) {
    const expected = source === "coingecko" ? gen.gecko.length : gen.paprika.length;
    const t0 = performance.now();
    const post = await call(worker.base, "POST", `/etl/run/${source}`, { token: TOKEN });
    if (post.status !== 202) throw new Error(`POST /etl/run/${source} answered ${post.status}: ${post.text.slice(0, 300)}`);
    const run = await waitFinished(worker.base, `/etl/runs/${post.json.data.run_id}`, 900_000);
    const seconds = (performance.now() - t0) / 1000;
    const r = run.records;
    const fig = {
      bench: "ingest_pipeline",
      source,
      run_id: run.run_id,
      status: run.status,
      ...r,
      client_seconds: +seconds.toFixed(2),
      duration_ms: run.duration_ms,
      records_per_s: Math.round(r.fetched / seconds),
      records_per_s_run: run.duration_ms ? Math.round(r.fetched / (run.duration_ms / 1000)) : null,
      usage: run.usage,
      d1_rows_written_per_record: +(run.usage.d1_rows_written / r.fetched).toFixed(2),
      error: run.error,
    };
    pipeline[source] = fig;
    emit(fig);
    if (run.status !== "succeeded") fail("ingest_pipeline", `${source} run ended ${run.status}`, { error: run.error });
    if (r.fetched !== expected || r.accepted !== expected)
      fail("ingest_pipeline", `${source}: fetched ${r.fetched}, accepted ${r.accepted}; expected ${expected}`);
    if (r.written !== expected) fail("ingest_pipeline", `${source}: written ${r.written}; expected ${expected} on a fresh database`);
  }
  const exported = await fetch(`${worker.base}/data/export?format=ndjson`);
  assets = (await exported.text())
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
} finally {
  worker?.stop();
  upstream.close();
}

// Unification against the truth: which ids are one coin.
const assetOf = { coingecko: new Map(), coinpaprika: new Map() };
for (const a of assets) for (const s of Object.keys(assetOf)) if (a.source_ids?.[s]) assetOf[s].set(a.source_ids[s], a.asset_uid);
const coinOf = new Map(gen.truth.flatMap((t, i) => (t.coinpaprika ? [[t.coinpaprika, i]] : [])));
const both = gen.truth.filter((t) => t.coingecko && t.coinpaprika);
const joined = both.filter((t) => assetOf.coingecko.get(t.coingecko) === assetOf.coinpaprika.get(t.coinpaprika)).length;
const joinedPairs = assets.filter((a) => a.source_ids?.coingecko && a.source_ids?.coinpaprika);
const falseJoins = joinedPairs.filter((a) => gen.truth[coinOf.get(a.source_ids.coinpaprika)]?.coingecko !== a.source_ids.coingecko);
const unify = {
  bench: "ingest_unify",
  coins: gen.truth.length,
  assets: assets.length,
  coins_in_both: both.length,
  recall: +(joined / both.length).toFixed(4),
  precision: +(1 - falseJoins.length / Math.max(1, joinedPairs.length)).toFixed(4),
  false_joins: falseJoins.length,
  false_join_sample: falseJoins.slice(0, 5).map((a) => a.source_ids),
  mapped_ids: assetOf.coingecko.size + assetOf.coinpaprika.size,
};
emit(unify);
if (unify.mapped_ids !== gen.gecko.length + gen.paprika.length)
  fail("ingest_unify", `${unify.mapped_ids} ids are on an asset; expected ${gen.gecko.length + gen.paprika.length}`);
// Every id's asset, to compare two builds' unification id by id.
fs.writeFileSync(
  path.join(out, "ingest-mappings.json"),
  JSON.stringify(Object.fromEntries(Object.entries(assetOf).map(([s, m]) => [s, Object.fromEntries([...m].sort())]))),
);

// Where the pipeline's time went, from the Worker's own structured log.
const { events } = devLog("ingest");
for (const source of Object.keys(pipeline)) {
  const runId = pipeline[source].run_id;
  const mine = events.filter((e) => e.run_id === runId);
  const sum = (ev, k) => mine.filter((e) => e.event === ev).reduce((a, e) => a + (e[k] ?? 0), 0);
  const jobs = mine.filter((e) => e.event === "job_done");
  emit({
    bench: "ingest_breakdown",
    source,
    messages: jobs.length,
    job_ms_sum: sum("job_done", "duration_ms"),
    store_ms_sum: sum("page_stored", "store_ms"),
    resolve_ms_sum: sum("chunk_stored", "resolve_ms"),
    write_ms_sum: sum("chunk_stored", "write_ms"),
    retries: mine.filter((e) => e.event === "job_failed").length,
    client_ms: Math.round(pipeline[source].client_seconds * 1000),
  });
}

// A CoinGecko step's resolve as the map grows: the step holding page 2 (the map holds CoinPaprika)
// against the one holding page 76, also per page (a step of sixteen pages resolves 4,000 quotes at once),
// and the medians of three steps at each end, which one slow step does not move.
if (pipeline.coingecko) {
  const resolveMs = new Map();
  for (const e of events)
    if (e.run_id === pipeline.coingecko.run_id && e.event === "chunk_stored" && e.quotes) resolveMs.set(Number(e.part.slice(5)), e);
  const steps = [...resolveMs.keys()].sort((a, b) => a - b);
  const holding = (page) => resolveMs.get(steps.findLast((first) => first <= page)) ?? null;
  const perPage = (e) => (e ? +((e.resolve_ms * 250) / e.quotes).toFixed(1) : null);
  const early = steps.slice(0, 3).map((p) => resolveMs.get(p).resolve_ms);
  const late = steps.slice(-3).map((p) => resolveMs.get(p).resolve_ms);
  emit({
    bench: "ingest_resolve_per_step",
    steps: steps.length,
    step_with_page_2_ms: holding(2)?.resolve_ms ?? null,
    step_with_page_76_ms: holding(76)?.resolve_ms ?? null,
    per_page_at_page_2_ms: perPage(holding(2)),
    per_page_at_page_76_ms: perPage(holding(76)),
    first_3_steps_median_ms: median(early),
    last_3_steps_median_ms: median(late),
    late_over_early: +(median(late) / median(early)).toFixed(2),
    every_step_ms: steps.map((p) => resolveMs.get(p).resolve_ms),
  });
}
emit({ bench: "ingest_log", ...logProblems("ingest") });

const records = Object.values(pipeline).reduce((n, p) => n + p.fetched, 0);
const seconds = Object.values(pipeline).reduce((n, p) => n + p.client_seconds, 0);
emit({
  bench: "ingest_total",
  records,
  seconds: +seconds.toFixed(2),
  records_per_s: Math.round(records / seconds),
  target: TARGET_RECORDS_PER_S,
  meets_target: records / seconds >= TARGET_RECORDS_PER_S,
});

// Both sources at once, as a cron tick or POST /etl/run-all starts them, on a fresh stack: the clock
// stops when the last run has finished.
const together = await startRecordedUpstream(UPSTREAM_PORT, gen.dir);
let fresh;
try {
  fresh = await startWorker({ name: "ingest-all", port: WORKER_PORT, vars: { ...upstreamVars(UPSTREAM_PORT) } });
  const t0 = performance.now();
  const post = await call(fresh.base, "POST", "/etl/run-all", { token: TOKEN });
  if (post.status !== 202) throw new Error(`POST /etl/run-all answered ${post.status}: ${post.text.slice(0, 300)}`);
  const runs = await Promise.all(
    post.json.data.runs.map(async (r) => ({
      ...(await waitFinished(fresh.base, `/etl/runs/${r.run_id}`, 900_000)),
      at: performance.now(),
    })),
  );
  const s = (Math.max(...runs.map((r) => r.at)) - t0) / 1000;
  const n = runs.reduce((sum, r) => sum + r.records.fetched, 0);
  emit({
    bench: "ingest_run_all",
    records: n,
    seconds: +s.toFixed(2),
    records_per_s: Math.round(n / s),
    runs: runs.map((r) => ({ source: r.source, status: r.status, fetched: r.records.fetched })),
    target: TARGET_RECORDS_PER_S,
    meets_target: n / s >= TARGET_RECORDS_PER_S,
  });
  if (runs.some((r) => r.status !== "succeeded")) fail("ingest_run_all", "a run did not succeed", { runs: runs.map((r) => r.status) });
} finally {
  fresh?.stop();
  together.close();
}
