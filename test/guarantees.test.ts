import { env } from "cloudflare:workers";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import paprika from "../data/coinpaprika/tickers.json";
import { acquireLease } from "../src/db/lease";
import { ingestUpload } from "../src/ingest/csv-upload";
import { payloadsToReplay, startReplays } from "../src/ingest/replay";
import { startSourceRun } from "../src/ingest/start-run";
import { setClock } from "../src/lib/clock";
import { ListQuery } from "../src/routes/data/data.routes";
import { lastRecordEnd, parseHeader, parseRecords } from "../src/sources/csv";
import { apiWith, drain, json, rows, stageCsv, storedRows, stubUpstream, TOKEN, testServices } from "./helpers";

afterEach(() => setClock(() => Date.now()));

describe("guarantee: a run whose worker dies does not block its source for good", () => {
  it("the lease expires and the next run takes over", async () => {
    await env.DB.prepare("DELETE FROM leases").run();
    const { s } = testServices();
    const dead = await startSourceRun(s, "coinpaprika", "manual");
    expect(dead.started).toBe(true);
    expect((await startSourceRun(s, "coinpaprika", "manual")).started).toBe(false);
    const later = Date.now() + 11 * 60_000;
    setClock(() => later);
    const next = await startSourceRun(s, "coinpaprika", "manual");
    expect(next.started).toBe(true);
    const [abandoned] = await rows<{ status: string; error: string }>(
      "SELECT status, error FROM ingestion_runs WHERE run_id = ?",
      dead.started ? dead.run.runId : "",
    );
    expect(abandoned).toEqual({ status: "failed", error: expect.stringMatching(/lease expired/) });
    expect(await acquireLease(s.db, "source:coinpaprika", "someone-else", 1000)).toBe(false);
  });
});

describe("guarantee: a replay that takes over a dead run's expired source lease closes that run", () => {
  it("the dead run ends failed with the reason, and the replay runs", async () => {
    await env.DB.prepare("DELETE FROM leases").run();
    const up = stubUpstream((url) => (url.pathname.endsWith("/tickers") ? json(paprika) : undefined));
    const first = testServices({ fetch: up.fetch });
    await startSourceRun(first.s, "coinpaprika", "manual");
    await drain(first.s, first.sent);
    // A run whose worker dies holding the source; a replay asked for later finds the lease expired.
    const { s, sent } = testServices({ fetch: up.fetch });
    const dead = await startSourceRun(s, "coinpaprika", "manual");
    if (!dead.started) throw new Error("the run did not start");
    sent.length = 0;
    const [replayRun] = await startReplays(s, await payloadsToReplay(s, "coinpaprika"));
    const later = Date.now() + 11 * 60_000;
    setClock(() => later);
    await drain(s, sent);
    const status = async (id: string) =>
      (await rows<{ status: string; error: string | null }>("SELECT status, error FROM ingestion_runs WHERE run_id = ?", id))[0];
    expect(await status(dead.run.runId)).toEqual({ status: "failed", error: expect.stringMatching(/lease expired/) });
    expect((await status(replayRun.runId)).status).toMatch(/^(succeeded|partial)$/);
    expect(await rows("SELECT name FROM leases WHERE name = 'source:coinpaprika'")).toEqual([]);
  });
});

describe("guarantee: KV failing never fails a run that D1 recorded", () => {
  it("the run succeeds and only the KV copies are skipped", async () => {
    await env.DB.prepare("DELETE FROM leases").run();
    const up = stubUpstream((url) => (url.pathname.endsWith("/tickers") ? json(paprika) : undefined));
    const { s, sent } = testServices({ fetch: up.fetch });
    const brokenKv = { get: async () => null, put: () => Promise.reject(new Error("KV unavailable")) } as unknown as KVNamespace;
    const withBrokenKv = { ...s, env: { ...s.env, KV: brokenKv } };
    const start = await startSourceRun(withBrokenKv, "coinpaprika", "manual");
    await drain(withBrokenKv, sent);
    const [run] = await rows<{ status: string }>(
      "SELECT status FROM ingestion_runs WHERE run_id = ?",
      start.started ? start.run.runId : "",
    );
    expect(run.status).toBe("partial");
    expect(await rows("SELECT * FROM leases")).toEqual([]);
  });
});

describe("guarantee: R2 failing during an upload keeps nothing half-done", () => {
  it("answers 503 unavailable without internals and leaves no upload record", async () => {
    const before = await rows<{ n: number }>("SELECT COUNT(*) AS n FROM uploads");
    const brokenR2 = { put: () => Promise.reject(new Error("R2 internal detail 0xdead")), head: async () => null } as unknown as R2Bucket;
    const res = await apiWith({ BUCKET: brokenR2 }, "/uploads/csv/r2.csv", {
      method: "PUT",
      token: TOKEN,
      headers: { "content-type": "text/csv" },
      body: "symbol,price\nA,1\n",
    });
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(text).toContain("unavailable");
    expect(text).not.toContain("0xdead");
    expect(await rows<{ n: number }>("SELECT COUNT(*) AS n FROM uploads")).toEqual(before);
  });
});

describe("guarantee: public reads are rate limited per client", () => {
  it("answers 429 rate_limited with Retry-After once a client exceeds the limit", async () => {
    let limited: Response | null = null;
    // The limit is 300 a minute in fixed windows: 601 requests reach it even if a window ends midway.
    for (let i = 0; i < 601 && !limited; i++) {
      const res = await apiWith({ READ_RATE_LIMIT: "on" }, "/health", { headers: { "cf-connecting-ip": "203.0.113.9" } });
      if (res.status === 429) limited = res;
    }
    expect(limited).not.toBeNull();
    expect(limited!.headers.get("retry-after")).toBe("60");
    expect(await limited!.json()).toMatchObject({ error: { code: "rate_limited" } });
    const other = await apiWith({ READ_RATE_LIMIT: "on" }, "/health", { headers: { "cf-connecting-ip": "203.0.113.10" } });
    expect(other.status).toBe(200);
  });
});

describe("property: the CSV block reader", () => {
  const cell = fc.string({ maxLength: 12 }).map((s) => s.replace(/\r/g, ""));
  const row = fc.array(cell, { minLength: 3, maxLength: 3 });
  const quote = (v: string, d: string) => (/["\n]/.test(v) || v.includes(d) || v === "" ? `"${v.replaceAll('"', '""')}"` : v);

  it("splits any CSV at record boundaries only, and parses every record back (fixed seed)", () => {
    fc.assert(
      fc.property(
        fc.array(row, { minLength: 1, maxLength: 30 }),
        fc.constantFrom(",", ";", "\t"),
        fc.integer({ min: 1, max: 400 }),
        (records, d, cut) => {
          const header = parseHeader(["symbol", "name", "price"].join(d));
          const text = `${records.map((r) => r.map((v) => quote(v, d)).join(d)).join("\n")}\n`;
          const bytes = new TextEncoder().encode(text);
          // Read in two arbitrary pieces, as the stream does: the first block ends at a record boundary.
          const head = bytes.subarray(0, Math.min(cut, bytes.length));
          const end = lastRecordEnd(head);
          const parts = [bytes.subarray(0, end), bytes.subarray(end)].filter((p) => p.length);
          const parsed = parts.flatMap((p) => parseRecords(new TextDecoder().decode(p), header));
          expect(parsed).toEqual(records);
        },
      ),
      { seed: 20261124, numRuns: 3000 },
    );
  });
});

describe("property: the /data query validator", () => {
  it("accepts or rejects any query string, never throws, and never lets an invalid value through (fixed seed)", () => {
    const key = fc.constantFrom("page", "page_size", "source", "symbol", "q", "sort", "order", "other");
    fc.assert(
      fc.property(fc.dictionary(key, fc.string({ maxLength: 40 })), (query) => {
        const r = ListQuery.safeParse(query);
        if (r.success) {
          expect(r.data.page_size).toBeGreaterThanOrEqual(1);
          expect(r.data.page_size).toBeLessThanOrEqual(250);
          expect(r.data.page).toBeGreaterThanOrEqual(1);
          if (r.data.q !== undefined) expect(r.data.q).not.toMatch(/[\u0000-\u001f]/);
        }
      }),
      { seed: 20261124, numRuns: 3000 },
    );
  });

  it("answers 200 or 400, never 5xx, to hostile query strings", async () => {
    const samples = fc.sample(
      fc.dictionary(fc.constantFrom("page", "page_size", "source", "symbol", "q", "sort", "order"), fc.string({ maxLength: 30 })),
      {
        seed: 7,
        numRuns: 200,
      },
    );
    for (const q of samples) {
      const res = await apiWith({}, `/data?${new URLSearchParams(q)}`);
      expect([200, 400], JSON.stringify(q)).toContain(res.status);
    }
  });
});

describe("guarantee: hostile CSV files end in a clear rejection, never a crashed consumer or a stuck run", () => {
  const cases: [string, string | Uint8Array, string, RegExp | null][] = [
    ["one-line.csv", "x".repeat(1_000_000), "failed", /header line is longer than 64 KiB/],
    [
      "wide.csv",
      `${Array.from({ length: 10_000 }, (_, i) => `c${i}`).join(",")}\n${Array.from({ length: 10_000 }, () => "1").join(",")}\n`,
      "failed",
      /10000 columns/,
    ],
    ["nul.csv", "symbol,name,price\nBTC,Bit\u0000coin,1.5\nETH,Ether,2\n", "partial", null],
    [
      "bad-utf8.csv",
      new Uint8Array([
        ...new TextEncoder().encode("symbol,name,price\nABC,"),
        0xff,
        0xfe,
        0xc3,
        0x28,
        ...new TextEncoder().encode(",1.0\n"),
      ]),
      "partial",
      null,
    ],
    ["binary.csv", Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 256), "failed", /NUL bytes|header/],
    ["empty.csv", "", "failed", /empty/],
    ["no-price.csv", "symbol,name\nBTC,Bitcoin\n", "failed", /no price column/],
  ];
  for (const [name, body, status, error] of cases) {
    it(`${name} -> ${status}`, async () => {
      const { s, sent } = testServices();
      const up = await stageCsv(s, sent, name, body);
      await ingestUpload(s, up.message as never);
      const [u] = await rows<{ status: string }>("SELECT status FROM uploads WHERE upload_id = ?", up.uploadId);
      const [run] = await rows<{ status: string; error: string | null }>(
        "SELECT status, error FROM ingestion_runs WHERE run_id = ?",
        up.runId,
      );
      expect(u.status).toBe(status);
      expect(run.status).toBe(status);
      if (error) expect(run.error).toMatch(error);
    });
  }

  it("rejects the NUL and invalid UTF-8 rows with reasons, keeping the good ones", async () => {
    const { s, sent } = testServices();
    const up = await stageCsv(s, sent, "mixed.csv", "symbol,name,price\nNUL1,Bad\u0000Name,1\nGOOD1,Good One,2\n");
    await ingestUpload(s, up.message as never);
    expect(await rows("SELECT row, reason FROM rejected_records WHERE run_id = ?", up.runId)).toEqual([
      { row: 1, reason: "text contains NUL bytes" },
    ]);
    expect(await storedRows("SELECT symbol FROM source_quotes WHERE run_id = ?", up.runId)).toEqual([{ symbol: "GOOD1" }]);
  });
});
