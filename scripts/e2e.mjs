// Browser end-to-end tests: a fresh local stack with the sample data, then the dashboard checks
// in headless Chromium (Debian's /usr/bin/chromium), screenshots into docs/.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { root, startLocalStack } from "./local-stack.mjs";

const state = path.join(root, ".wrangler", "e2e-state");
fs.rmSync(state, { recursive: true, force: true });
const stack = await startLocalStack({ port: 18790, upstreamPort: 18791, token: "e2e-admin-token", persistTo: state, stdio: "ignore" });
let status = 1;
try {
  await stack.ready();
  const run = spawnSync(
    process.execPath,
    [
      path.join(root, "test", "e2e", "dashboard.e2e.mjs"),
      "--base",
      stack.base,
      "--token",
      stack.token,
      "--screenshots",
      path.join(root, "docs"),
    ],
    {
      cwd: root,
      stdio: "inherit",
    },
  );
  status = run.status ?? 1;
} finally {
  stack.stop();
}
process.exit(status);
