// Mixed load: concurrent public reads while ingestion runs, on one fresh local Worker.
//   node bench/load.mjs [seconds=30] [in_flight=12]
// Upstream: bench/out/upstream (from bench/ingest.mjs) when present, else the recorded data/.
// For `seconds`: `in_flight` lanes of GETs over /data pages, /data/{uid}, /health and /stats;
// POST /etl/run-all every 5 s and one CSV upload (20,000 rows) at 10 s. Then waits (bounded) for
// every run it started or was shown to finish. Fails (exit 1) on any 5xx, network error, run that
// did not finish, or run that failed.
import fs from "node:fs";
import path from "node:path";
import { startRecordedUpstream } from "../scripts/recorded-upstream.mjs";
import {
  call,
  coincapCsv,
  devLog,
  emit,
  fail,
  logProblems,
  quantile,
  root,
  sleep,
  startWorker,
  TOKEN,
  upstreamVars,
  waitFinished,
} from "./lib.mjs";

const SECONDS = Number(process.argv[2] ?? 30);
const IN_FLIGHT = Number(process.argv[3] ?? 12);
const WORKER_PORT = 18830;
const UPSTREAM_PORT = 18831;
const RUN_ALL_EVERY_MS = 5000;
const UPLOAD_AT_MS = 10_000;
const FINISH_TIMEOUT_MS = 600_000;

const synthetic = path.join(root, "bench", "out", "upstream");
const dir = fs.existsSync(path.join(synthetic, "coinpaprika", "tickers.json")) ? synthetic : path.join(root, "data");
const FINISHED = new Set(["succeeded", "partial", "failed"]);

const upstream = await startRecordedUpstream(UPSTREAM_PORT, dir);
let worker;
const lat = [];
const timeline = []; // [second since start, ms, class]
const slow = []; // reads over 1 s
const byClass = {};
const statuses = {};
const writes = [];
let netErrors = 0;
const runIds = new Map(); // run_id -> source
const uploads = [];
const uids = [];
let wallT0 = 0;
const classOf = (cls) => {
  if (!byClass[cls]) byClass[cls] = { lat: [], statuses: {} };
  return byClass[cls];
};
const countBy = (xs) => {
  const out = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
};
let readSecondsTotal = SECONDS;
try {
  worker = await startWorker({
    name: "load",
    port: WORKER_PORT,
    vars: { ...upstreamVars(UPSTREAM_PORT), MAX_UPLOAD_BYTES: String(200 * 1024 * 1024) },
  });
  const health = await call(worker.base, "GET", "/health");
  if (health.status !== 200 && health.status !== 503) throw new Error(`worker did not come up (health ${health.status})`);
  emit({ bench: "load_setup", upstream: path.relative(root, dir), seconds: SECONDS, in_flight: IN_FLIGHT });

  const t0 = performance.now();
  wallT0 = Date.now();
  const elapsed = () => performance.now() - t0;
  let rnd = 12345;
  const rand = (n) => {
    rnd = (rnd * 1103515245 + 12345) % 2147483648;
    return rnd % n;
  };

  function pick(i) {
    const k = i % 10;
    if (k < 4) return ["data_list", `/data?page=${1 + rand(20)}&page_size=50${k === 3 ? "&sort=market_cap" : ""}`];
    if (k < 7) return uids.length ? ["data_detail", `/data/${uids[rand(uids.length)]}`] : ["data_list", "/data?page=1&page_size=50"];
    if (k < 8) return ["health", "/health"];
    return ["stats", "/stats"];
  }

  let issued = 0;
  async function lane() {
    while (elapsed() < SECONDS * 1000 && issued < 200_000) {
      const [cls, p] = pick(issued++);
      const s = performance.now();
      try {
        const res = await fetch(worker.base + p);
        const text = await res.text();
        const ms = performance.now() - s;
        lat.push(ms);
        timeline.push([Math.floor((s - t0) / 1000), ms, cls]);
        if (ms > 1000) {
          // The Worker's own view of a slow request: was it slow inside the handler (D1) or before it ran?
          const m = /"api_latency_ms":\s*([\d.]+)/.exec(text.slice(-400));
          slow.push({ at_s: +((s - t0) / 1000).toFixed(2), ms: Math.round(ms), server_ms: m ? Number(m[1]) : null, cls });
        }
        const c = classOf(cls);
        c.lat.push(ms);
        byClass[cls].statuses[res.status] = (byClass[cls].statuses[res.status] ?? 0) + 1;
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (cls === "data_list" && res.status === 200 && uids.length < 1000) {
          for (const m of text.matchAll(/"asset_uid":"([^"]+)"/g)) if (uids.length < 1000 && !uids.includes(m[1])) uids.push(m[1]);
        }
        if (res.status >= 500) byClass[cls].sample5xx ??= `${p} -> ${res.status} ${text.slice(0, 300)}`;
      } catch {
        netErrors++;
        const c = classOf(cls);
        c.errors = (c.errors ?? 0) + 1;
      }
    }
  }

  async function admin() {
    let nextRunAll = 0;
    let uploaded = false;
    while (elapsed() < SECONDS * 1000) {
      if (elapsed() >= nextRunAll) {
        nextRunAll += RUN_ALL_EVERY_MS;
        const s = performance.now();
        const r = await call(worker.base, "POST", "/etl/run-all", { token: TOKEN });
        writes.push({ op: "run-all", at_s: +(elapsed() / 1000).toFixed(1), status: r.status, ms: Math.round(performance.now() - s) });
        for (const run of r.json?.data?.runs ?? []) runIds.set(run.run_id, run.source);
        if (r.status >= 500) writes.at(-1).body = r.text.slice(0, 300);
      }
      if (!uploaded && elapsed() >= UPLOAD_AT_MS) {
        uploaded = true;
        const s = performance.now();
        const r = await call(worker.base, "PUT", "/uploads/csv/load-20000.csv", {
          body: coincapCsv(20_000, "ld"),
          headers: { "content-type": "text/csv" },
          token: TOKEN,
        });
        writes.push({ op: "upload", at_s: +(elapsed() / 1000).toFixed(1), status: r.status, ms: Math.round(performance.now() - s) });
        if (r.json?.data?.upload_id) uploads.push(r.json.data.upload_id);
        if (r.status >= 500) writes.at(-1).body = r.text.slice(0, 300);
      }
      await sleep(200);
    }
  }

  await Promise.all([admin(), ...Array.from({ length: IN_FLIGHT }, lane)]);
  const readSeconds = elapsed() / 1000;
  readSecondsTotal = readSeconds;

  // Every run started or reported, and the upload, must finish (bounded).
  const tw = performance.now();
  const runs = [];
  for (const [runId, source] of runIds) {
    const left = FINISH_TIMEOUT_MS - (performance.now() - tw);
    try {
      const run = await waitFinished(worker.base, `/etl/runs/${runId}`, Math.max(1000, left));
      runs.push({
        run_id: runId,
        source,
        status: run.status,
        trigger: run.trigger,
        ...run.records,
        duration_ms: run.duration_ms,
        error: run.error,
      });
    } catch {
      const now = await call(worker.base, "GET", `/etl/runs/${runId}`);
      runs.push({ run_id: runId, source, status: now.json?.data?.status ?? `http ${now.status}`, unfinished: true });
    }
  }
  const ups = [];
  for (const id of uploads) {
    const left = FINISH_TIMEOUT_MS - (performance.now() - tw);
    try {
      const u = await waitFinished(worker.base, `/uploads/${id}`, Math.max(1000, left));
      ups.push({ upload_id: id, status: u.status, run_id: u.run_id, ...u.records });
    } catch {
      ups.push({ upload_id: id, status: "unfinished", unfinished: true });
    }
  }
  const waitS = (performance.now() - tw) / 1000;
  const stats = await call(worker.base, "GET", "/stats");

  const total = lat.length;
  const count5xx = Object.entries(statuses)
    .filter(([s]) => Number(s) >= 500)
    .reduce((a, [, c]) => a + c, 0);
  const writes5xx = writes.filter((w) => w.status >= 500).length;
  const classes = Object.fromEntries(
    Object.entries(byClass).map(([k, v]) => [
      k,
      {
        requests: v.lat.length,
        statuses: v.statuses,
        errors: v.errors ?? 0,
        p50_ms: +quantile(v.lat, 0.5).toFixed(1),
        p99_ms: +quantile(v.lat, 0.99).toFixed(1),
        max_ms: Math.round(Math.max(...v.lat)),
        sample5xx: v.sample5xx,
      },
    ]),
  );
  emit({ bench: "load_classes", ...classes });
  emit({ bench: "load_writes", writes });
  // Per second of the read phase (by request start): requests, p50 and max latency; shows which
  // ingestion step the slow reads line up with.
  const secs = [];
  for (const [sec, ms] of timeline) {
    if (!secs[sec]) secs[sec] = [];
    secs[sec].push(ms);
  }
  emit({
    bench: "load_timeline",
    per_second: secs
      .map((xs, sec) => (xs ? { s: sec, n: xs.length, p50: Math.round(quantile(xs, 0.5)), max: Math.round(Math.max(...xs)) } : null))
      .filter(Boolean),
    slow_over_1s: timeline.filter(([, ms]) => ms > 1000).length,
  });
  const withServer = slow.filter((x) => x.server_ms !== null);
  emit({
    bench: "load_slow_reads",
    over_1s: slow.length,
    with_server_latency: withServer.length,
    server_ms_p50: withServer.length
      ? quantile(
          withServer.map((x) => x.server_ms),
          0.5,
        )
      : null,
    server_ms_max: withServer.length ? Math.max(...withServer.map((x) => x.server_ms)) : null,
    sample: slow.slice(0, 8),
  });
  for (const r of runs) emit({ bench: "load_run", ...r });
  for (const u of ups) emit({ bench: "load_upload", ...u });
  const allFinished = runs.every((r) => FINISHED.has(r.status)) && ups.every((u) => FINISHED.has(u.status));
  emit({
    bench: "load",
    seconds: +readSeconds.toFixed(1),
    in_flight: IN_FLIGHT,
    requests: total,
    rps: Math.round(total / readSeconds),
    statuses,
    network_errors: netErrors,
    count_5xx: count5xx,
    writes_5xx: writes5xx,
    p50_ms: +quantile(lat, 0.5).toFixed(1),
    p99_ms: +quantile(lat, 0.99).toFixed(1),
    max_ms: Math.round(Math.max(...lat)),
    runs: runs.length,
    runs_by_status: countBy(runs.map((r) => r.status)),
    uploads: ups.map((u) => u.status),
    all_finished: allFinished,
    wait_for_runs_s: +waitS.toFixed(1),
    assets_after: stats.json?.data?.totals?.assets ?? null,
  });
  if (count5xx || writes5xx) fail("load", `${count5xx} read and ${writes5xx} write answers were 5xx`);
  if (netErrors) fail("load", `${netErrors} requests failed at the network level`);
  if (!allFinished)
    fail("load", "not every run finished", {
      unfinished: [...runs, ...ups].filter((r) => r.unfinished).map((r) => r.run_id ?? r.upload_id),
    });
  const failed = [...runs, ...ups].filter((r) => r.status === "failed");
  if (failed.length) fail("load", `${failed.length} run(s) failed`, { failed });
} finally {
  worker?.stop();
  upstream.close();
}
emit({ bench: "load_log", ...logProblems("load") });
// Queue jobs that ran during the read phase (from the Worker's log): when and how long, to set
// against load_timeline.
const jobs = devLog("load")
  .events.filter((e) => e.event === "job_done")
  .map((e) => ({
    type: e.type,
    run_id: e.run_id,
    start_s: +((Date.parse(e.time) - e.duration_ms - wallT0) / 1000).toFixed(1),
    ms: e.duration_ms,
  }))
  .filter((j) => j.start_s < readSecondsTotal && j.ms >= 300);
emit({ bench: "load_jobs_over_300ms_during_reads", jobs });
