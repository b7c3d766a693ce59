import { sql } from "drizzle-orm";
import type { Services } from "../jobs/context";
import type { JobMessage } from "../jobs/messages";
import { now } from "../lib/clock";
import { log } from "../lib/log";
import { httpSources } from "../sources";
import { PayloadError } from "../sources/source";
import { archiveRaw } from "./archive";
import { completeRun } from "./finish";
import { fetchUpstream, UpstreamError } from "./http-client";
import { leaseStatement, sourceLeaseName } from "../db/lease";
import { deferRequests, reserveRequestSlot } from "./request-budget";
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
    leaseStatement(sourceLeaseName(msg.source), msg.run_id, SOURCE_LEASE_MS, open),
  ]);
  if (!status || isFinished(status)) return;
  if (done) return continueOrFinish(s, msg, done.fetched);

  const { url, headers } = adapter.request(s.config, msg.page);
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
        beforeAttempt: () => reserveRequestSlot(s.db, msg.source, adapter.requestsPerMinute(s.config)),
        onRateLimited: (until) => deferRequests(s.db, msg.source, until),
      },
      s.fetch,
    );
  } catch (e) {
    if (!(e instanceof UpstreamError)) throw e;
    await completeRun(s, msg.run_id, { error: `${msg.source} page ${msg.page}: ${e.message}`, holdsLease: true });
    return;
  }

  const raw = await archiveRaw(s.env.BUCKET, s.db, {
    source: msg.source,
    runId: msg.run_id,
    part,
    bytes: body.bytes,
    contentType: body.contentType,
    origin: s.config.DATA_ORIGIN,
  });
  if (!raw.body.ok) {
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
    await completeRun(s, msg.run_id, { error: `${msg.source} page ${msg.page}: ${e.message}; archived as ${raw.id}`, holdsLease: true });
    return;
  }
  const fetched = Array.isArray(records) ? records.length : 0;
  const t0 = now();
  const stored = await storeNormalised(s.db, s.env.KV, { source: msg.source, runId: msg.run_id, part, fetched, normalised });
  log("info", "page_stored", { run_id: msg.run_id, source: msg.source, page: msg.page, fetched, ...stored, store_ms: now() - t0 });
  await continueOrFinish(s, msg, fetched);
}

/** A full page means there may be more; the last page is short or empty (or the page limit is reached). */
async function continueOrFinish(s: Services, msg: FetchPage, fetched: number) {
  const perPage = httpSources[msg.source].perPage;
  if (perPage && fetched >= perPage && msg.page < s.config.SOURCE_PAGE_LIMIT) {
    await s.env.JOBS.send({ ...msg, page: msg.page + 1 });
    return;
  }
  await completeRun(s, msg.run_id, { cursor: perPage ? `page ${msg.page}` : null, holdsLease: true });
}
