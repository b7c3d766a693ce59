// Every benchmark in sequence (one at a time: each starts its own Worker), each in its own Node
// process; their stdout passes through and every JSON line is collected, tagged with the script,
// in bench/out/results.jsonl. Exits non-zero when any benchmark did.
//   node bench/run-all.mjs
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { root } from "./lib.mjs";

const STEPS = [
  ["cost", ["bench/cost.mjs"]],
  ["history-size", ["bench/history-size.mjs"]],
  ["csv-ingest", ["bench/csv-ingest.mjs", "100000"]],
  ["ingest", ["bench/ingest.mjs"]],
  ["api", ["bench/api.mjs"]],
  ["series", ["bench/series.mjs"]],
  ["load", ["bench/load.mjs"]],
];
const STEP_TIMEOUT_MS = 30 * 60_000;

const outDir = path.join(root, "bench", "out");
fs.mkdirSync(outDir, { recursive: true });
const resultsFile = path.join(outDir, "results.jsonl");
fs.writeFileSync(resultsFile, "");
const started = new Date().toISOString();

function run(script, args) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"], detached: true });
    const timer = setTimeout(() => {
      console.error(`${script}: over ${STEP_TIMEOUT_MS / 60_000} min, stopping it`);
      try {
        process.kill(-child.pid, "SIGTERM"); // its own process group: the script and its wrangler
      } catch {}
    }, STEP_TIMEOUT_MS);
    let buf = "";
    child.stdout.on("data", (chunk) => {
      process.stdout.write(chunk);
      buf += chunk;
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line.startsWith("{")) {
          try {
            fs.appendFileSync(resultsFile, `${JSON.stringify({ script, at: new Date().toISOString(), ...JSON.parse(line) })}\n`);
          } catch {}
        }
        nl = buf.indexOf("\n");
      }
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, signal, seconds: Math.round((Date.now() - t0) / 1000) });
    });
  });
}

const summary = [];
for (const [script, args] of STEPS) {
  console.log(`\n=== ${script}: node ${args.join(" ")}`);
  const r = await run(script, args);
  summary.push({ script, exit_code: r.code, signal: r.signal, seconds: r.seconds });
  fs.appendFileSync(
    resultsFile,
    `${JSON.stringify({ script, bench: "exit", at: new Date().toISOString(), exit_code: r.code, signal: r.signal, seconds: r.seconds })}\n`,
  );
}
const line = { bench: "run_all", started, finished: new Date().toISOString(), steps: summary, ok: summary.every((s) => s.exit_code === 0) };
fs.appendFileSync(resultsFile, `${JSON.stringify({ script: "run-all", ...line })}\n`);
console.log(`\n${JSON.stringify(line)}`);
console.log(`results: ${path.relative(root, resultsFile)}`);
if (!line.ok) process.exitCode = 1;
