import { and, eq, isNull, sql } from "drizzle-orm";
import { uploads } from "../db/schema";
import type { Services } from "../jobs/context";
import type { JobMessage } from "../jobs/messages";
import { now, nowIso } from "../lib/clock";
import { log } from "../lib/log";
import {
  CsvFormatError,
  type CsvHeader,
  isBlank,
  lastRecordEnd,
  MAX_HEADER_BYTES,
  MAX_RECORD_BYTES,
  parseHeader,
  parseRecords,
  rowToQuote,
} from "../sources/csv";
import type { Normalised } from "../sources/source-quote";
import { completeRun } from "./finish";
import { getRun, isFinished, markRunning } from "./runs";
import { CheckpointMoved, storeNormalised } from "./store-chunk";

type CsvUploadMessage = Extract<JobMessage, { type: "csv_upload" }>;
type UploadRow = typeof uploads.$inferSelect;

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
  let upload = await s.db.query.uploads.findFirst({ where: eq(uploads.uploadId, msg.upload_id) });
  if (!run || !upload || isFinished(run.status)) return;
  await markRunning(s.db, run.runId);
  await s.db.update(uploads).set({ status: "running", updatedAt: nowIso() }).where(eq(uploads.uploadId, upload.uploadId));

  const head = await s.env.BUCKET.head(upload.key);
  if (!head) return fail(s, upload, `the object ${upload.key} is no longer in R2`);
  const size = head.size;
  const fallbackTime = head.uploaded.toISOString();
  const deadline = now() + (opts.timeBudgetMs ?? TIME_BUDGET_MS);

  let header: CsvHeader | null = upload.header ? JSON.parse(upload.header) : null;
  let offset = upload.byteOffset;
  let rowsDone = upload.rowsDone;
  let carry: Uint8Array = new Uint8Array(0);
  let skippingLongRecord = false;

  // The file is read in ranges of one block: bounded memory whatever the file's size, few round trips.
  let readAt = offset;
  const key = upload.key;
  const readNext = async (): Promise<Uint8Array | null> => {
    if (readAt >= size) return null;
    const part = await s.env.BUCKET.get(key, { range: { offset: readAt, length: Math.min(blockBytes, size - readAt) } });
    if (!part) throw new Error(`the object ${key} could not be read at byte ${readAt}`);
    const bytes = new Uint8Array(await part.arrayBuffer());
    readAt += bytes.length;
    return bytes;
  };
  let eof = offset >= size;
  // Block N is written to D1 while block N+1 is read and parsed; writes stay in file order.
  let storing: Promise<void> = Promise.resolve();
  const store = async (...args: Parameters<typeof storeBlock>) => {
    await storing;
    storing = storeBlock(...args);
    storing.catch(() => {}); // awaited (and thrown) before the next block or at the end
  };

  try {
    while (true) {
      if (!eof) {
        const bytes = await readNext();
        if (bytes === null) eof = true;
        else carry = concat(carry, bytes);
      }

      if (!header) {
        const end = firstRecordEnd(carry);
        if (end === 0 && !eof && carry.length <= MAX_HEADER_BYTES) continue;
        const headerBytes = end === 0 ? carry : carry.subarray(0, end);
        if (headerBytes.length > MAX_HEADER_BYTES)
          return fail(s, upload, "the header line is longer than 64 KiB: not a CSV this service accepts");
        if (headerBytes.length === 0) return fail(s, upload, "the file is empty: a header row is required");
        try {
          header = parseHeader(new TextDecoder().decode(headerBytes));
        } catch (e) {
          if (e instanceof CsvFormatError) return fail(s, upload, e.message);
          throw e;
        }
        offset += headerBytes.length;
        carry = carry.subarray(headerBytes.length);
        // From the state this delivery read: a delivery that finds the header written lost the race.
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
        if (wrote.meta.changes === 0) return superseded(run.runId, upload.uploadId);
      }

      if (skippingLongRecord) {
        const nl = carry.indexOf(0x0a);
        if (nl < 0 && !eof) {
          offset += carry.length;
          carry = new Uint8Array(0);
          continue;
        }
        const cut = nl < 0 ? carry.length : nl + 1;
        offset += cut;
        carry = carry.subarray(cut);
        skippingLongRecord = false;
      }

      const end = eof ? carry.length : lastRecordEnd(carry);
      if (end === 0 && !eof) {
        if (carry.length > MAX_RECORD_BYTES) {
          // Reject the oversized record and resynchronise on the next newline.
          await store(
            s,
            upload,
            { quotes: [], rejected: [longRecord(rowsDone + 1)] },
            { from: offset, to: offset, rowsBefore: rowsDone, rowsAfter: rowsDone + 1 },
          );
          rowsDone += 1;
          skippingLongRecord = true;
        }
        continue;
      }
      if (end >= blockBytes || eof) {
        const block = carry.subarray(0, end);
        const { normalised, rows } = parseBlock(block, header, rowsDone, fallbackTime);
        await store(s, upload, normalised, { from: offset, to: offset + end, rowsBefore: rowsDone, rowsAfter: rowsDone + rows });
        rowsDone += rows;
        offset += end;
        carry = carry.subarray(end);
        upload = { ...upload, byteOffset: offset, rowsDone };
        if (eof && carry.length === 0) break;
        if (now() > deadline && !eof) {
          await storing;
          await s.env.JOBS.send(msg);
          log("info", "csv_continues", { run_id: run.runId, upload_id: upload.uploadId, byte_offset: offset, rows: rowsDone });
          return;
        }
      }
    }
  } catch (e) {
    // A failed read or parse must not leave the previous block's write running behind the retry.
    await storing.catch(() => {});
    if (e instanceof CheckpointMoved) return superseded(run.runId, upload.uploadId);
    throw e;
  }
  try {
    await storing;
  } catch (e) {
    if (e instanceof CheckpointMoved) return superseded(run.runId, upload.uploadId);
    throw e;
  }
  await finishUpload(s, upload.uploadId, run.runId, null);
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

/** Stores one block and moves the resume point from (from, rowsBefore) to (to, rowsAfter) in the same transaction. */
async function storeBlock(
  s: Services,
  upload: UploadRow,
  normalised: Normalised,
  b: { from: number; to: number; rowsBefore: number; rowsAfter: number },
) {
  const accepted = normalised.quotes.length;
  const rejected = normalised.rejected.length;
  const advance = sql`
    UPDATE uploads SET byte_offset = ${b.to}, rows_done = ${b.rowsAfter}, accepted = accepted + ${accepted},
      rejected = rejected + ${rejected}, updated_at = ${nowIso()}
    WHERE upload_id = ${upload.uploadId} AND byte_offset = ${b.from} AND rows_done = ${b.rowsBefore}`;
  const holds = sql`(SELECT byte_offset = ${b.to} AND rows_done = ${b.rowsAfter} FROM uploads WHERE upload_id = ${upload.uploadId})`;
  await storeNormalised(s.db, s.env.KV, {
    source: "csv",
    runId: upload.runId!,
    part: `rows-${b.rowsBefore}`,
    fetched: accepted + rejected,
    normalised,
    checkpoint: { advance, holds },
  });
}

const longRecord = (row: number) => ({
  recordKey: `row:${row}`,
  row,
  sourceId: null,
  reason: `row is longer than ${MAX_RECORD_BYTES / 1024} KiB (or has an unclosed quote); skipped`,
});

function firstRecordEnd(bytes: Uint8Array) {
  let quoted = false;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x22) quoted = !quoted;
    else if (bytes[i] === 0x0a && !quoted) return i + 1;
  }
  return 0;
}

function concat(a: Uint8Array, b: Uint8Array) {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

async function fail(s: Services, upload: UploadRow, reason: string) {
  await finishUpload(s, upload.uploadId, upload.runId!, reason);
}

export async function finishUpload(s: Services, uploadId: string, runId: string, error: string | null) {
  const run = await completeRun(s, runId, { error, cursor: uploadId, holdsLease: false });
  await s.db
    .update(uploads)
    .set({ status: run?.status ?? "failed", updatedAt: nowIso() })
    .where(eq(uploads.uploadId, uploadId));
}
