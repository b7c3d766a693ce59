// The whole system on this machine, offline: local D1 migrations, the recorded upstream on
// loopback, `wrangler dev` (local D1, KV, R2, Queues, Cron) pointed at it, and the bundled sample
// data loaded through the API. Used by `npm run dev` and by the browser end-to-end tests.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { startRecordedUpstream } from "./recorded-upstream.mjs";

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

/** Applies the D1 migrations to local state, then `wrangler dev` arguments for loopback with these vars. */
export function prepareLocalWorker({ port, persistTo, vars, stdio = "pipe" }) {
  const persist = persistTo ? ["--persist-to", persistTo] : [];
  const migrate = spawnSync(wranglerBin, ["d1", "migrations", "apply", "coinfuse", "--local", ...persist], {
    cwd: root,
    stdio,
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
    "--test-scheduled",
    ...persist,
    ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
  ];
}

/** Resolves once the Worker answers /health (200, or 503 while D1 is down). */
export async function waitForHealth(base) {
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(`${base}/health`);
      if (r.status === 200 || r.status === 503) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${base}/health did not answer`);
}

export async function startLocalStack({ port = 8787, upstreamPort = 8789, token = "dev-admin-token", persistTo, stdio = "inherit" } = {}) {
  const upstream = await startRecordedUpstream(upstreamPort);
  const vars = {
    COINGECKO_BASE_URL: `http://127.0.0.1:${upstreamPort}/api/v3`,
    COINPAPRIKA_BASE_URL: `http://127.0.0.1:${upstreamPort}/v1`,
    DATA_ORIGIN: "recorded",
    ADMIN_TOKEN: token,
    COINGECKO_REQUESTS_PER_MINUTE: "600",
  };
  const args = prepareLocalWorker({ port, persistTo, vars, stdio });
  const dev = spawn(wranglerBin, args, { cwd: root, stdio, env: wranglerEnv(), detached: stdio !== "inherit" });
  const base = `http://127.0.0.1:${port}`;
  await waitForHealth(base);

  const auth = { authorization: `Bearer ${token}` };
  const csv = fs.readFileSync(path.join(root, "data", "csv", "sample.csv"));
  const upload = await fetch(`${base}/uploads/csv/sample.csv`, {
    method: "PUT",
    headers: { ...auth, "content-type": "text/csv" },
    body: csv,
  });
  const runAll = await fetch(`${base}/etl/run-all`, { method: "POST", headers: auth });
  const runIds = runAll.ok ? (await runAll.json()).data.runs.map((r) => r.run_id) : [];
  const uploadRun = upload.ok ? (await upload.json()).data.run_id : null;

  return {
    base,
    token,
    dev,
    loaded: { upload: upload.status, runAll: runAll.status },
    /** Resolves when the sample data's runs have finished. */
    ready: () => Promise.all([...runIds, uploadRun].filter(Boolean).map((id) => waitRun(base, id))),
    stop() {
      upstream.close();
      try {
        if (stdio === "inherit") dev.kill("SIGTERM");
        else process.kill(-dev.pid, "SIGTERM");
      } catch {}
    },
  };
}

async function waitRun(base, id) {
  for (let i = 0; i < 600; i++) {
    const r = await (await fetch(`${base}/etl/runs/${id}`)).json();
    if (["succeeded", "partial", "failed"].includes(r.data?.status)) return r.data;
    await new Promise((res) => setTimeout(res, 300));
  }
  throw new Error(`run ${id} did not finish`);
}
