import { describe, expect, it } from "vitest";
import { ingestUpload } from "../src/ingest/csv-upload";
import { rows, stageCsv, testServices } from "./helpers";

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
    const [u] = await rows<{ status: string; accepted: number; rejected: number }>("SELECT status, accepted, rejected FROM uploads WHERE upload_id = ?", up.uploadId);
    expect(u).toEqual({ status: "partial", accepted: 3, rejected: 6 });
    const rejected = await rows<{ row: number; reason: string }>("SELECT row, reason FROM rejected_records WHERE run_id = ? ORDER BY row", up.runId);
    expect(rejected.map((r) => r.row)).toEqual([6, 7, 8, 9, 10, 11]);
    expect(rejected[0].reason).toMatch(/price/);
    expect(rejected[2].reason).toMatch(/neither a symbol nor an id/);
    const quotes = await rows<{ symbol: string; name: string; price_usd: number; market_cap_usd: number | null }>(
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
