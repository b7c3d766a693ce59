// CSV ingestion through the real path: PUT /uploads/csv -> R2 -> Queue -> streamed parse ->
// unify -> D1, on a local Worker. Prints rows/s for each size.
//   node bench/csv-ingest.mjs [rows ...]   (default: 100000)
import { call, coincapCsv, startWorker, TOKEN, waitFinished } from "./lib.mjs";

const sizes = process.argv.slice(2).map(Number).filter(Boolean);
const worker = await startWorker({ name: "csv", vars: { MAX_UPLOAD_BYTES: String(200 * 1024 * 1024) } });
try {
  for (const rows of sizes.length ? sizes : [100_000]) {
    const body = coincapCsv(rows, `b${rows}`);
    const t0 = Date.now();
    const put = await call(worker.base, "PUT", `/uploads/csv/bench-${rows}.csv`, {
      body,
      headers: { "content-type": "text/csv" },
      token: TOKEN,
    });
    if (put.status !== 202) throw new Error(`upload answered ${put.status}: ${put.text.slice(0, 200)}`);
    const upload = await waitFinished(worker.base, `/uploads/${put.json.data.upload_id}`);
    const s = (Date.now() - t0) / 1000;
    console.log(
      JSON.stringify({
        bench: "csv_ingest",
        rows,
        mb: +(body.length / 1e6).toFixed(1),
        status: upload.status,
        accepted: upload.records.accepted,
        seconds: +s.toFixed(2),
        rows_per_s: Math.round(rows / s),
      }),
    );
  }
} finally {
  worker.stop();
}
