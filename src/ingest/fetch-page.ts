import { sql } from "drizzle-orm";
import { runBatch, type Statement } from "../db/batch";
import type { Db } from "../db/client";
import {
  expireStatement,
  fenceStatement,
  type HeldLease,
  type HolderRow,
  holdersQuery,
  isHeld,
  lostLeases,
  releaseStatement,
  sourceLeaseName,
} from "../db/lease";
import type { JobMessage } from "../jobs/messages";
import { now } from "../lib/clock";
import { log } from "../lib/log";
import { addUsage, currentMeter, noUsage, unmetered } from "../lib/usage";
import type { Services } from "../services";
import { httpSources } from "../sources";
import { PayloadError } from "../sources/source";
import { type ArchiveWriter, archiveKey, archiveRaw, isArchived, newArchiveWriter } from "./archive";
import { completeRun } from "./finish";
import { fetchFxRates } from "./fx";
import { fetchUpstream, UpstreamError, upstreamPolicy } from "./http-client";
import { requestPacer } from "./request-budget";
import { isFinished, openPart } from "./runs";
import { SOURCE_LEASE_MS, sourceHeartbeat } from "./start-run";
import { storeNormalised } from "./store-chunk";

type FetchPage = Extract<JobMessage, { type: "fetch_page" }>;

/**
 * How long a delivery holds its page before a redelivery may take the page over: well inside the
 * source lease, so that a dead holder's page is taken over while its run still holds the source.
 */
const PAGE_LEASE_MS = SOURCE_LEASE_MS / 2;

/**
 * One upstream page: fetch (budgeted, retried) -> archive raw bytes -> parse -> normalise ->
 * unify -> upsert; then either enqueue the next page or close the run. Upstream failures close
 * the run as failed with the reason; anything else throws so the queue retries the message.
 * One delivery of the page does this at a time (the page lease): a redelivery of a message whose
 * first delivery still runs leaves the page to it.
 */
export async function fetchPage(s: Services, msg: FetchPage) {
  const lease = pageLease(msg);
  const { status, done, also } = await openPart(s.db, msg.run_id, `page-${msg.page}`, [
    sourceHeartbeat(msg.source, msg.run_id),
    holdersQuery([lease.name]),
    takePageStatement(lease, msg),
  ]);
  if (!status || isFinished(status)) return;
  const before = also[1].results[0] as HolderRow | undefined;
  if ((also[2].results[0] as { holder?: string } | undefined)?.holder !== lease.holder) return leaveToHolder(s, msg, before);
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
  if (prior?.runId === msg.run_id && prior.page === msg.page) {
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
      also: [...fences, ...raw.inPart],
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

/**
 * The page lease: which delivery fetches its source's current page, and the fence of what it writes.
 * One row per source (a source runs one run at a time), held by `<run> <page> <day> <id>`: the next
 * page of the run, or the next run, takes it on; a redelivery of the page takes it over only once
 * its holder's time is up (that one died or stalled, and its writes then fail the fence). The day and
 * id name the object the holder archives its body in.
 */
type PageLease = HeldLease & { writer: ArchiveWriter };

function pageLease(msg: FetchPage): PageLease {
  const writer = newArchiveWriter();
  return { name: `pages:${msg.source}`, holder: `${msg.run_id} ${msg.page} ${writer.day} ${writer.id}`, ttlMs: PAGE_LEASE_MS, writer };
}

function holderOf(holder: string) {
  const [runId, page, day, id] = holder.split(" ");
  return { runId, page: Number(page), writer: { day, id } };
}

/**
 * Takes the page lease, only while the run holds its source: from another run (over: the source is
 * this run's now), from an earlier page of this run (it sent this one), or from this page's holder
 * once its time is up.
 */
function takePageStatement(lease: PageLease, msg: FetchPage) {
  const t = now();
  const run = `${msg.run_id} `;
  const heldPage = sql`CAST(substr(leases.holder, ${run.length + 1}) AS INTEGER)`;
  return sql`
    INSERT INTO leases (name, holder, expires_at) SELECT ${lease.name}, ${lease.holder}, ${t + lease.ttlMs}
    WHERE ${isHeld(sourceLeaseName(msg.source), msg.run_id)}
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE substr(leases.holder, 1, ${run.length}) != ${run} OR ${heldPage} < ${msg.page}
      OR (${heldPage} = ${msg.page} AND leases.expires_at < ${t})
    RETURNING holder`;
}

/**
 * This delivery did not get its page. While another delivery of the page holds it, this one comes
 * back when that one's time is up, to take the page over should it have died; once a later page has
 * started (this is a stale copy), or the run lost its source, there is nothing left to do.
 */
async function leaveToHolder(s: Services, msg: FetchPage, held?: HolderRow) {
  const h = held && holderOf(held.holder);
  if (!held || h?.runId !== msg.run_id || h.page !== msg.page) return;
  const delaySeconds = Math.max(1, Math.ceil((held.expires_at - now()) / 1000) + 1);
  await s.env.JOBS.send(msg, { delaySeconds });
  log("info", "page_held", { run_id: msg.run_id, source: msg.source, page: msg.page, retry_in_s: delaySeconds });
}

/** Whether this delivery still holds its page and its run the source (a failed write may have been fenced). */
async function holdsPage(db: Db, msg: FetchPage, lease: PageLease) {
  const lost = await lostLeases(db, [lease, { name: sourceLeaseName(msg.source), holder: msg.run_id }]);
  return lost.length === 0;
}
