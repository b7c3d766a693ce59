// `npm run dev`: the whole system on this machine, offline, with the bundled sample data loaded.
//   PORT (8787)           the Worker: dashboard, API, docs
//   UPSTREAM_PORT (8789)  the recorded CoinGecko/CoinPaprika sample upstream
//   INSPECTOR_PORT (9229) wrangler's devtools inspector
//   ADMIN_TOKEN           the admin token (dev-admin-token)
// Wrangler's own output goes to .wrangler/dev.log; `npm run dev -- --verbose` shows it here instead.
import path from "node:path";
import { startLocalStack } from "./local-stack.mjs";

const port = (name, fallback) => {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    console.error(`${name}=${v} is not a port number`);
    process.exit(2);
  }
  return n;
};

const verbose = process.argv.includes("--verbose");
const t0 = Date.now();
const tty = process.stdout.isTTY && !verbose;
const progress = (text) => tty && process.stdout.write(`\r\x1b[2K${text}`);
progress("coinfuse: starting wrangler dev…");

let stack;
try {
  stack = await startLocalStack({
    port: port("PORT", 8787),
    upstreamPort: port("UPSTREAM_PORT", 8789),
    inspectorPort: port("INSPECTOR_PORT", 9229),
    token: process.env.ADMIN_TOKEN || "dev-admin-token",
    verbose,
  });
} catch (err) {
  progress("");
  console.error(`coinfuse could not start: ${err.message}`);
  if (/address already in use|EADDRINUSE/i.test(err.message))
    console.error("A port is taken: move it with PORT, UPSTREAM_PORT or INSPECTOR_PORT (e.g. PORT=8800 INSPECTOR_PORT=9230 npm run dev).");
  process.exit(1);
}
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => stack.stop());
stack.dev.on("exit", (code) => {
  if (code) console.error(`wrangler dev exited with ${code}${stack.log ? `; see ${path.relative(process.cwd(), stack.log)}` : ""}`);
  process.exit(code ?? 0);
});

const up = Date.now();
let loaded;
try {
  loaded = await stack.load({ onTick: (t, n) => progress(`coinfuse: loading sample tick ${t.index + 1 - (t.count - n)}/${n}…`) });
} catch (err) {
  progress("");
  const reloaded = stack.log && /Reloading local server/.test(stack.tail(400));
  console.error(
    `coinfuse started, but loading the sample data failed: ${err.message}${reloaded ? " (wrangler reloaded the Worker meanwhile: a source file changed; run it again)" : ""}${stack.log ? `\n${stack.tail(20)}` : ""}`,
  );
  stack.stop();
  process.exit(1);
}
progress("");

const { base, token } = stack;
const fmt = (iso) => iso.slice(0, 16).replace("T", " ");
const runs = loaded.runs;
const bad = runs.filter((r) => r.status === "failed");
const when = (t) => `${fmt(new Date(t.at).toISOString())} UTC`;
const ticks = loaded.ticks;
const history = !ticks.length
  ? `nothing new to load (stored data reaches ${loaded.storedBefore ? `${fmt(loaded.storedBefore)} UTC` : "now"})`
  : `${ticks.length === 1 ? `1 sample tick at ${when(ticks[0])}` : `${ticks.length} sample ticks, ${when(ticks[0])} to ${when(ticks.at(-1))}`}: ${runs.length} runs (a CSV upload, a CoinGecko and a CoinPaprika run a tick)${bad.length ? `, ${bad.length} failed` : ""}`;
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
console.log(`coinfuse is ready in ${secs(Date.now() - t0)} (wrangler dev ${secs(up - t0)}, sample ${secs(loaded.ms)}), with sample data: recorded payloads, prices moved by a seeded random walk, not market data
  loaded      ${history}
  dashboard   ${base}/
  API docs    ${base}/docs
  admin token ${token}   e.g. curl -X POST -H 'authorization: Bearer ${token}' ${base}/etl/run-all
  logs        ${stack.log ? `${path.relative(process.cwd(), stack.log)} (wrangler and the Worker)` : "above"}; Ctrl-C stops`);
if (bad.length) console.log(`  failed runs: ${bad.map((r) => `${r.source} ${r.run_id}: ${r.error}`).join("; ")}`);
