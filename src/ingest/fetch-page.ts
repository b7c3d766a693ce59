import { sql } from "drizzle-orm";
import { runBatch, type Statement } from "../db/batch";
import type { Db } from "../db/client";
import { fenceStatement, type HolderRow, lostLeases, releaseStatement, sourceLeaseName } from "../db/lease";
import { runParts } from "../db/schema";
import type { JobMessage } from "../jobs/messages";
import { now, nowIso } from "../lib/clock";
import { log } from "../lib/log";
import { addUsage, currentMeter, noUsage, unmetered } from "../lib/usage";
import type { Services } from "../services";
import { httpSources } from "../sources";
import { PayloadError } from "../sources/source";
import type { Normalised } from "../sources/source-quote";
import { archiveRaw, isArchived } from "./archive";
import { completeRun } from "./finish";
import { fetchFxRates } from "./fx";
import { fetchUpstream, UpstreamError, upstreamPolicy } from "./http-client";
import {
  deletePriorArchives,
  giveUpStep,
  leaveToHolder,
  type PageLease,
  pageLease,
  stepHoldersQuery,
  takePageStatement,
} from "./page-lease";
import { requestPacer } from "./request-budget";
import { isFinished, NO_RECORDS, openPart, partRowStatement } from "./runs";
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
  const pages = stepPages(s, msg);
  const { status, done, also } = await openPart(s.db, msg.run_id, `page-${msg.page}`, [
    sourceHeartbeat(msg.source, msg.run_id),
    stepHoldersQuery(msg.source),
    takePageStatement(lease, step),
    storedPagesQuery(msg.run_id, pages),
  ]);
  if (!status || isFinished(status)) return;
  const holders = also[1].results as HolderRow[];
  if ((also[2].results[0] as { holder?: string } | undefined)?.holder !== lease.holder) return leaveToHolder(s, msg, step, holders);
  const stored = done && { fetched: done.fetched, pages: (also[3].results[0] as { pages: number }).pages };
  try {
    await fetchHeldPage(s, msg, lease, pages, stored, holders);
  } catch (e) {
    await giveUpStep(s, step, lease);
    throw e;
  }
}

/**
 * Upstream pages one message fetches and stores together: unifying 4,000 quotes under one lease
 * costs far less a quote than 250 (the neighbourhood reads, the lease and part statements and the
 * message are paid once; bench/ingest.mjs). Each page keeps its own archive and part row. At
 * CoinGecko's keyless 30 calls a minute a step takes about 30 s, well inside its page lease; its
 * largest JSON parameter (the mappings it creates) stays well under D1's 2 MB a value.
 */
export const PAGES_PER_STEP = 16;

/** The pages of the step that starts at `page`: up to PAGES_PER_STEP, never past the run's page limit. */
const stepPages = (s: Services, msg: FetchPage) => {
  const last = httpSources[msg.source].perPage ? Math.min(msg.page + PAGES_PER_STEP - 1, s.config.SOURCE_PAGE_LIMIT) : msg.page;
  return Array.from({ length: Math.max(1, last - msg.page + 1) }, (_, i) => msg.page + i);
};

/** The parts of a step's pages already stored: all of them commit in one transaction, so either none or the pages it stored. */
const storedPagesQuery = (runId: string, pages: number[]) =>
  sql`SELECT COUNT(*) AS pages FROM ${runParts} WHERE ${runParts.runId} = ${runId}
    AND ${runParts.part} IN (SELECT value FROM json_each(${JSON.stringify(pages.map((p) => `page-${p}`))}))`;

/** What a step stored: its records and how many pages, in order from its first. */
type Stored = { fetched: number; pages: number };

type FetchedPage = { page: number; raw: Archived; normalised: Normalised; fetched: number };
type Archived = Awaited<ReturnType<typeof archivePage>>;

async function fetchHeldPage(s: Services, msg: FetchPage, lease: PageLease, pages: number[], done: Stored | null, holders: HolderRow[]) {
  const adapter = httpSources[msg.source];
  // Its holder stored it, then died or stalled before sending the next step (or before closing the run
  // on a page that failed after the ones it stored): what it carried is recorded already.
  if (done) return continueOrFinish(s, msg, lease, done);
  await deletePriorArchives(s, { run_id: msg.run_id, source: msg.source, position: msg.page }, holders);
  // What the previous step carried is this message's to record, with its part or its close.
  if (msg.usage) currentMeter()?.carry(msg.usage);
  // Whatever the step writes commits only while it holds the page lease and its run holds the source.
  const fences = [fenceStatement(lease.name, lease.holder), fenceStatement(sourceLeaseName(msg.source), msg.run_id)];
  const pacer = requestPacer(s.db, msg.source, adapter.requestsPerMinute(s.config), msg.not_before);

  // Pages in order until a short one; the first that fails ends the run after the ones before it are stored.
  // Past half its page lease (slow or retried calls) a step takes no more: it stores what it has and the
  // run goes on from the next page, so no step outlives its lease.
  const got: FetchedPage[] = [];
  let failure: { error: string; index?: Statement | null } | undefined;
  const deadline = now() + lease.ttlMs / 2;
  for (const page of pages) {
    if (got.length && now() > deadline) break;
    const fetched = await fetchOne(s, msg, lease, pacer, page);
    if ("error" in fetched) {
      failure = fetched;
      break;
    }
    got.push(fetched);
    if (!adapter.perPage || fetched.fetched < adapter.perPage) break;
  }
  if (!got.length) return closeFailed(s, msg, lease, fences, failure!.error, failure!.index);

  const fetched = got.reduce((n, p) => n + p.fetched, 0);
  const t0 = now();
  const store = () =>
    storeNormalised(s.db, s.env.KV, {
      source: msg.source,
      runId: msg.run_id,
      part: `page-${msg.page}`,
      fetched,
      normalised: {
        quotes: got.flatMap((p) => p.normalised.quotes),
        rejected: got.flatMap((p) => p.normalised.rejected),
      },
      rawId: got[0].raw.id,
      fences,
      // Every page's archive goes in with the step: its index row (or the check that keeps a reused one),
      // and for the pages after the first a part row of its own, which keeps its archive for replay and retention.
      also: got.flatMap((p, i) => [
        ...p.raw.inPart,
        ...(i
          ? [
              partRowStatement({
                runId: msg.run_id,
                part: `page-${p.page}`,
                counts: NO_RECORDS,
                rawId: p.raw.id,
                at: nowIso(),
                usage: noUsage(),
              }),
            ]
          : []),
      ]),
    });
  let stored: Awaited<ReturnType<typeof store>>;
  try {
    stored = await store();
  } catch (e) {
    if (!(await holdsPage(s.db, msg, lease))) {
      // Taken over while this delivery stalled: the transaction was rolled back, the taker stores the step.
      await giveUpStep(s, { run_id: msg.run_id, source: msg.source, position: msg.page }, lease);
      log("warn", "page_taken_over", { run_id: msg.run_id, source: msg.source, page: msg.page });
      return;
    }
    // Retention deleted an archive a page reused before the step committed, and so nothing was:
    // those bodies are archived again and the step stored with them.
    const gone: FetchedPage[] = [];
    for (const p of got) if (p.raw.reused && !(await isArchived(s.db, p.raw.id))) gone.push(p);
    if (!gone.length) throw e;
    for (const p of gone) p.raw = await archivePage(s, msg, lease, p.page, p.raw, false);
    stored = await store();
  }
  log("info", "page_stored", {
    run_id: msg.run_id,
    source: msg.source,
    page: msg.page,
    pages: got.length,
    fetched,
    ...stored,
    store_ms: now() - t0,
    raw_reused: got.filter((p) => p.raw.reused).length,
  });
  if (failure) return closeFailed(s, msg, lease, fences, failure.error, failure.index);
  // Reference data with the first page: the source's FX rates (no message of their own); a failed fetch leaves the quotes as stored.
  if (msg.page === 1) await fetchFxRates(s, { source: msg.source, runId: msg.run_id, pacer, writer: lease.writer, fences });
  await continueOrFinish(s, msg, lease, { fetched, pages: got.length }, pacer.nextAt());
}

/** One upstream page: fetched (paced, retried), archived byte for byte, parsed and normalised; or why it cannot be stored. */
async function fetchOne(
  s: Services,
  msg: FetchPage,
  lease: PageLease,
  pacer: ReturnType<typeof requestPacer>,
  page: number,
): Promise<FetchedPage | { error: string; index?: Statement | null }> {
  const adapter = httpSources[msg.source];
  const { url, headers } = adapter.request(s.config, page);
  let body: Awaited<ReturnType<typeof fetchUpstream>>;
  try {
    body = await fetchUpstream(url, headers, upstreamPolicy(s.config.UPSTREAM_TIMEOUT_MS, pacer), s.fetch);
  } catch (e) {
    if (!(e instanceof UpstreamError)) throw e;
    return { error: `${msg.source} page ${page}: ${e.message}` };
  }
  const raw = await archivePage(s, msg, lease, page, body, true);
  // The index row goes in with the step's parts; a page that cannot be parsed indexes it with the close.
  if (!raw.body.ok) {
    return {
      error: `${msg.source} page ${page}: malformed JSON (${body.bytes.byteLength} bytes; ${raw.body.error}); archived as ${raw.id}`,
      index: raw.index,
    };
  }
  const records = raw.body.value;
  try {
    const normalised = adapter.normalise(records, raw.fetchedAt);
    return { page, raw, normalised, fetched: Array.isArray(records) ? records.length : 0 };
  } catch (e) {
    if (!(e instanceof PayloadError)) throw e;
    return { error: `${msg.source} page ${page}: ${e.message}; archived as ${raw.id}`, index: raw.index };
  }
}

/** Archives a page's body under its own part (reusing an identical archived body when `reuse`); the bytes stay at hand to archive again. */
async function archivePage(
  s: Services,
  msg: FetchPage,
  lease: PageLease,
  page: number,
  body: { bytes: Uint8Array; contentType: string },
  reuse: boolean,
) {
  const raw = await archiveRaw(s.env.BUCKET, s.db, {
    source: msg.source,
    runId: msg.run_id,
    part: `page-${page}`,
    writer: lease.writer,
    bytes: body.bytes,
    contentType: body.contentType,
    origin: s.config.DATA_ORIGIN,
    reuse,
  });
  return { ...raw, bytes: body.bytes, contentType: body.contentType };
}

/**
 * Pages stored all full means there may be more, from the page after them: the next step's, or, when
 * a step stored pages and then met a page that failed (its close lost to a crash), that page again. The
 * last page is short or empty (or the page limit is reached). The next step's message carries what
 * this one cost after its part was recorded (its send included), so a steady run writes no usage row per step.
 */
async function continueOrFinish(s: Services, msg: FetchPage, lease: PageLease, stored: Stored, notBefore?: number) {
  const perPage = httpSources[msg.source].perPage;
  const next = msg.page + stored.pages;
  if (perPage && stored.fetched >= perPage * stored.pages && next <= s.config.SOURCE_PAGE_LIMIT) {
    const usage = addUsage(currentMeter()?.take() ?? noUsage(), { queue_messages: 1 });
    await unmetered(() =>
      s.env.JOBS.send({ type: "fetch_page", run_id: msg.run_id, source: msg.source, page: next, not_before: notBefore, usage }),
    );
    return;
  }
  await closeRun(s, lease, () =>
    completeRun(s, msg.run_id, { cursor: perPage ? `page ${next - 1}` : null, holdsLease: true, nextCallAt: notBefore }),
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
