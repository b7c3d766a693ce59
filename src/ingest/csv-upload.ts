import { and, eq, isNull, sql } from "drizzle-orm";
import { builder } from "../db/client";
import { ingestionRuns, uploads } from "../db/schema";
import type { JobMessage } from "../jobs/messages";
import { now, nowIso } from "../lib/clock";
import { log } from "../lib/log";
import type { Services } from "../services";
import { CsvFormatError, type CsvHeader, csvBlocks, isBlank, MAX_RECORD_BYTES, parseRecords, rowToQuote } from "../sources/csv";
import type { Normalised } from "../sources/source-quote";
import { completeRun } from "./finish";
import { type Costed, getRun, isFinished, markRunning } from "./runs";
import { CheckpointMoved, storeNormalised } from "./store-chunk";

type CsvUploadMessage = Extract<JobMessage, { type: "csv_upload" }>;
type UploadRow = typeof uploads.$inferSelect;
/** A resume point: the byte offset of the next unread record and the number of data rows before it. */
type Position = { offset: number; rows: number };

/** Rows are stored in blocks of about this many bytes: one D1 transaction each, with the resume point. */
const BLOCK_BYTES = 1024 * 1024;
/** After this long, the job hands the rest of the file to a fresh message (Workers limit one invocation). */
const TIME_BUDGET_MS = 60_000;

/**
 * Streams one uploaded CSV from R2, from the byte offset and row count stored in D1 (the resume
 * checkpoint), parses and validates it block by block, and stores each block in one transaction
 * together with the new offset. A consumer that dies mid-file resumes exactly where the last
 * committed block ended: no row is stored twice, none is skipped.
 */
export async function ingestUpload(s: Services, msg: CsvUploadMessage, opts: { blockBytes?: number; timeBudgetMs?: number } = {}) {
  const blockBytes = opts.blockBytes ?? BLOCK_BYTES;
  const run = await getRun(s.db, msg.run_id);
  const upload = await s.db.query.uploads.findFirst({ where: eq(uploads.uploadId, msg.upload_id) });
  if (!run || !upload || isFinished(run.status)) return;
  await markRunning(s.db, run.runId);
  await s.db.update(uploads).set({ status: "running", updatedAt: nowIso() }).where(eq(uploads.uploadId, upload.uploadId));
  const head = await s.env.BUCKET.head(upload.key);
  if (!head) return fail(s, upload, `the object ${upload.key} is no longer in R2`);
  const deadline = now() + (opts.timeBudgetMs ?? TIME_BUDGET_MS);

  let header: CsvHeader | null = upload.header ? JSON.parse(upload.header) : null;
  // Where this delivery is: every block moves the checkpoint on from here, or finds it moved by another delivery.
  let at = { offset: upload.byteOffset, rows: upload.rowsDone };
  // Block N is written to D1 while block N+1 is read and parsed; writes stay in file order.
  let storing: Promise<void> = Promise.resolve();
  const blocks = csvBlocks(ranges(s.env.BUCKET, upload.key, at.offset, head.size, blockBytes), {
    offset: at.offset,
    blockBytes,
    headerKnown: !!header,
  });
  try {
    for await (const block of blocks) {
      if (block.kind === "header") {
        if (!(await writeHeader(s, upload, block.header, block.to))) return superseded(run.runId, upload.uploadId);
        header = block.header;
        at = { offset: block.to, rows: at.rows };
        continue;
      }
      const { normalised, rows } =
        block.kind === "records"
          ? parseBlock(block.bytes, header!, at.rows, head.uploaded.toISOString())
          : { normalised: { quotes: [], rejected: [overlongRecord(at.rows + 1)] }, rows: 1 };
      const to = { offset: block.to, rows: at.rows + rows };
      await storing;
      storing = storeBlock(s, upload, normalised, at, to);
      storing.catch(() => {}); // awaited (and thrown) before the next block or at the end
      at = to;
      if (now() > deadline && at.offset < head.size) {
        await storing;
        await s.env.JOBS.send(msg);
        log("info", "csv_continues", { run_id: run.runId, upload_id: upload.uploadId, byte_offset: at.offset, rows: at.rows });
        return;
      }
    }
    await storing;
  } catch (e) {
    // A failed read or parse must not leave the previous block's write running behind the retry.
    await storing.catch(() => {});
    if (e instanceof CsvFormatError) return fail(s, upload, e.message);
    if (e instanceof CheckpointMoved) return superseded(run.runId, upload.uploadId);
    throw e;
  }
  await finishUpload(s, upload.uploadId, run.runId, null);
}

/** The file from `from` to `size`, in ranges of `length` bytes: bounded memory whatever its size, few round trips. */
async function* ranges(bucket: R2Bucket, key: string, from: number, size: number, length: number) {
  for (let at = from; at < size; ) {
    const part = await bucket.get(key, { range: { offset: at, length: Math.min(length, size - at) } });
    const bytes = part ? new Uint8Array(await part.arrayBuffer()) : null;
    if (!bytes?.length) throw new Error(`the object ${key} could not be read at byte ${at}`);
    at += bytes.length;
    yield bytes;
  }
}

/**
 * Records the header and the offset past it, from the state this delivery read (no header yet):
 * false when another delivery wrote it first.
 */
async function writeHeader(s: Services, upload: UploadRow, header: CsvHeader, offset: number) {
  const wrote = await s.db
    .update(uploads)
    .set({ header: JSON.stringify(header), byteOffset: offset, updatedAt: nowIso() })
    .where(
      and(
        eq(uploads.uploadId, upload.uploadId),
        isNull(uploads.header),
        eq(uploads.byteOffset, upload.byteOffset),
        eq(uploads.rowsDone, upload.rowsDone),
      ),
    );
  return wrote.meta.changes > 0;
}

/**
 * Another delivery of the upload (the sweep's re-enqueue, a redelivery) moved its checkpoint after
 * this one read it: that one carries the file on and this one stops, so every row is counted once.
 * Should the other die, the sweep finds the upload stalled and enqueues it again.
 */
function superseded(runId: string, uploadId: string) {
  log("info", "csv_superseded", { run_id: runId, upload_id: uploadId });
}

function parseBlock(block: Uint8Array, header: CsvHeader, rowsBefore: number, fallbackTime: string) {
  const normalised: Normalised = { quotes: [], rejected: [] };
  if (block.length === 0) return { normalised, rows: 0 };
  const rows = parseRecords(new TextDecoder().decode(block), header);
  rows.forEach((cells, i) => {
    if (isBlank(cells)) return;
    const result = rowToQuote(cells, header, rowsBefore + i + 1, fallbackTime);
    if ("quote" in result) normalised.quotes.push(result.quote);
    else normalised.rejected.push(result.rejection);
  });
  return { normalised, rows: rows.length };
}

/** Stores one block and moves the resume point from `from` to `to` in the same transaction. */
async function storeBlock(s: Services, upload: UploadRow, normalised: Normalised, from: Position, to: Position) {
  const accepted = normalised.quotes.length;
  const rejected = normalised.rejected.length;
  const advance = sql`
    UPDATE uploads SET byte_offset = ${to.offset}, rows_done = ${to.rows}, accepted = accepted + ${accepted},
      rejected = rejected + ${rejected}, updated_at = ${nowIso()}
    WHERE upload_id = ${upload.uploadId} AND byte_offset = ${from.offset} AND rows_done = ${from.rows}`;
  const holds = sql`(SELECT byte_offset = ${to.offset} AND rows_done = ${to.rows} FROM uploads WHERE upload_id = ${upload.uploadId})`;
  await storeNormalised(s.db, s.env.KV, {
    source: "csv",
    runId: upload.runId!,
    part: `rows-${from.rows}`,
    fetched: accepted + rejected,
    normalised,
    checkpoint: { advance, holds },
  });
}

const overlongRecord = (row: number) => ({
  recordKey: `row:${row}`,
  row,
  sourceId: null,
  reason: `row is longer than ${MAX_RECORD_BYTES / 1024} KiB (or has an unclosed quote); skipped`,
});

async function fail(s: Services, upload: UploadRow, reason: string) {
  await finishUpload(s, upload.uploadId, upload.runId!, reason);
}

/**
 * Closes the upload's run, the upload taking the run's final status in the close's transaction, so
 * that what the update costs is in the run's usage (after the close, nothing more is added to it).
 */
export async function finishUpload(s: Services, uploadId: string, runId: string, error: string | null) {
  await completeRun(s, runId, { error, cursor: uploadId, holdsLease: false, closing: [uploadStatus(uploadId, runId)] });
}

/**
 * The upload's status becomes its run's, as the close left it (or as a close that won a race did),
 * `failed` should the run be gone. It reads the upload's row and the run's and writes the upload's
 * (no index covers status or updated_at): test/metered.test.ts checks this against the binding's counts.
 */
const uploadStatus = (uploadId: string, runId: string): Costed => ({
  statement: builder
    .update(uploads)
    .set({
      status: sql`COALESCE((SELECT ${ingestionRuns.status} FROM ${ingestionRuns} WHERE ${eq(ingestionRuns.runId, runId)}), 'failed')`,
      updatedAt: nowIso(),
    })
    .where(eq(uploads.uploadId, uploadId)),
  cost: { d1_rows_read: 2, d1_rows_written: 1 },
});
