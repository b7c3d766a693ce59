import { describe, expect, it } from "vitest";
import { ingestUpload } from "../src/ingest/csv-upload";
import type { JobMessage } from "../src/jobs/messages";
import { sleep } from "../src/lib/clock";
import { rows, stageCsv, testServices } from "./helpers";

type UploadMessage = Extract<JobMessage, { type: "csv_upload" }>;

/** Every 7th row has no valid price, so block 1 already holds rejections. */
function csv(n: number) {
  const lines = ["id,symbol,name,price,timestamp"];
  for (let i = 1; i <= n; i++)
    lines.push(`race-${i},RACE${i},Race Coin ${i},${i % 7 === 0 ? "n/a" : (i / 10).toFixed(2)},2026-11-22T12:00:00Z`);
  return `${lines.join("\n")}\n`;
}

/** An R2 bucket whose `nth` read waits until released; `reached` settles when that read is asked for. */
function pausingBucket(bucket: R2Bucket, nth: number) {
  let calls = 0;
  let release!: () => void;
  let arrived!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const reached = new Promise<void>((r) => {
    arrived = r;
  });
  const paused = new Proxy(bucket, {
    get(target, prop) {
      if (prop !== "get") return Reflect.get(target, prop).bind(target);
      return async (key: string, options?: R2GetOptions) => {
        if (++calls === nth) {
          arrived();
          await gate;
        }
        return target.get(key, options);
      };
    },
  });
  return { bucket: paused, reached, release };
}

async function until(check: () => Promise<boolean>) {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error("condition not reached");
}

const settled = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (e: Error) => e,
  );

describe("two first deliveries of one upload", () => {
  it("count every row once: the delivery that lost the header write leaves the file to the other", async () => {
    const rowsInFile = 600;
    const blockBytes = 4 * 1024;
    const { s, sent } = testServices();
    const up = await stageCsv(s, sent, "race.csv", csv(rowsInFile));
    const msg = up.message as UploadMessage;

    // B (the sweep's re-enqueue) reads the upload before anyone wrote its header, then waits at its first read of the file.
    const b = pausingBucket(s.env.BUCKET, 1);
    const deliveryB = settled(ingestUpload({ ...s, env: { ...s.env, BUCKET: b.bucket } }, msg, { blockBytes }));
    await b.reached;
    // A (the original message) writes the header and stores block 1, then waits at its third read.
    const a = pausingBucket(s.env.BUCKET, 3);
    const deliveryA = settled(ingestUpload({ ...s, env: { ...s.env, BUCKET: a.bucket } }, msg, { blockBytes }));
    await a.reached;
    await until(async () => (await rows<{ n: number }>("SELECT rows_done AS n FROM uploads WHERE upload_id = ?", up.uploadId))[0].n > 0);

    // B goes on from the state it read; then A goes on.
    b.release();
    await deliveryB;
    a.release();
    await deliveryA;
    // The queue delivers again whatever failed, until the upload is finished.
    for (let i = 0; i < 3; i++) {
      const [u] = await rows<{ status: string }>("SELECT status FROM uploads WHERE upload_id = ?", up.uploadId);
      if (u.status !== "running" && u.status !== "queued") break;
      await settled(ingestUpload(s, msg, { blockBytes }));
    }

    const bad = Array.from({ length: Math.floor(rowsInFile / 7) }, (_, i) => (i + 1) * 7);
    const [upload] = await rows("SELECT status, accepted, rejected, rows_done FROM uploads WHERE upload_id = ?", up.uploadId);
    expect(upload).toEqual({ status: "partial", accepted: rowsInFile - bad.length, rejected: bad.length, rows_done: rowsInFile });
    const rejected = await rows<{ row: number }>("SELECT row FROM rejected_records WHERE run_id = ? ORDER BY row", up.runId);
    expect(rejected.map((r) => r.row)).toEqual(bad);
    const [run] = await rows("SELECT status, fetched, accepted, rejected FROM ingestion_runs WHERE run_id = ?", up.runId);
    expect(run).toEqual({ status: "partial", fetched: rowsInFile, accepted: rowsInFile - bad.length, rejected: bad.length });
  });
});
