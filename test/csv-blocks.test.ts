import { describe, expect, it } from "vitest";
import { ingestUpload } from "../src/ingest/csv-upload";
import type { JobMessage } from "../src/jobs/messages";
import { rows, stageCsv, testServices } from "./helpers";

type UploadMessage = Extract<JobMessage, { type: "csv_upload" }>;

describe("CSV blocks", () => {
  it("rejects a record longer than 256 KiB with its row number and stores the rows after it", async () => {
    // Rows 1-3 fill a block of 8 KiB (their notes are ignored), so the long record starts the next
    // block; in a block of 1 MiB it comes after them in the same one.
    const good = (i: number) => `long-${i},LONG${i},Long Coin ${i},${i}.5,${"n".repeat(3000)}`;
    const long = `long-x,LONGX,Long X,1,"${"x".repeat(300 * 1024)}"`;
    const text = ["id,symbol,name,price,notes", good(1), good(2), good(3), long, good(5), good(6)].join("\n");
    for (const blockBytes of [8 * 1024, 1024 * 1024]) {
      const { s, sent } = testServices();
      const up = await stageCsv(s, sent, `long-${blockBytes}.csv`, `${text}\n`);
      await ingestUpload(s, up.message as UploadMessage, { blockBytes });
      const [upload] = await rows("SELECT status, accepted, rejected, rows_done FROM uploads WHERE upload_id = ?", up.uploadId);
      expect(upload).toEqual({ status: "partial", accepted: 5, rejected: 1, rows_done: 6 });
      const rejected = await rows<{ row: number; reason: string }>("SELECT row, reason FROM rejected_records WHERE run_id = ?", up.runId);
      expect(rejected).toEqual([{ row: 4, reason: expect.stringMatching(/longer than 256 KiB/) }]);
    }
  });
});
