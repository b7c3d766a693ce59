// First ingestion of a synthetic market through the real pipeline, end to end.
//   node bench/ingest.mjs [n=20000]
// 1. writes n CoinPaprika tickers and n CoinGecko markets (n/250 pages) to bench/out/upstream/
//    (bench/upstream-gen.mjs: the recorded field layout, 90 % of coins in both sources);
// 2. serves them on loopback (scripts/recorded-upstream.mjs), starts a fresh `wrangler dev`,
//    runs coinpaprika then coingecko (POST /etl/run/{source}, poll GET /etl/runs/{id});
// 3. prints records/s per source and over both (goal: >= 5,000 records/s), what the runs cost
//    (their `usage`), and where the time went from the Worker's own log.
import path from "node:path";
import { startRecordedUpstream } from "../scripts/recorded-upstream.mjs";
import { call, devLog, emit, fail, logProblems, root, startWorker, TOKEN, upstreamVars, waitFinished } from "./lib.mjs";
import { writeUpstream } from "./upstream-gen.mjs";

const N = Number(process.argv[2] ?? 20_000);
const WORKER_PORT = 18810;
const UPSTREAM_PORT = 18811;
const out = path.join(root, "bench", "out");
const TARGET_RECORDS_PER_S = 5000;

const gen = writeUpstream(path.join(out, "upstream"), N);
emit({
  bench: "ingest_upstream",
  dir: path.relative(root, gen.dir),
  coinpaprika: gen.paprika.length,
  coingecko: gen.gecko.length,
  coingecko_pages: gen.pages,
  coins_in_both: gen.overlap,
});

const pipeline = {};
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
    if (r.fetched !== N || r.accepted !== N)
      fail("ingest_pipeline", `${source}: fetched ${r.fetched}, accepted ${r.accepted}; expected ${N}`);
    if (r.written !== N) fail("ingest_pipeline", `${source}: written ${r.written}; expected ${N} on a fresh database`);
  }

  // Unification: coins in both sources must end up as one asset each.
  const expectedAssets = N + (N - gen.overlap);
  const stats = await call(worker.base, "GET", "/stats");
  const both = await call(worker.base, "GET", `/data?source=coingecko&symbol=${gen.paprika[0].symbol}`);
  const sample = both.json?.data?.[0];
  const unify = {
    bench: "ingest_unify",
    expected_assets: expectedAssets,
    assets: stats.json?.data?.totals?.assets ?? null,
    quotes: stats.json?.data?.totals?.quotes ?? null,
    sample_symbol: gen.paprika[0].symbol,
    sample_sources: sample?.sources ?? null,
  };
  emit(unify);
  if (unify.assets !== expectedAssets)
    fail("ingest_unify", `expected ${expectedAssets} assets after unification, /stats says ${unify.assets}`);
} finally {
  worker?.stop();
  upstream.close();
}

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
