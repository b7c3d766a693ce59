// `npm run dev`: the whole system on this machine, offline, with the bundled sample data loaded.
import { startLocalStack } from "./local-stack.mjs";

const stack = await startLocalStack({ port: Number(process.env.PORT ?? 8787), token: process.env.ADMIN_TOKEN ?? "dev-admin-token" });
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => stack.stop());
stack.dev.on("exit", (code) => process.exit(code ?? 0));
const runs = await stack.ready();
const { base, token } = stack;
console.log(`
coinfuse is running at ${base} with recorded sample data (offline):
  ${runs.map((r) => `${r.source} ${r.status} (${r.records.accepted} accepted, ${r.records.rejected} rejected)`).join("; ")}
  dashboard   ${base}/
  API docs    ${base}/docs
  assets      ${base}/data
  health      ${base}/health
  cron tick   ${base}/__scheduled?cron=*+*+*+*+*
  admin token ${token}    e.g. curl -X POST -H 'authorization: Bearer ${token}' ${base}/etl/run-all
`);
