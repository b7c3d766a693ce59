// Browser end-to-end tests: a fresh local stack with the sample data (its ticks replayed, as
// `npm run dev` does), then the dashboard checks in headless Chromium (Debian's /usr/bin/chromium),
// screenshots into docs/, then every `curl` line of the README against the same stack.
//   E2E_PORT (18790), E2E_UPSTREAM_PORT (18791), E2E_INSPECTOR_PORT (18792) move its ports.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { root, startLocalStack } from "./local-stack.mjs";

const state = path.join(root, ".wrangler", "e2e-state");
const log = path.join(root, ".wrangler", "e2e.log");
fs.rmSync(state, { recursive: true, force: true });
const t0 = Date.now();
const stack = await startLocalStack({
  port: Number(process.env.E2E_PORT || 18790),
  upstreamPort: Number(process.env.E2E_UPSTREAM_PORT || 18791),
  inspectorPort: Number(process.env.E2E_INSPECTOR_PORT || 18792),
  token: "e2e-admin-token",
  persistTo: state,
  log,
});
let status = 1;
try {
  const loaded = await stack.load().catch((err) => {
    const reloaded = /Reloading local server/.test(stack.tail(400));
    console.error(
      `loading the sample failed: ${err.message}${reloaded ? " (wrangler reloaded the Worker meanwhile: a source file changed)" : ""}\n${stack.tail(20)}`,
    );
    console.log("0 passed, 1 failed");
    throw err;
  });
  console.log(
    `local stack ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${loaded.ticks.length} sample ticks, ${loaded.runs.length} runs (wrangler's output: ${path.relative(root, log)})`,
  );
  const totals = { passed: 0, failed: 0 };
  const run = (file, ...args) => {
    const r = spawnSync(process.execPath, [path.join(root, file), "--base", stack.base, "--token", stack.token, ...args], {
      cwd: root,
      stdio: ["ignore", "pipe", "inherit"],
      encoding: "utf8",
    });
    process.stdout.write(r.stdout ?? "");
    const [, passed = 0, failed = 1] = (r.stdout ?? "").match(/^(\d+) passed, (\d+) failed/m) ?? [];
    totals.passed += Number(passed);
    totals.failed += Number(failed);
    return r.status ?? 1;
  };
  const dashboard = run(path.join("test", "e2e", "dashboard.e2e.mjs"), "--screenshots", path.join(root, "docs"));
  const readme = run(path.join("test", "e2e", "readme.e2e.mjs"));
  // One total last: the line CI reads.
  console.log(`e2e: dashboard and README together\n${totals.passed} passed, ${totals.failed} failed`);
  status = dashboard || readme;
} finally {
  stack.stop();
}
process.exit(status);
