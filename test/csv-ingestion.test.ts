import { describe, expect, it } from "vitest";
import { ingestUpload } from "../src/ingest/csv-upload";
import { rows, stageCsv, storedRows, testServices } from "./helpers";

const MESSY = [
  "\uFEFFSymbol;Name;Price USD;Market Cap;Volume 24h;Last Updated;Notes",
  'QA1;Quirk One;1.50000000;N/A;;2026-11-22T12:01:00Z;"ok; really"',
  'QA2;"Quirk ""Two""";2.5;null;1000;2026-11-22T12:01:00Z;plain',
  "QA3;Quirk Three;0.25;123456;n/a;;",
  ";;;;;;",
  "",
  "BADP;Bad Price;abc;;;;",
  "BADN;Negative;-5;;;;",
  ";No Identity;1.5;;;;",
  "BADE;Missing Price;;;;;",
  "BADI;Infinite;Infinity;;;;",
  "BADM;Bad Cap;3;-10;;;",
].join("\r\n");

describe("CSV ingestion", () => {
  it("ingests every SPEC dialect quirk with exact accepted and rejected counts", async () => {
    const { s, sent } = testServices();
    const up = await stageCsv(s, sent, "messy.csv", `${MESSY}\r\n\r\n`);
    await ingestUpload(s, up.message as never);
    const [u] = await rows<{ status: string; accepted: number; rejected: number }>(
      "SELECT status, accepted, rejected FROM uploads WHERE upload_id = ?",
      up.uploadId,
    );
    expect(u).toEqual({ status: "partial", accepted: 3, rejected: 6 });
    const rejected = await rows<{ row: number; reason: string }>(
      "SELECT row, reason FROM rejected_records WHERE run_id = ? ORDER BY row",
      up.runId,
    );
    expect(rejected.map((r) => r.row)).toEqual([6, 7, 8, 9, 10, 11]);
    expect(rejected[0].reason).toMatch(/price/);
    expect(rejected[2].reason).toMatch(/neither a symbol nor an id/);
    const quotes = await storedRows<{ symbol: string; name: string; price_usd: number; market_cap_usd: number | null }>(
      "SELECT symbol, name, price_usd, market_cap_usd FROM source_quotes WHERE run_id = ? ORDER BY symbol",
      up.runId,
    );
    expect(quotes).toEqual([
      { symbol: "QA1", name: "Quirk One", price_usd: 1.5, market_cap_usd: null },
      { symbol: "QA2", name: 'Quirk "Two"', price_usd: 2.5, market_cap_usd: null },
      { symbol: "QA3", name: "Quirk Three", price_usd: 0.25, market_cap_usd: 123456 },
    ]);
  });
});

function bigCsv(rows: number, seed = 1) {
  const lines = ["id,rank,symbol,name,priceUsd,marketCapUsd,volumeUsd24Hr,timestamp"];
  for (let i = 1; i <= rows; i++) {
    const bad = i % 97 === 0;
    lines.push(
      `resume-coin-${seed}-${i},${i},RC${seed}X${i},Resume Coin ${seed} ${i},${bad ? "oops" : (i / 10).toFixed(4)},${i * 1000},${i * 10},2026-11-22T12:00:00Z`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** An R2 bucket whose reads fail past byte `failAfter`: the consumer dies mid-file. */
function flakyBucket(bucket: R2Bucket, failAfter: number): R2Bucket {
  return new Proxy(bucket, {
    get(target, prop) {
      if (prop !== "get") return Reflect.get(target, prop).bind(target);
      return async (key: string, options?: R2GetOptions) => {
        const range = options?.range as { offset?: number } | undefined;
        if ((range?.offset ?? 0) > failAfter) throw new Error("R2 stream reset");
        return target.get(key, options);
      };
    },
  });
}

async function finalState(runId: string, uploadId: string) {
  const quotes = await storedRows(
    "SELECT source_id, price_usd, market_cap_usd, source_updated_at FROM source_quotes WHERE run_id = ? ORDER BY source_id",
    runId,
  );
  const history = await storedRows<{ n: number }>(
    "SELECT COUNT(*) AS n FROM quote_history h JOIN source_quotes q USING (source, source_id) WHERE q.run_id = ?",
    runId,
  );
  const rejected = await rows("SELECT row, reason FROM rejected_records WHERE run_id = ? ORDER BY row", runId);
  const [upload] = await rows("SELECT status, accepted, rejected, rows_done FROM uploads WHERE upload_id = ?", uploadId);
  return { quotes, history: history[0].n, rejected, upload };
}

describe("CSV resume", () => {
  it("a consumer killed mid-file resumes to the same final state as an uninterrupted one", async () => {
    const text = bigCsv(1500, 2);
    const clean = testServices();
    const a = await stageCsv(clean.s, clean.sent, "clean.csv", text);
    await ingestUpload(clean.s, a.message as never, { blockBytes: 8 * 1024 });
    const expected = await finalState(a.runId, a.uploadId);
    expect(expected.upload).toMatchObject({ status: "partial", accepted: 1485, rejected: 15, rows_done: 1500 });

    // Same rows under other ids, so both uploads live side by side.
    const crashy = testServices();
    const b = await stageCsv(
      crashy.s,
      crashy.sent,
      "crashy.csv",
      text.replaceAll("resume-coin-2-", "resume-coin-3-").replaceAll("RC2X", "RC3X").replaceAll("Coin 2 ", "Coin 3 "),
    );
    const dying = { ...crashy.s, env: { ...crashy.s.env, BUCKET: flakyBucket(crashy.s.env.BUCKET, 40_000) } };
    await expect(ingestUpload(dying, b.message as never, { blockBytes: 8 * 1024 })).rejects.toThrow("R2 stream reset");
    const [mid] = await rows<{ byte_offset: number; rows_done: number }>(
      "SELECT byte_offset, rows_done FROM uploads WHERE upload_id = ?",
      b.uploadId,
    );
    expect(mid.byte_offset).toBeGreaterThan(0);
    expect(mid.rows_done).toBeGreaterThan(0);
    expect(mid.rows_done).toBeLessThan(1500);

    await ingestUpload(crashy.s, b.message as never, { blockBytes: 8 * 1024 });
    const got = await finalState(b.runId, b.uploadId);
    const rename = (x: unknown) => JSON.parse(JSON.stringify(x).replaceAll("resume-coin-3-", "resume-coin-2-"));
    expect(rename(got.quotes)).toEqual(expected.quotes);
    expect(got.history).toBe(expected.history);
    expect(got.rejected).toEqual(expected.rejected);
    expect(got.upload).toEqual(expected.upload);
  });

  it("the same message delivered twice leaves D1 exactly as one delivery", async () => {
    const { s, sent } = testServices();
    const up = await stageCsv(s, sent, "twice.csv", bigCsv(300, 4));
    await ingestUpload(s, up.message as never, { blockBytes: 4 * 1024 });
    const once = await finalState(up.runId, up.uploadId);
    const counts = await storedRows(
      "SELECT (SELECT COUNT(*) FROM source_quotes) q, (SELECT COUNT(*) FROM quote_history) h, (SELECT COUNT(*) FROM assets) a, (SELECT COUNT(*) FROM rejected_records) r",
    );
    await ingestUpload(s, up.message as never, { blockBytes: 4 * 1024 });
    expect(await finalState(up.runId, up.uploadId)).toEqual(once);
    expect(
      await storedRows(
        "SELECT (SELECT COUNT(*) FROM source_quotes) q, (SELECT COUNT(*) FROM quote_history) h, (SELECT COUNT(*) FROM assets) a, (SELECT COUNT(*) FROM rejected_records) r",
      ),
    ).toEqual(counts);
  });

  it("hands the rest of a long file to a new message when its time budget runs out", async () => {
    const { s, sent } = testServices();
    const up = await stageCsv(s, sent, "long.csv", bigCsv(400, 5));
    await ingestUpload(s, up.message as never, { blockBytes: 2 * 1024, timeBudgetMs: 0 });
    expect(sent.at(-1)).toEqual(up.message);
    const [mid] = await rows<{ status: string; rows_done: number }>(
      "SELECT status, rows_done FROM uploads WHERE upload_id = ?",
      up.uploadId,
    );
    expect(mid.status).toBe("running");
    expect(mid.rows_done).toBeLessThan(400);
    await ingestUpload(s, up.message as never);
    const [done] = await rows("SELECT status, accepted, rejected, rows_done FROM uploads WHERE upload_id = ?", up.uploadId);
    expect(done).toEqual({ status: "partial", accepted: 396, rejected: 4, rows_done: 400 });
  });
});
