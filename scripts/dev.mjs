// `npm run dev`: the whole system on this machine, offline. Applies the D1 migrations locally,
// serves the recorded upstream payloads from data/ on loopback, starts `wrangler dev` (local D1,
// KV, R2, Queues and Cron) pointed at them, then loads the bundled sample data through the API:
// the sample CSV upload and one run of every source.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { startRecordedUpstream } from "./recorded-upstream.mjs";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const port = Number(process.env.PORT ?? 8787);
const upstreamPort = Number(process.env.UPSTREAM_PORT ?? 8789);
const token = process.env.ADMIN_TOKEN ?? "dev-admin-token";
const base = `http://127.0.0.1:${port}`;
const wrangler = path.join(root, "node_modules", ".bin", "wrangler");
// wrangler needs Node >= 22: the project brings it (npm package "node") in node_modules/.bin.
const env = { ...process.env, WRANGLER_SEND_METRICS: "false", PATH: `${path.join(root, "node_modules", ".bin")}${path.delimiter}${process.env.PATH}` };

const migrate = spawnSync(wrangler, ["d1", "migrations", "apply", "coinfuse", "--local"], { cwd: root, stdio: "inherit", env });
if (migrate.status !== 0) process.exit(migrate.status ?? 1);

await startRecordedUpstream(upstreamPort);
const vars = {
  COINGECKO_BASE_URL: `http://127.0.0.1:${upstreamPort}/api/v3`,
  COINPAPRIKA_BASE_URL: `http://127.0.0.1:${upstreamPort}/v1`,
  DATA_ORIGIN: "recorded",
  ADMIN_TOKEN: token,
  COINGECKO_REQUESTS_PER_MINUTE: "600",
};
const args = ["dev", "--ip", "127.0.0.1", "--port", String(port), "--test-scheduled", ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`])];
const dev = spawn(wrangler, args, { cwd: root, stdio: "inherit", env });
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => dev.kill(sig));
dev.on("exit", (code) => process.exit(code ?? 0));

await waitFor(`${base}/health`);
const csv = fs.readFileSync(path.join(root, "data", "csv", "sample.csv"));
const auth = { authorization: `Bearer ${token}` };
const upload = await fetch(`${base}/uploads/csv/sample.csv`, { method: "PUT", headers: { ...auth, "content-type": "text/csv" }, body: csv });
const runs = await fetch(`${base}/etl/run-all`, { method: "POST", headers: auth });
console.log(`
coinfuse is running at ${base} with recorded sample data (offline).
  dashboard   ${base}/
  API docs    ${base}/docs
  assets      ${base}/data
  health      ${base}/health
  cron        ${base}/__scheduled?cron=*+*+*+*+*
  admin token ${token}   (e.g. curl -X POST -H 'authorization: Bearer ${token}' ${base}/etl/run-all)
sample CSV upload: HTTP ${upload.status}; run-all: HTTP ${runs.status}
`);

async function waitFor(url) {
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(url);
      if (r.status === 200 || r.status === 503) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${url} did not answer`);
}
