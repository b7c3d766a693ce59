// Upstream ingestion through the real pipeline vs the bare D1 upsert rate, in one run.
//   node bench/ingest.mjs [n=20000]
// 1. writes n CoinPaprika tickers and n CoinGecko markets (n/250 pages) to bench/out/upstream/
//    (bench/upstream-gen.mjs: the recorded field layout, 90 % of coins in both sources);
// 2. serves them on loopback (scripts/recorded-upstream.mjs), starts a fresh `wrangler dev`,
//    runs coinpaprika then coingecko (POST /etl/run/{source}, poll GET /etl/runs/{id});
// 3. with the Worker stopped, upserts the same rows into a source_quotes-shaped table on the
//    same local D1 engine (bench/d1-bare.mjs, median of 3) and prints pipeline/bare per source;
// 4. the storage floor: every row the two runs left in the tables a record touches (quotes,
//    history, mappings, assets and the /data listing), written bare into a fresh database with the
//    real migrations. floor/bare is the best ratio any pipeline could reach with this schema.
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

// The rows the pipeline ends up storing for each source, for the bare upsert.
const at = "2026-11-22T12:00:00.000Z";
const ingested = new Date().toISOString();
const slugOf = (name) => name.toLowerCase().replace(/[^a-z0-9]+/g, "-");
const bareRows = {
  coinpaprika: gen.paprika.map((t) => [
    "coinpaprika",
    t.id,
    slugOf(t.name),
    t.symbol,
    t.name,
    t.rank,
    t.quotes.USD.price,
    t.quotes.USD.market_cap,
    t.quotes.USD.volume_24h,
    t.quotes.USD.percent_change_24h,
    t.circulating_supply,
    t.total_supply,
    t.max_supply || null,
    at,
    ingested,
    "run_bare",
  ]),
  coingecko: gen.gecko.map((g) => [
    "coingecko",
    g.id,
    slugOf(g.name),
    g.symbol.toUpperCase(),
    g.name,
    g.market_cap_rank,
    g.current_price,
    g.market_cap,
    g.total_volume,
    g.price_change_percentage_24h,
    g.circulating_supply,
    g.total_supply,
    g.max_supply,
    at,
    ingested,
    "run_bare",
  ]),
};

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

const QUOTE_COLUMNS = [
  "source",
  "source_id",
  "asset_uid",
  "symbol",
  "name",
  "rank",
  "price_usd",
  "market_cap_usd",
  "volume_24h_usd",
  "change_24h_pct",
  "circulating_supply",
  "total_supply",
  "max_supply",
  "source_updated_at",
  "ingested_at",
  "run_id",
];
const bareJob = (rows) => ({
  schema: [
    "CREATE TABLE source_quotes (source text NOT NULL, source_id text NOT NULL, asset_uid text NOT NULL, symbol text NOT NULL, name text NOT NULL, rank integer, price_usd real NOT NULL, market_cap_usd real, volume_24h_usd real, change_24h_pct real, circulating_supply real, total_supply real, max_supply real, source_updated_at text NOT NULL, ingested_at text NOT NULL, run_id text NOT NULL, PRIMARY KEY(source, source_id))",
    "CREATE INDEX source_quotes_asset_idx ON source_quotes (asset_uid)",
  ],
  tables: [
    {
      name: "source_quotes",
      columns: QUOTE_COLUMNS,
      conflict: `ON CONFLICT (source, source_id) DO UPDATE SET ${QUOTE_COLUMNS.slice(2)
        .map((c) => `${c} = excluded.${c}`)
        .join(", ")} WHERE excluded.source_updated_at > source_quotes.source_updated_at`,
      rows,
    },
  ],
});

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

// The bare D1 upsert of the same rows on the same local engine (the Worker is stopped by now).
const bare = {};
for (const source of ["coinpaprika", "coingecko"]) {
  bare[source] = bareWrite(bareJob(bareRows[source]), source);
  emit({ ...bare[source], bench: "ingest_bare_d1", source });
}

// The storage floor: the rows both runs left behind, read from the Worker's local D1 file.
const d1Dir = path.join(worker.state, "v3", "d1", "miniflare-D1DatabaseObject");
const d1File = fs.readdirSync(d1Dir).find((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite");
process.removeAllListeners("warning"); // node:sqlite prints an "experimental" warning on Node 22
const { DatabaseSync } = await import("node:sqlite");
const stored = new DatabaseSync(path.join(d1Dir, d1File), { readOnly: true });
const migrations = fs
  .readdirSync(path.join(root, "migrations"))
  .filter((f) => f.endsWith(".sql"))
  .sort()
  .flatMap((f) => fs.readFileSync(path.join(root, "migrations", f), "utf8").split("--> statement-breakpoint"))
  .map((x) => x.trim())
  .filter(Boolean);
const floorTables = ["asset_mappings", "assets", "source_quotes", "quote_history", "asset_listing"].map((name) => {
  const rows = stored.prepare(`SELECT * FROM ${name}`).all();
  const columns = Object.keys(rows[0] ?? {});
  return { name, columns, rows: rows.map((row) => columns.map((c) => row[c])) };
});
stored.close();
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
