import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { dbFor } from "../src/db/client";
import { pruneRawArchive } from "../src/ingest/retention";
import { startSourceRun } from "../src/ingest/start-run";
import type { JobMessage } from "../src/jobs/messages";
import { sha256 } from "../src/lib/digest";
import { readArchived } from "../src/lib/raw-archive";
import type { Services } from "../src/services";
import { drain, json, rows, stubUpstream, testServices } from "./helpers";
import { hookedD1 } from "./interleave";

const DAY = 86_400_000;

/** A page body, and the same body archived 31 days ago by an earlier run (an unchanged market). */
async function archivedLongAgo(tag: string) {
  const page = ["a", "b", "c"].map((x, i) => ({
    id: `${tag}-${x}`,
    symbol: `${tag}${x}`,
    name: `Pruned ${tag} ${x}`,
    current_price: i + 1,
    last_updated: "2026-11-22T12:00:00.000Z",
  }));
  const text = JSON.stringify(page);
  const bytes = new TextEncoder().encode(text);
  const old = { id: `old-${tag}`, key: `raw/coingecko/2026-01-01/old-${tag}.json` };
  await env.BUCKET.put(old.key, text);
  await env.DB.prepare(
    `INSERT INTO raw_payloads (id, source, run_id, key, fetched_at, bytes, records, content_type, digest)
     VALUES (?, 'coingecko', 'old-run', ?, ?, ?, 3, 'application/json', ?)`,
  )
    .bind(old.id, old.key, new Date(Date.now() - 31 * DAY).toISOString(), bytes.byteLength, await sha256(bytes))
    .run();
  return { text, old };
}

async function ingestPage(s: Services, sent: JobMessage[]) {
  const start = await startSourceRun(s, "coingecko", "manual");
  if (!start.started) throw new Error("the run did not start");
  await drain(s, sent);
  return start.run.runId;
}

/** Every part of the run points at an archive that is indexed and still in R2, holding the body it was read from. */
async function expectArchivesOf(runId: string, text: string) {
  const parts = await rows<{ raw_id: string }>("SELECT raw_id FROM run_parts WHERE run_id = ?", runId);
  expect(parts.length).toBe(1);
  const [indexed] = await rows<{ key: string }>("SELECT key FROM raw_payloads WHERE id = ?", parts[0].raw_id);
  expect(indexed, `the part points at ${parts[0].raw_id}, which is no longer indexed`).toBeDefined();
  const body = await readArchived(env.BUCKET, indexed.key);
  expect(body, `the archive ${indexed.key} is no longer in R2`).not.toBeNull();
  expect(await new Response(body).text()).toBe(text);
  const [run] = await rows("SELECT status, fetched, accepted, written FROM ingestion_runs WHERE run_id = ?", runId);
  expect(run).toEqual({ status: "succeeded", fetched: 3, accepted: 3, written: 3 });
}

beforeEach(async () => {
  await env.DB.prepare("DELETE FROM leases").run();
});

describe("retention against a page that reuses an old archive", () => {
  it("the prune deleting it before the page's part commits: the page archives its body again", async () => {
    const { text, old } = await archivedLongAgo("prunea");
    let pruned: unknown = null;
    // The page has found the old archive by its digest; the prune runs before the page's part reaches D1.
    const db = hookedD1(env.DB, {
      before: async ({ sql, kind }) => {
        if (pruned || kind !== "batch" || !sql.some((q) => q.includes('INSERT INTO "run_parts"'))) return;
        pruned = await pruneRawArchive(dbFor(env.DB), env.BUCKET, 30);
      },
    });
    const up = stubUpstream(() => json(text));
    const { s, sent } = testServices({ fetch: up.fetch, vars: { DB: db, COINGECKO_REQUESTS_PER_MINUTE: "60000" } });
    const runId = await ingestPage(s, sent);
    expect(pruned).toEqual({ raw_payloads_deleted: 1 });
    expect(await env.BUCKET.head(old.key)).toBeNull();
    await expectArchivesOf(runId, text);
  });

  it("the page reusing it after the prune chose it: the prune leaves it, or the page archives its body again", async () => {
    const { text, old } = await archivedLongAgo("pruneb");
    const up = stubUpstream(() => json(text));
    const { s, sent } = testServices({ fetch: up.fetch, vars: { COINGECKO_REQUESTS_PER_MINUTE: "60000" } });
    let runId = "";
    // The prune has chosen the old archive; the whole page runs before the prune deletes anything from R2.
    const bucket = new Proxy(env.BUCKET, {
      get(target, prop) {
        if (prop !== "delete") return Reflect.get(target, prop).bind(target);
        return async (keys: string | string[]) => {
          if (!runId) runId = await ingestPage(s, sent);
          return target.delete(keys);
        };
      },
    });
    await pruneRawArchive(dbFor(env.DB), bucket, 30);
    expect(runId).not.toBe("");
    await expectArchivesOf(runId, text);
    // Whichever way it went, nothing is left indexed without its object.
    const [left] = await rows<{ key: string }>("SELECT key FROM raw_payloads WHERE id = ?", old.id);
    if (left) expect(await env.BUCKET.head(left.key)).not.toBeNull();
  });
});
