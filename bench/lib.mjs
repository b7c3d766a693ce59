// Shared plumbing for the benchmarks: a fresh local Worker (wrangler dev on loopback, its own
// state directory), HTTP helpers and statistics. Loopback only.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { prepareLocalWorker, root, waitForHealth, wranglerBin, wranglerEnv } from "../scripts/local-stack.mjs";

export { root };
export const TOKEN = "bench-admin-token";

/** Worker vars for a run against the loopback recorded upstream, with the client budgets out of the way. */
export function upstreamVars(port) {
  return {
    COINGECKO_BASE_URL: `http://127.0.0.1:${port}/api/v3`,
    COINPAPRIKA_BASE_URL: `http://127.0.0.1:${port}/v1`,
    COINGECKO_REQUESTS_PER_MINUTE: "60000",
    COINPAPRIKA_REQUESTS_PER_MINUTE: "60000",
    SOURCE_PAGE_LIMIT: "200",
    READ_RATE_LIMIT: "off",
  };
}

export async function startWorker({ port = 18800, vars = {}, name = "bench", keepState = false, readyPath = "/health" } = {}) {
  const state = path.join(root, "bench", "out", `${name}-state`);
  if (!keepState) fs.rmSync(state, { recursive: true, force: true });
  fs.mkdirSync(state, { recursive: true });
  const args = prepareLocalWorker({ port, persistTo: state, vars: { ADMIN_TOKEN: TOKEN, READ_RATE_LIMIT: "off", ...vars } });
  const log = fs.openSync(path.join(root, "bench", "out", `${name}-dev.log`), "w");
  const proc = spawn(wranglerBin, args, { cwd: root, env: wranglerEnv(), stdio: ["ignore", log, log], detached: true });
  liveWorkers.add(proc.pid);
  guardExit();
  const base = `http://127.0.0.1:${port}`;
  await waitForHealth(base, () => null, readyPath);
  return {
    base,
    state,
    pid: proc.pid,
    stop: () => {
      liveWorkers.delete(proc.pid);
      try {
        process.kill(-proc.pid, "SIGTERM");
      } catch {}
    },
  };
}

// Workers still running when the process exits or is interrupted (a `finally` does not run on a
// signal) are stopped here, so no wrangler outlives its benchmark.
const liveWorkers = new Set();
let guarded = false;
function guardExit() {
  if (guarded) return;
  guarded = true;
  const stopAll = () => {
    for (const pid of liveWorkers) {
      try {
        process.kill(-pid, "SIGTERM");
      } catch {}
    }
    liveWorkers.clear();
  };
  process.on("exit", stopAll);
  for (const sig of ["SIGINT", "SIGTERM"]) {
    process.once(sig, () => {
      stopAll();
      process.exit(130);
    });
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function call(base, method, p, { body, headers = {}, token } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  const res = await fetch(base + p, { method, headers: h, body });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json, text };
}

export async function waitFinished(base, p, timeoutMs = 900_000) {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const r = await call(base, "GET", p);
    if (["succeeded", "partial", "failed"].includes(r.json?.data?.status)) return r.json.data;
    await sleep(100);
  }
  throw new Error(`${p} did not finish`);
}

export function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))];
}
export const median = (xs) => quantile(xs, 0.5);

/** A CoinCap-style CSV: every number a 16-decimal string, like the real export. */
export function coincapCsv(rows, tag = "bulk") {
  const lines = ["id,rank,symbol,name,supply,maxSupply,marketCapUsd,volumeUsd24Hr,priceUsd,changePercent24Hr,vwap24Hr,explorer,timestamp"];
  for (let i = 1; i <= rows; i++) {
    lines.push(
      `${tag}-coin-${i},${i},${tag.toUpperCase().slice(0, 2)}${i},${tag} Coin ${i},${(i * 1000.5).toFixed(16)},,${(i * 99.25).toFixed(16)},${(i * 7.5).toFixed(16)},${(1 + i / 1000).toFixed(16)},0.5000000000000000,${(1 + i / 1000).toFixed(16)},,2026-11-22T12:00:00Z`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** The project's Node >= 22 (npm package "node"), for helpers that need it (miniflare). */
export const node22 = path.join(root, "node_modules", ".bin", "node");

/** One JSON result line on stdout (bench/run-all.mjs collects them). */
export function emit(obj) {
  console.log(JSON.stringify(obj));
}

/** Failed assertion: printed as a JSON line and the process will exit non-zero (the run goes on). */
export function fail(bench, message, extra = {}) {
  console.log(JSON.stringify({ bench, assertion_failed: message, ...extra }));
  process.exitCode = 1;
}

/**
 * Bounded concurrent GETs: `requests` in total (and at most `maxMs`), `concurrency` in flight.
 * `next(i)` returns the path of request i. Returns latencies (ms), status counts, network errors
 * and the server's own metadata.api_latency_ms when the body carries it.
 */
export async function drive(base, next, { requests = 500, concurrency = 8, maxMs = 120_000 } = {}) {
  const lat = [];
  const server = [];
  const statuses = {};
  let errors = 0;
  let issued = 0;
  const t0 = performance.now();
  async function lane() {
    while (issued < requests && performance.now() - t0 < maxMs) {
      const p = next(issued++);
      const s = performance.now();
      try {
        const res = await fetch(base + p);
        const text = await res.text();
        lat.push(performance.now() - s);
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        const m = /"api_latency_ms":\s*([\d.]+)/.exec(text.slice(-400));
        if (m) server.push(Number(m[1]));
      } catch {
        errors++;
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  return { lat, server, statuses, errors, seconds: (performance.now() - t0) / 1000 };
}

/** Structured log lines the Worker wrote to bench/out/{name}-dev.log, plus wrangler's own error lines. */
export function devLog(name) {
  const file = path.join(root, "bench", "out", `${name}-dev.log`);
  const events = [];
  const other = [];
  if (!fs.existsSync(file)) return { events, other };
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (!line.trim()) continue;
    if (line.startsWith("{")) {
      try {
        events.push(JSON.parse(line));
        continue;
      } catch {}
    }
    other.push(line);
  }
  return { events, other };
}

/** Counts of warn/error events by name and wrangler lines that look like errors (first few kept). */
export function logProblems(name) {
  const { events, other } = devLog(name);
  const byEvent = {};
  for (const e of events)
    if (e.level === "error" || e.level === "warn") byEvent[`${e.level}:${e.event}`] = (byEvent[`${e.level}:${e.event}`] ?? 0) + 1;
  const bad = other.filter(
    (l) => /error|exception|uncaught|✘|\b5\d\d\b/i.test(l) && !/^\[wrangler:info\] (GET|POST|PUT) .* [234]\d\d /.test(l),
  );
  // wrangler dev rebuilds and restarts the Worker when src/ changes under it (concurrent edits).
  const reloads = other.filter((l) => l.includes("Reloading local server")).length;
  // Unique error-ish lines; wrangler's own "cannot fetch Request.cf" (no internet) is expected offline.
  const uniq = [...new Set(bad.map((l) => l.slice(0, 300)))];
  return {
    warn_error_events: byEvent,
    wrangler_reloads: reloads,
    wrangler_error_lines: bad.length,
    wrangler_error_sample: uniq.slice(0, 5),
  };
}
