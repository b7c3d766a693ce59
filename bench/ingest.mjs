// Upstream ingestion through the real pipeline vs the bare D1 upsert rate, in one run.
//   node bench/ingest.mjs [n=20000]
// 1. writes n CoinPaprika tickers and n CoinGecko markets (n/250 pages) to bench/out/upstream/
//    (bench/upstream-gen.mjs: the recorded field layout, 90 % of coins in both sources);
// 2. serves them on loopback (scripts/recorded-upstream.mjs), starts a fresh `wrangler dev`,
//    runs coinpaprika then coingecko (POST /etl/run/{source}, poll GET /etl/runs/{id});
// 3. with the Worker stopped, reads what the runs stored from its local D1 file and, on the same
//    engine in a fresh database with the real migrations (bench/d1-bare.mjs, median of 3):
//    - bare: upserts each source's stored quotes into source_quotes alone; prints pipeline/bare;
//    - storage floor: writes every row the two runs left in the tables a record touches (quotes,
//      history, mappings, assets, the /data listing). floor/bare is the best ratio any pipeline
//      could reach with this schema.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { startRecordedUpstream } from "../scripts/recorded-upstream.mjs";
import { call, devLog, emit, fail, logProblems, node22, root, startWorker, TOKEN, upstreamVars, waitFinished } from "./lib.mjs";
import { writeUpstream } from "./upstream-gen.mjs";

const N = Number(process.argv[2] ?? 20_000);
const WORKER_PORT = 18810;
const UPSTREAM_PORT = 18811;
const out = path.join(root, "bench", "out");
const TARGET = 0.5;

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

/** Runs bench/d1-bare.mjs on a job (median of 3) and returns its summary line. */
function bareWrite(job, label) {
  const file = path.join(out, `bare-${label}.json`);
  fs.writeFileSync(file, JSON.stringify(job));
  const r = spawnSync(node22, [path.join(root, "bench", "d1-bare.mjs"), file, "3", "100"], {
    cwd: root,
    encoding: "utf8",
    timeout: 600_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  fs.rmSync(file, { force: true });
  if (r.status !== 0) throw new Error(`d1-bare failed: ${r.stdout}${r.stderr}`);
  return r.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l))
    .find((j) => j.bench === "d1_bare");
}

// What the runs stored, read from the Worker's local D1 file (the Worker is stopped by now).
const d1Dir = path.join(worker.state, "v3", "d1", "miniflare-D1DatabaseObject");
const d1File = fs.readdirSync(d1Dir).find((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite");
process.removeAllListeners("warning"); // node:sqlite prints an "experimental" warning on Node 22
const { DatabaseSync } = await import("node:sqlite");
const stored = new DatabaseSync(path.join(d1Dir, d1File), { readOnly: true });
const table = (name, where = "") => {
  const rows = stored.prepare(`SELECT * FROM ${name} ${where}`).all();
  const columns = Object.keys(rows[0] ?? {});
  return { name, columns, rows: rows.map((row) => columns.map((c) => row[c])) };
};
const floorTables = ["asset_mappings", "assets", "source_quotes", "quote_history", "asset_listing"].map((name) => table(name));
const quotesOf = Object.fromEntries(Object.keys(pipeline).map((source) => [source, table("source_quotes", `WHERE source = '${source}'`)]));
stored.close();
const migrations = fs
  .readdirSync(path.join(root, "migrations"))
  .filter((f) => f.endsWith(".sql"))
  .sort()
  .flatMap((f) => fs.readFileSync(path.join(root, "migrations", f), "utf8").split("--> statement-breakpoint"))
  .map((x) => x.trim())
  .filter(Boolean);

// Bare: one source's quotes upserted into source_quotes (its primary key and asset index), nothing else.
const bare = {};
for (const [source, quotes] of Object.entries(quotesOf)) {
  const set = quotes.columns.filter((c) => c !== "source" && c !== "source_id").map((c) => `${c} = excluded.${c}`);
  const conflict = `ON CONFLICT (source, source_id) DO UPDATE SET ${set.join(", ")} WHERE excluded.source_updated_at > source_quotes.source_updated_at`;
  bare[source] = bareWrite({ schema: migrations, tables: [{ ...quotes, conflict }] }, source);
  emit({ ...bare[source], bench: "ingest_bare_d1", source });
}

const floor = bareWrite({ schema: migrations, tables: floorTables }, "floor");
const records = Object.values(pipeline).reduce((n, p) => n + p.fetched, 0);
const floorRecordsPerS = Math.round(records / (floor.median_ms / 1000));
const pipelineSeconds = Object.values(pipeline).reduce((n, p) => n + p.client_seconds, 0);
const bareMean = (bare.coinpaprika.rows_per_s + bare.coingecko.rows_per_s) / 2;
emit({
  bench: "ingest_storage_floor",
  records,
  rows: floor.rows,
  rows_per_record: +(floor.rows / records).toFixed(2),
  tables: floor.tables,
  median_ms: floor.median_ms,
  floor_records_per_s: floorRecordsPerS,
  floor_vs_bare: +(floorRecordsPerS / bareMean).toFixed(3),
  pipeline_records_per_s: Math.round(records / pipelineSeconds),
  pipeline_vs_floor: +(records / pipelineSeconds / floorRecordsPerS).toFixed(3),
});

for (const source of Object.keys(pipeline)) {
  const ratio = pipeline[source].records_per_s / bare[source].rows_per_s;
  const ratioRun = pipeline[source].records_per_s_run ? pipeline[source].records_per_s_run / bare[source].rows_per_s : null;
  emit({
    bench: "ingest_ratio",
    source,
    pipeline_records_per_s: pipeline[source].records_per_s,
    bare_rows_per_s: bare[source].rows_per_s,
    ratio: +ratio.toFixed(3),
    ratio_by_run_duration: ratioRun === null ? null : +ratioRun.toFixed(3),
    target: TARGET,
    meets_target: ratio >= TARGET,
  });
}
