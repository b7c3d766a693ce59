import { sql } from "drizzle-orm";
import { runBatch } from "../db/batch";
import { leaseStatement, sourceLeaseName } from "../db/lease";
import type { Services } from "../jobs/context";
import type { JobMessage } from "../jobs/messages";
import { now } from "../lib/clock";
import { log } from "../lib/log";
import { addUsage, currentMeter, noUsage, unmetered } from "../lib/usage";
import { httpSources } from "../sources";
import { PayloadError } from "../sources/source";
import { archiveRaw, isArchived } from "./archive";
import { completeRun } from "./finish";
import { fetchUpstream, UpstreamError } from "./http-client";
import { requestPacer } from "./request-budget";
import { isFinished, openPart } from "./runs";
import { SOURCE_LEASE_MS } from "./start-run";
import { storeNormalised } from "./store-chunk";

type FetchPage = Extract<JobMessage, { type: "fetch_page" }>;

/**
 * One upstream page: fetch (budgeted, retried) -> archive raw bytes -> parse -> normalise ->
 * unify -> upsert; then either enqueue the next page or close the run. Upstream failures close
 * the run as failed with the reason; anything else throws so the queue retries the message.
 */
export async function fetchPage(s: Services, msg: FetchPage) {
  const adapter = httpSources[msg.source];
  const part = `page-${msg.page}`;
  // The source lease is extended as a heartbeat, but never taken back by a run that is over.
  const open = sql`EXISTS (SELECT 1 FROM ingestion_runs WHERE run_id = ${msg.run_id} AND status IN ('queued', 'running'))`;
  const { status, done } = await openPart(s.db, msg.run_id, part, [
    leaseStatement(sourceLeaseName(msg.source), msg.run_id, SOURCE_LEASE_MS, open, SOURCE_LEASE_MS / 2),
  ]);
  if (!status || isFinished(status)) return;
  // Delivered again after its part was stored: what it carried is recorded already.
  if (done) return continueOrFinish(s, msg, done.fetched);
  // What the previous page carried is this message's to record, with its part or its close.
  if (msg.usage) currentMeter()?.carry(msg.usage);

  const { url, headers } = adapter.request(s.config, msg.page);
  const pacer = requestPacer(s.db, msg.source, adapter.requestsPerMinute(s.config), msg.not_before);
  let body: Awaited<ReturnType<typeof fetchUpstream>>;
  try {
    body = await fetchUpstream(
      url,
      headers,
      {
        timeoutMs: s.config.UPSTREAM_TIMEOUT_MS,
        maxAttempts: 4,
        baseDelayMs: 500,
        maxDelayMs: 8_000,
        beforeAttempt: pacer.beforeAttempt,
        onRateLimited: pacer.onRateLimited,
      },
      s.fetch,
    );
  } catch (e) {
    if (!(e instanceof UpstreamError)) throw e;
    await completeRun(s, msg.run_id, { error: `${msg.source} page ${msg.page}: ${e.message}`, holdsLease: true });
    return;
  }

  const archive = (reuse: boolean) =>
    archiveRaw(s.env.BUCKET, s.db, {
      source: msg.source,
      runId: msg.run_id,
      part,
      bytes: body.bytes,
      contentType: body.contentType,
      origin: s.config.DATA_ORIGIN,
      reuse,
    });
  let raw = await archive(true);
  // The index row goes in with the page's part; a page that cannot be parsed indexes it on its own.
  const indexAlone = async () => {
    if (raw.index) await runBatch(s.db, [raw.index]);
  };
  if (!raw.body.ok) {
    await indexAlone();
    const error = `${msg.source} page ${msg.page}: malformed JSON (${body.bytes.byteLength} bytes; ${raw.body.error}); archived as ${raw.id}`;
    await completeRun(s, msg.run_id, { error, holdsLease: true });
    return;
  }
  const records = raw.body.value;
  let normalised: ReturnType<typeof adapter.normalise>;
  try {
    normalised = adapter.normalise(records, raw.fetchedAt);
  } catch (e) {
    if (!(e instanceof PayloadError)) throw e;
    await indexAlone();
    await completeRun(s, msg.run_id, { error: `${msg.source} page ${msg.page}: ${e.message}; archived as ${raw.id}`, holdsLease: true });
    return;
  }
  const fetched = Array.isArray(records) ? records.length : 0;
  const t0 = now();
  const store = () =>
    storeNormalised(s.db, s.env.KV, { source: msg.source, runId: msg.run_id, part, fetched, normalised, rawId: raw.id, also: raw.inPart });
  let stored: Awaited<ReturnType<typeof store>>;
  try {
    stored = await store();
  } catch (e) {
    if (!raw.reused || (await isArchived(s.db, raw.id))) throw e;
    // Retention deleted the archive this page reused before its part committed, and so nothing
    // was: the body is archived again and the part stored with it.
    raw = await archive(false);
    stored = await store();
  }
  log("info", "page_stored", {
    run_id: msg.run_id,
    source: msg.source,
    page: msg.page,
    fetched,
    ...stored,
    store_ms: now() - t0,
    raw_reused: raw.reused,
  });
  await continueOrFinish(s, msg, fetched, pacer.nextAt());
}

/**
 * A full page means there may be more; the last page is short or empty (or the page limit is
 * reached). The next page's message carries what this one cost after its part was recorded
 * (its send included), so a steady run writes no usage row per page.
 */
async function continueOrFinish(s: Services, msg: FetchPage, fetched: number, notBefore?: number) {
  const perPage = httpSources[msg.source].perPage;
  if (perPage && fetched >= perPage && msg.page < s.config.SOURCE_PAGE_LIMIT) {
    const usage = addUsage(currentMeter()?.take() ?? noUsage(), { queue_messages: 1 });
    await unmetered(() =>
      s.env.JOBS.send({ type: "fetch_page", run_id: msg.run_id, source: msg.source, page: msg.page + 1, not_before: notBefore, usage }),
    );
    return;
  }
  await completeRun(s, msg.run_id, { cursor: perPage ? `page ${msg.page}` : null, holdsLease: true, nextCallAt: notBefore });
}
