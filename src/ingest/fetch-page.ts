import { runBatch, type Statement } from "../db/batch";
import type { Db } from "../db/client";
import { expireStatement, fenceStatement, type HolderRow, lostLeases, releaseStatement, sourceLeaseName } from "../db/lease";
import type { JobMessage } from "../jobs/messages";
import { now } from "../lib/clock";
import { log } from "../lib/log";
import { addUsage, currentMeter, noUsage, unmetered } from "../lib/usage";
import type { Services } from "../services";
import { httpSources } from "../sources";
import { PayloadError } from "../sources/source";
import { archiveKey, archiveRaw, isArchived } from "./archive";
import { completeRun } from "./finish";
import { fetchFxRates } from "./fx";
import { fetchUpstream, UpstreamError, upstreamPolicy } from "./http-client";
import { holderOf, leaveToHolder, type PageLease, pageLease, stepHoldersQuery, takePageStatement } from "./page-lease";
import { requestPacer } from "./request-budget";
import { isFinished, openPart } from "./runs";
import { sourceHeartbeat } from "./start-run";
import { storeNormalised } from "./store-chunk";

type FetchPage = Extract<JobMessage, { type: "fetch_page" }>;

/**
 * One upstream page: fetch (budgeted, retried) -> archive raw bytes -> parse -> normalise ->
 * unify -> upsert; then either enqueue the next page or close the run. Upstream failures close
 * the run as failed with the reason; anything else throws so the queue retries the message.
 * One delivery of the page does this at a time (the page lease): a redelivery of a message whose
 * first delivery still runs leaves the page to it.
 */
export async function fetchPage(s: Services, msg: FetchPage) {
  const step = { run_id: msg.run_id, source: msg.source, position: msg.page };
  const lease = pageLease(step);
  const { status, done, also } = await openPart(s.db, msg.run_id, `page-${msg.page}`, [
    sourceHeartbeat(msg.source, msg.run_id),
    stepHoldersQuery(msg.source),
    takePageStatement(lease, step),
  ]);
  if (!status || isFinished(status)) return;
  const holders = also[1].results as HolderRow[];
  if ((also[2].results[0] as { holder?: string } | undefined)?.holder !== lease.holder) return leaveToHolder(s, msg, step, holders);
  const before = holders.find((h) => h.name === lease.name);
  try {
    await fetchHeldPage(s, msg, lease, done, before);
  } catch (e) {
    // The queue retries the message: its retry takes the page at once instead of waiting the lease out.
    await s.db.run(expireStatement(lease.name, lease.holder)).catch(() => {});
    throw e;
  }
}

async function fetchHeldPage(s: Services, msg: FetchPage, lease: PageLease, done: { fetched: number } | null, before?: HolderRow) {
  const adapter = httpSources[msg.source];
  const part = `page-${msg.page}`;
  // Its holder stored it, then died or stalled before sending the next page: what it carried is recorded already.
  if (done) return continueOrFinish(s, msg, lease, done.fetched);
  // Taken over from a holder that died or stalled before storing the page: what it archived is nobody's.
  const prior = before && holderOf(before.holder);
  if (prior?.runId === msg.run_id && prior.position === msg.page) {
    await s.env.BUCKET.delete(archiveKey({ source: msg.source, runId: msg.run_id, part, writer: prior.writer }));
  }
  // What the previous page carried is this message's to record, with its part or its close.
  if (msg.usage) currentMeter()?.carry(msg.usage);
  // Whatever the page writes commits only while it holds the page and its run holds the source.
  const fences = [fenceStatement(lease.name, lease.holder), fenceStatement(sourceLeaseName(msg.source), msg.run_id)];

  const { url, headers } = adapter.request(s.config, msg.page);
  const pacer = requestPacer(s.db, msg.source, adapter.requestsPerMinute(s.config), msg.not_before);
  let body: Awaited<ReturnType<typeof fetchUpstream>>;
  try {
    body = await fetchUpstream(url, headers, upstreamPolicy(s.config.UPSTREAM_TIMEOUT_MS, pacer), s.fetch);
  } catch (e) {
    if (!(e instanceof UpstreamError)) throw e;
    return closeFailed(s, msg, lease, fences, `${msg.source} page ${msg.page}: ${e.message}`);
  }

  const archive = (reuse: boolean) =>
    archiveRaw(s.env.BUCKET, s.db, {
      source: msg.source,
      runId: msg.run_id,
      part,
      writer: lease.writer,
      bytes: body.bytes,
      contentType: body.contentType,
      origin: s.config.DATA_ORIGIN,
      reuse,
    });
  let raw = await archive(true);
  // The index row goes in with the page's part; a page that cannot be parsed indexes it with the close.
  if (!raw.body.ok) {
    const error = `${msg.source} page ${msg.page}: malformed JSON (${body.bytes.byteLength} bytes; ${raw.body.error}); archived as ${raw.id}`;
    return closeFailed(s, msg, lease, fences, error, raw.index);
  }
  const records = raw.body.value;
  let normalised: ReturnType<typeof adapter.normalise>;
  try {
    normalised = adapter.normalise(records, raw.fetchedAt);
  } catch (e) {
    if (!(e instanceof PayloadError)) throw e;
    return closeFailed(s, msg, lease, fences, `${msg.source} page ${msg.page}: ${e.message}; archived as ${raw.id}`, raw.index);
  }
  const fetched = Array.isArray(records) ? records.length : 0;
  const t0 = now();
  const store = () =>
    storeNormalised(s.db, s.env.KV, {
      source: msg.source,
      runId: msg.run_id,
      part,
      fetched,
      normalised,
      rawId: raw.id,
      fences,
      also: raw.inPart,
    });
  let stored: Awaited<ReturnType<typeof store>>;
  try {
    stored = await store();
  } catch (e) {
    if (!(await holdsPage(s.db, msg, lease))) {
      // Taken over while this delivery stalled: the transaction was rolled back, the taker stores the page.
      if (!raw.reused) await s.env.BUCKET.delete(raw.key);
      log("warn", "page_taken_over", { run_id: msg.run_id, source: msg.source, page: msg.page });
      return;
    }
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
  // Reference data with the first page: the source's FX rates (no message of their own); a failed fetch leaves the quotes as stored.
  if (msg.page === 1) await fetchFxRates(s, { source: msg.source, runId: msg.run_id, pacer, writer: lease.writer, fences });
  await continueOrFinish(s, msg, lease, fetched, pacer.nextAt());
}

/**
 * A full page means there may be more; the last page is short or empty (or the page limit is
 * reached). The next page's message carries what this one cost after its part was recorded
 * (its send included), so a steady run writes no usage row per page.
 */
async function continueOrFinish(s: Services, msg: FetchPage, lease: PageLease, fetched: number, notBefore?: number) {
  const perPage = httpSources[msg.source].perPage;
  if (perPage && fetched >= perPage && msg.page < s.config.SOURCE_PAGE_LIMIT) {
    const usage = addUsage(currentMeter()?.take() ?? noUsage(), { queue_messages: 1 });
    await unmetered(() =>
      s.env.JOBS.send({ type: "fetch_page", run_id: msg.run_id, source: msg.source, page: msg.page + 1, not_before: notBefore, usage }),
    );
    return;
  }
  await closeRun(s, lease, () =>
    completeRun(s, msg.run_id, { cursor: perPage ? `page ${msg.page}` : null, holdsLease: true, nextCallAt: notBefore }),
  );
}

/** The page lease goes before the close (whose usage includes it): nothing is left of a finished run. */
async function closeRun(s: Services, lease: PageLease, close: () => Promise<unknown>) {
  await s.db.run(releaseStatement(lease.name, lease.holder));
  await close();
}

/**
 * Closes the run as failed (an unusable body indexed first). A delivery that lost its page while it
 * stalled leaves the run to the one that took the page over.
 */
async function closeFailed(s: Services, msg: FetchPage, lease: PageLease, fences: Statement[], error: string, index?: Statement | null) {
  try {
    await runBatch(s.db, [...fences, ...(index ? [index] : [])]);
  } catch (e) {
    if (!(await holdsPage(s.db, msg, lease))) return;
    throw e;
  }
  await closeRun(s, lease, () => completeRun(s, msg.run_id, { error, holdsLease: true }));
}

/** Whether this delivery still holds its page and its run the source (a failed write may have been fenced). */
async function holdsPage(db: Db, msg: FetchPage, lease: PageLease) {
  const lost = await lostLeases(db, [lease, { name: sourceLeaseName(msg.source), holder: msg.run_id }]);
  return lost.length === 0;
}
