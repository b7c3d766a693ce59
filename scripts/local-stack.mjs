// The whole system on this machine, offline: local D1 migrations, the recorded upstream on
// loopback, `wrangler dev` (local D1, KV, R2, Queues, Cron) pointed at it, and the bundled sample
// data loaded through the API, tick by tick, so every asset has a price history. Used by
// `npm run dev` and by the browser end-to-end tests.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { sampleSchedule, startRecordedUpstream } from "./recorded-upstream.mjs";

export const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");

/** Environment for wrangler: Node >= 22 from node_modules/.bin (the npm package "node"), and no calls home. */
export function wranglerEnv() {
  return {
    ...process.env,
    WRANGLER_SEND_METRICS: "false",
    WRANGLER_HIDE_BANNER: "true",
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    PATH: `${path.join(root, "node_modules", ".bin")}${path.delimiter}${process.env.PATH}`,
  };
}
export const wranglerBin = path.join(root, "node_modules", ".bin", "wrangler");

/**
 * Applies the D1 migrations to local state, then `wrangler dev` arguments for loopback with these vars.
 * `stdio` is where the migration's output goes: "pipe" (kept, shown only if it fails), "inherit",
 * or a file descriptor.
 */
export function prepareLocalWorker({ port, persistTo, vars, stdio = "pipe", inspectorPort }) {
  const persist = persistTo ? ["--persist-to", persistTo] : [];
  const migrate = spawnSync(wranglerBin, ["d1", "migrations", "apply", "coinfuse", "--local", ...persist], {
    cwd: root,
    stdio: typeof stdio === "number" ? ["ignore", stdio, stdio] : stdio,
    env: wranglerEnv(),
    encoding: "utf8",
  });
  if (migrate.status !== 0) throw new Error(`applying the D1 migrations failed: ${migrate.stdout ?? ""}${migrate.stderr ?? ""}`);
  return [
    "dev",
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    ...(inspectorPort ? ["--inspector-port", String(inspectorPort)] : []),
    "--test-scheduled",
    "--show-interactive-dev-session=false",
    ...persist,
    ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
  ];
}

/** Resolves once the Worker answers /health (200, or 503 while D1 is down); rejects if `exited` says wrangler stopped. */
/** Waits until the Worker answers `path` (/health by default; any answer but a connection error counts for another path). */
export async function waitForHealth(base, exited = () => null, path = "/health") {
  for (let i = 0; i < 300; i++) {
    const code = exited();
    if (code !== null) throw new Error(`wrangler dev exited (${code}) before ${base}${path} answered`);
    try {
      const r = await fetch(`${base}${path}`);
      if (path !== "/health" || r.status === 200 || r.status === 503) return;
    } catch {}
    await sleep(300);
  }
  throw new Error(`${base}${path} did not answer`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/**
 * Starts the recorded upstream and `wrangler dev`. Wrangler's output (migrations, bindings,
 * request logs) goes to `log` (a file, truncated first), or to this terminal with `verbose`.
 * Returns the stack once /health answers; `load()` then puts the sample data in.
 */
export async function startLocalStack({
  port = 8787,
  upstreamPort = 8789,
  inspectorPort = 9229,
  token = "dev-admin-token",
  persistTo,
  log = path.join(root, ".wrangler", "dev.log"),
  verbose = false,
} = {}) {
  const upstream = await startRecordedUpstream(upstreamPort);
  const vars = {
    COINGECKO_BASE_URL: `http://127.0.0.1:${upstreamPort}/api/v3`,
    COINPAPRIKA_BASE_URL: `http://127.0.0.1:${upstreamPort}/v1`,
    DATA_ORIGIN: "recorded",
    ADMIN_TOKEN: token,
    // The upstream is this machine: no reason to pace the replay of the sample ticks.
    COINGECKO_REQUESTS_PER_MINUTE: "6000",
    COINPAPRIKA_REQUESTS_PER_MINUTE: "6000",
  };
  fs.mkdirSync(path.dirname(log), { recursive: true });
  const fd = verbose ? null : fs.openSync(log, "w");
  const fail = (err) => {
    upstream.close();
    if (fd === null) throw err;
    throw new Error(`${err.message}\n--- last lines of ${path.relative(process.cwd(), log)} ---\n${tail(log)}`);
  };
  let args;
  try {
    args = prepareLocalWorker({ port, persistTo, vars, inspectorPort, stdio: fd ?? "inherit" });
  } catch (err) {
    fail(err);
  }
  const dev = spawn(wranglerBin, args, {
    cwd: root,
    stdio: fd === null ? "inherit" : ["ignore", fd, fd],
    env: wranglerEnv(),
    detached: true,
  });
  if (fd !== null) fs.closeSync(fd);
  let exitCode = null;
  dev.on("exit", (code, signal) => {
    exitCode = code ?? signal;
  });
  const base = `http://127.0.0.1:${port}`;
  const stop = () => {
    upstream.close();
    try {
      process.kill(-dev.pid, "SIGTERM");
    } catch {}
  };
  try {
    await waitForHealth(base, () => exitCode);
  } catch (err) {
    stop();
    fail(err);
  }
  return {
    base,
    token,
    dev,
    log: fd === null ? null : log,
    upstream,
    /** Replays the sample ticks not stored yet through the API; resolves with what they did. */
    load: (opts) => loadSample({ base, token, upstream, ...opts }),
    stop,
    /** The last lines wrangler wrote (empty in verbose mode). */
    tail: (n) => (fd === null ? "" : tail(log, n)),
  };
}

/**
 * Puts the sample data in through the real API, one tick at a time and oldest first: the upstream
 * answers that tick's payloads, then a CSV upload, a CoinGecko run and a CoinPaprika run, and the
 * next tick starts when all three have finished. Ticks not newer than what is stored are skipped
 * (a restart only adds the ticks since the last start).
 */
async function loadSample({ base, token, upstream, now = Date.now(), onTick = () => {} }) {
  const started = Date.now();
  const auth = { authorization: `Bearer ${token}` };
  const schedule = sampleSchedule(now);
  const stored = await newestStored(base);
  const ticks = schedule.filter((t) => t.at > stored);
  const runs = [];
  for (const tick of ticks) {
    upstream.setTick(tick, schedule);
    const ids = await Promise.all([
      admin(base, "PUT", "/uploads/csv/sample.csv", auth, upstream.csv()).then((d) => d.run_id),
      admin(base, "POST", "/etl/run/coingecko", auth).then((d) => d.run_id),
      admin(base, "POST", "/etl/run/coinpaprika", auth).then((d) => d.run_id),
    ]);
    runs.push(...(await waitRuns(base, ids)));
    onTick(tick, ticks.length);
  }
  // Later runs (a cron tick, POST /etl/run-all) get the newest tick again: nothing new to store.
  upstream.setTick(schedule.at(-1), schedule);
  return { schedule, ticks, runs, ms: Date.now() - started, storedBefore: Number.isFinite(stored) ? new Date(stored).toISOString() : null };
}

/** The newest source time among stored assets (-Infinity when nothing is stored). */
async function newestStored(base) {
  const r = await fetch(`${base}/data?page_size=250&sort=rank`);
  if (!r.ok) return Number.NEGATIVE_INFINITY;
  const times = ((await r.json()).data ?? []).map((a) => Date.parse(a.updated_at)).filter(Number.isFinite);
  return times.length ? Math.max(...times) : Number.NEGATIVE_INFINITY;
}

/** An admin write, retried while its source is busy (409: a cron tick may have started a run). */
async function admin(base, method, pathname, headers, body) {
  for (let i = 0; ; i++) {
    const r = await fetch(`${base}${pathname}`, {
      method,
      headers: body ? { ...headers, "content-type": "text/csv" } : headers,
      body,
    });
    if (r.status === 409 && i < 100) {
      await sleep(200);
      continue;
    }
    if (!r.ok) throw new Error(`${method} ${pathname} answered ${r.status}: ${(await r.text()).slice(0, 300)}`);
    return (await r.json()).data;
  }
}

const FINAL = ["succeeded", "partial", "failed"];

/**
 * Waits for the runs to finish, reading the newest runs ten times a second (one request each time;
 * a run not among them is read on its own now and then). A run stuck for 2 minutes is an error:
 * wrangler dev reloads when a source file changes, and a reload drops the local queue's messages.
 */
async function waitRuns(base, ids, timeoutMs = 120_000) {
  const done = new Map();
  const deadline = Date.now() + timeoutMs;
  for (let i = 1; done.size < ids.length; i++) {
    if (Date.now() > deadline) {
      const left = ids.filter((x) => !done.has(x));
      throw new Error(`run${left.length === 1 ? "" : "s"} ${left.join(", ")} did not finish within ${timeoutMs / 1000} s`);
    }
    await sleep(100);
    const r = await fetch(`${base}/stats/runs?page_size=50`);
    if (r.ok)
      for (const run of (await r.json()).data ?? []) if (ids.includes(run.run_id) && FINAL.includes(run.status)) done.set(run.run_id, run);
    if (i % 20 === 0)
      for (const id of ids.filter((x) => !done.has(x))) {
        const one = await fetch(`${base}/etl/runs/${id}`);
        const run = one.ok ? (await one.json()).data : null;
        if (FINAL.includes(run?.status)) done.set(id, run);
      }
  }
  return ids.map((id) => done.get(id));
}
