import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { startSourceRun } from "../src/ingest/start-run";
import { drain, rows, testServices } from "./helpers";

describe("the CSV sweep", () => {
  it("registers every CSV object that reached R2 by other means, more than D1 binds in one statement", async () => {
    const { s, sent } = testServices();
    const keys = Array.from({ length: 150 }, (_, i) => `uploads/by-hand/sweep-${String(i).padStart(3, "0")}.csv`);
    await Promise.all(keys.map((k, i) => env.BUCKET.put(k, `symbol,name,price\nSW${i},Sweep Coin ${i},${i + 1}\n`)));
    const start = await startSourceRun(s, "csv", "manual");
    if (!start.started) throw new Error("the sweep did not start");
    await drain(s, sent, 400);
    const [run] = await rows<{ status: string; error: string | null }>(
      "SELECT status, error FROM ingestion_runs WHERE run_id = ?",
      start.run.runId,
    );
    expect(run).toEqual({ status: "succeeded", error: null });
    const registered = await rows<{ n: number }>(
      "SELECT COUNT(*) AS n FROM uploads WHERE key LIKE 'uploads/by-hand/sweep-%' AND status = 'succeeded'",
    );
    expect(registered).toEqual([{ n: 150 }]);
  });
});
