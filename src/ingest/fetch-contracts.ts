import { eq, sql } from "drizzle-orm";
import type { HttpSource } from "../config";
import { runBatch, type Statement } from "../db/batch";
import { col, type Db } from "../db/client";
import {
  clearRedecisionsStatement,
  contractsDigest,
  listPlatformsStatement,
  pendingRedecisions,
  platformsAfter,
  removeUnlisted,
  replacePlatformStatements,
  type StoredPlatform,
  storedPlatforms,
} from "../db/contract-store";
import { fenceStatement, type HolderRow, sourceLeaseName } from "../db/lease";
import { rejectionStatements } from "../db/rejections";
import { contractRefreshes } from "../db/schema";
import type { JobMessage } from "../jobs/messages";
import { now, nowIso } from "../lib/clock";
import { log } from "../lib/log";
import { addUsage, currentMeter, noUsage, unmetered } from "../lib/usage";
import type { Services } from "../services";
import { httpSources } from "../sources";
import { coingeckoContracts } from "../sources/coingecko-contracts";
import { coinpaprikaContracts } from "../sources/coinpaprika-contracts";
import type { ContractSourceAdapter, ContractsNormalised, PlatformContracts } from "../sources/contracts";
import { PayloadError } from "../sources/source";
import type { Rejection } from "../sources/source-quote";
import { redecideContracts } from "../unify/resolve";
import { type ArchiveWriter, archiveRaw } from "./archive";
import { fetchUpstream, UpstreamError, upstreamPolicy } from "./http-client";
import {
  contractStepPosition,
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

type FetchContracts = Extract<JobMessage, { type: "fetch_contracts" }>;

const contractSources: Record<HttpSource, ContractSourceAdapter> = {
  coingecko: coingeckoContracts,
  coinpaprika: coinpaprikaContracts,
};

/**
 * How an archived contract payload is named: `<run>-contracts-list` (a provider's listing) and
 * `<run>-contracts-on-<platform>` (one platform's list), so replay and rebuild tell them from market pages.
 */
const LIST_PART = "contracts-list";
const platformPart = (platform: string) => `contracts-on-${platform}`;
export const isContractPayload = (rawId: string) => rawId.includes("-contracts-list") || rawId.includes("-contracts-on-");

/** A failed refresh (an upstream down, a malformed list) is tried again after this long, or IDENTITY_REFRESH_HOURS if shorter. */
const RETRY_FAILED_MS = 60 * 60_000;

/**
 * Platforms fetched per message of a per-platform provider: each is a paced upstream call and a few
 * D1 and R2 calls, so a message stays well inside an invocation's time and subrequests whatever
 * the number of platforms. Fixed, so a redelivered message covers the same platforms.
 */
export const PLATFORMS_PER_MESSAGE = 10;

/**
 * Whether a run of `source` starts with its contract lists: on its first run, then once
 * IDENTITY_REFRESH_HOURS have passed since the last refresh finished (an hour after a failed one).
 * 0 hours turns the refresh off.
 */
export async function contractsDue(db: Db, source: HttpSource, hours: number, at = now()) {
  if (hours <= 0) return false;
  const last = await db.query.contractRefreshes.findFirst({ where: eq(contractRefreshes.source, source) });
  if (!last) return true;
  const every = hours * 3_600_000;
  const age = at - Date.parse(last.finishedAt);
  return age >= every - 5_000 || (!!last.error && age >= Math.min(every, RETRY_FAILED_MS));
}

/** The first message of a run whose contract lists are due. */
export const firstContractsMessage = (runId: string, source: HttpSource): JobMessage => ({
  type: "fetch_contracts",
  run_id: runId,
  source,
  step: 0,
});

/**
 * One message of a contract refresh, holding its run's source lease and, like a market page, the
 * source's page lease at its step's place before the pages (a redelivery while the first delivery
 * still runs leaves the step to it): step 0 fetches the provider's listing (CoinGecko: every coin's
 * platforms, stored at once; CoinPaprika: its platforms), each later step fetches the next
 * PLATFORMS_PER_MESSAGE platforms' lists. Every payload is archived raw before it is parsed; each
 * platform's list is compared with what is stored (digest first, then row by row) and only the
 * difference is written, fenced by both leases. The last step records the refresh and hands the run
 * to its first market page, with the pacing and the usage so far. Upstream and payload failures are
 * recorded (rejections, the refresh's error) and never stop the quotes.
 */
export async function fetchContracts(s: Services, msg: FetchContracts) {
  const step = { run_id: msg.run_id, source: msg.source, position: contractStepPosition(msg.step) };
  const lease = pageLease(step);
  const { status, done, also } = await openPart(s.db, msg.run_id, `contracts-${msg.step}`, [
    sourceHeartbeat(msg.source, msg.run_id),
    stepHoldersQuery(msg.source),
    takePageStatement(lease, step),
  ]);
  if (!status || isFinished(status)) return;
  // Not taken: another delivery holds the step, a later step has started, or the run lost its source.
  const holders = also[1].results as HolderRow[];
  if ((also[2].results[0] as { holder?: string } | undefined)?.holder !== lease.holder) return leaveToHolder(s, msg, step, holders);
  try {
    if (!done) await deletePriorArchives(s, step, holders);
    await refreshStep(s, msg, lease, !!done);
  } catch (e) {
    await giveUpStep(s, step, lease);
    throw e;
  }
}

async function refreshStep(s: Services, msg: FetchContracts, lease: PageLease, done: boolean) {
  const adapter = contractSources[msg.source];
  if (done) {
    // Stored by an earlier delivery that stopped before sending on: the next message is derived again.
    const next = msg.step === 0 ? (adapter.platformRequest ? stepAfter(msg, undefined, 0) : null) : await nextAfterStep(s.db, msg);
    return sendNext(s, msg, next, msg.not_before);
  }
  if (msg.usage) currentMeter()?.carry(msg.usage);
  const r = new Refresh(s, msg, lease);
  if (msg.step === 0) await r.listing(adapter);
  else await r.platforms(adapter);
}

class Refresh {
  /** What every write of the step commits under: the run's source lease and the step's page lease. */
  private readonly fences: Statement[];
  private readonly pacer: ReturnType<typeof requestPacer>;
  private readonly writer: ArchiveWriter;
  private readonly at = nowIso();
  /** Statements of the message's closing transaction: rejections, the refresh's row, the part. */
  private readonly closing: Statement[] = [];
  /**
   * Index rows of the bodies archived and not yet indexed: they go in with the first write that
   * stores what they hold (or the close), so no stored contract comes from a body R2 might lose as
   * unindexed (deleteUnindexed).
   */
  private unindexed: Statement[] = [];
  private readonly rejected: Rejection[] = [];
  private failed: number;
  private stats = { platforms: 0, unchanged: 0, added: 0, changed: 0, removed: 0 };

  constructor(
    private readonly s: Services,
    private readonly msg: FetchContracts,
    lease: PageLease,
  ) {
    this.fences = [fenceStatement(sourceLeaseName(msg.source), msg.run_id), fenceStatement(lease.name, lease.holder)];
    this.writer = lease.writer;
    this.pacer = requestPacer(s.db, msg.source, httpSources[msg.source].requestsPerMinute(s.config), msg.not_before);
    this.failed = msg.failed ?? 0;
  }

  /** Step 0: the provider's listing. */
  async listing(adapter: ContractSourceAdapter) {
    const got = await this.fetchAndParse(adapter.listing(this.s.config), LIST_PART, (body) => adapter.normaliseListing(body));
    if (!got.ok) return this.finish(`${this.msg.source} contract listing: ${got.error}`);
    const stored = await storedPlatforms(this.s.db, this.msg.source);
    // A platform no longer listed takes its contracts with it (all such platforms in one transaction).
    const gone = await removeUnlisted(this.s.db, this.msg.source, stored, got.normalised.platforms, this.withIndex());
    if (gone.removed) this.unindexed = [];
    this.stats.removed += gone.removed;
    if (got.normalised.perPlatform) {
      this.closing.push(listPlatformsStatement(this.msg.source, got.normalised.platforms, this.at));
      return this.close(stepAfter(this.msg, undefined, this.failed));
    }
    for (const list of got.normalised.platforms) await this.store(list, stored.get(list.platform));
    return this.finish(null);
  }

  /** Steps 1…: the next platforms of a per-platform provider, each list fetched, archived and stored. */
  async platforms(adapter: ContractSourceAdapter) {
    const chunk = await platformsAfter(this.s.db, this.msg.source, this.msg.after, PLATFORMS_PER_MESSAGE);
    for (const { platform, chain, digest } of chunk) {
      const req = adapter.platformRequest!(this.s.config, platform);
      const got = await this.fetchAndParse(req, platformPart(platform), (body) => adapter.normalisePlatform!(platform, body));
      if (!got.ok) {
        this.failed++;
        this.rejected.push({
          recordKey: `contracts:platform:${platform}`,
          row: null,
          sourceId: null,
          reason: `${this.msg.source} contracts on ${platform}: ${got.error}; the stored list is kept`,
        });
        continue;
      }
      for (const list of got.normalised.platforms) await this.store(list, { chain, digest });
    }
    if (chunk.length < PLATFORMS_PER_MESSAGE) {
      const error = this.failed ? `${this.failed} ${this.msg.source} platform contract lists could not be fetched (kept as stored)` : null;
      return this.finish(error);
    }
    return this.close(stepAfter(this.msg, chunk.at(-1)!.platform, this.failed));
  }

  /** Fetches (paced, retried), archives before parsing, normalises. Never throws for the upstream's faults. */
  private async fetchAndParse(
    req: { url: string; headers: Record<string, string> },
    part: string,
    normalise: (body: unknown) => ContractsNormalised,
  ): Promise<{ ok: true; normalised: ContractsNormalised & { perPlatform?: boolean } } | { ok: false; error: string }> {
    let body: Awaited<ReturnType<typeof fetchUpstream>>;
    try {
      body = await fetchUpstream(req.url, req.headers, upstreamPolicy(this.s.config.UPSTREAM_TIMEOUT_MS, this.pacer), this.s.fetch);
    } catch (e) {
      if (!(e instanceof UpstreamError)) throw e;
      return { ok: false, error: e.message };
    }
    const raw = await archiveRaw(this.s.env.BUCKET, this.s.db, {
      source: this.msg.source,
      runId: this.msg.run_id,
      part,
      writer: this.writer,
      bytes: body.bytes,
      contentType: body.contentType,
      origin: this.s.config.DATA_ORIGIN,
    });
    this.unindexed.push(...raw.inPart);
    if (!raw.body.ok)
      return { ok: false, error: `malformed JSON (${body.bytes.byteLength} bytes; ${raw.body.error}); archived as ${raw.id}` };
    try {
      const normalised = normalise(raw.body.value);
      // An identical body was stored (and its rejections recorded) by the run that archived it first.
      if (!raw.reused) this.rejected.push(...normalised.rejected);
      return { ok: true, normalised };
    } catch (e) {
      if (!(e instanceof PayloadError)) throw e;
      return { ok: false, error: `${e.message}; archived as ${raw.id}` };
    }
  }

  /** The fences of a write, and the index rows of the bodies it stores from (cleared by the caller once the write ran). */
  private withIndex() {
    return [...this.fences, ...this.unindexed];
  }

  private async store(list: PlatformContracts, prev: StoredPlatform | undefined) {
    const diff = await storePlatform(this.s.db, this.msg.source, list, prev, this.at, this.withIndex());
    this.stats.platforms++;
    if (!diff) this.stats.unchanged++;
    else {
      this.unindexed = [];
      this.stats.added += diff.added;
      this.stats.changed += diff.changed;
      this.stats.removed += diff.removed;
    }
  }

  /** The last step: the refresh recorded (with what failed), then the run goes on to its market pages. */
  private async finish(error: string | null) {
    if (error) log("warn", "contracts_refresh_failed", { run_id: this.msg.run_id, source: this.msg.source, error });
    const r = contractRefreshes;
    this.closing.push(sql`
      INSERT INTO ${r} (${col(r.source)}, ${col(r.runId)}, ${col(r.finishedAt)}, ${col(r.error)})
      VALUES (${this.msg.source}, ${this.msg.run_id}, ${nowIso()}, ${error?.slice(0, 1000) ?? null})
      ON CONFLICT (${col(r.source)}) DO UPDATE SET ${col(r.runId)} = excluded.${col(r.runId)},
        ${col(r.finishedAt)} = excluded.${col(r.finishedAt)}, ${col(r.error)} = excluded.${col(r.error)}`);
    return this.close(null);
  }

  /**
   * Closes the message in one transaction (fenced): its archive index rows, rejections and part,
   * the part carrying what the message cost up to it. Only the delivery that recorded the part sends
   * the next message, carrying the rest of the cost.
   */
  private async close(next: JobMessage | null) {
    // Contracts that arrived after names decided: the mappings they concern are decided again (SPEC §5).
    const { ids, moved } = await redecidePending(this.s.db, this.msg.source, this.fences);
    if (moved) log("info", "contracts_redecided", { run_id: this.msg.run_id, source: this.msg.source, ids, moved });
    const usage = currentMeter()?.take() ?? noUsage();
    let recorded: boolean;
    try {
      const results = await runBatch(this.s.db, [
        ...this.fences,
        ...this.unindexed,
        ...this.closing,
        ...rejectionStatements(this.msg.source, this.msg.run_id, this.rejected, this.at),
        // A contract step's part: no records (reference data is not counted), what the step cost, once.
        partRowStatement({ runId: this.msg.run_id, part: `contracts-${this.msg.step}`, counts: NO_RECORDS, at: this.at, usage }),
      ]);
      recorded = results.at(-1)!.results.length > 0;
    } catch (e) {
      currentMeter()?.restore(usage);
      throw e;
    }
    log("info", "contracts_stored", {
      run_id: this.msg.run_id,
      source: this.msg.source,
      step: this.msg.step,
      ...this.stats,
      rejected: this.rejected.length,
    });
    // Another delivery recorded the part first (and sends on): what this one cost is recorded by the queue handler.
    if (!recorded) currentMeter()?.restore(usage);
    else await sendNext(this.s, this.msg, next, this.pacer.nextAt());
  }
}

/**
 * One platform's list stored: nothing when its digest is the stored one (null), else the difference
 * in one transaction with `also` (the fence of the writer's lease).
 */
async function storePlatform(
  db: Db,
  source: HttpSource,
  list: PlatformContracts,
  prev: StoredPlatform | undefined,
  at: string,
  also: Statement[],
) {
  const digest = await contractsDigest(list);
  if (prev?.digest === digest && prev.chain === list.chain) return null;
  const diff = await replacePlatformStatements(db, source, list, digest, prev, at);
  await runBatch(db, [...also, ...diff.statements]);
  return diff;
}

/**
 * Replays an archived contract payload (POST /etl/replay with its raw id): the lists it holds are
 * stored again as a refresh would store them, without calling the provider. A listing restores the
 * provider's set of platforms (CoinGecko's, their contracts too); one platform's payload that
 * platform's contracts. Reference data: no part, no records; its rejections were recorded when fetched.
 * `fence` (the replaying run's source lease) goes into every write, so a replay that lost its source
 * to another run while it stalled stores nothing.
 */
export async function replayContracts(
  s: Services,
  source: HttpSource,
  rawId: string,
  body: unknown,
  fence: Statement[] = [],
): Promise<{ ok: true } | { ok: false; error: string }> {
  const adapter = contractSources[source];
  const at = nowIso();
  const on = rawId.indexOf("-contracts-on-");
  try {
    const stored = await storedPlatforms(s.db, source);
    const store = (list: PlatformContracts, prev: StoredPlatform | undefined) => storePlatform(s.db, source, list, prev, at, fence);
    if (on >= 0) {
      if (!adapter.normalisePlatform) return { ok: false, error: `${source} lists no contracts per platform` };
      const platform = rawId.slice(on + "-contracts-on-".length);
      for (const list of adapter.normalisePlatform(platform, body).platforms) await store(list, stored.get(platform));
    } else {
      const listing = adapter.normaliseListing(body);
      await removeUnlisted(s.db, source, stored, listing.platforms, fence);
      if (listing.perPlatform) await runBatch(s.db, [...fence, listPlatformsStatement(source, listing.platforms, at)]);
      else for (const list of listing.platforms) await store(list, stored.get(list.platform));
    }
    // As after a refresh: the mappings whose contracts changed are decided again.
    await redecidePending(s.db, source, fence);
    return { ok: true };
  } catch (e) {
    if (!(e instanceof PayloadError)) throw e;
    return { ok: false, error: e.message };
  }
}

/**
 * Decides again the mappings of the ids whose contracts changed (recorded with each change, so what a
 * worker that died before deciding them left is decided here too), then clears what it decided.
 */
async function redecidePending(db: Db, source: string, fence: Statement[]) {
  const pending = await pendingRedecisions(db, source);
  if (!pending) return { ids: 0, moved: 0 };
  const moved = await redecideContracts(db, source, pending.ids, fence);
  await runBatch(db, [...fence, clearRedecisionsStatement(pending.rows)]);
  return { ids: pending.ids.length, moved };
}

/** The message after a step: the next platforms after `after`. */
const stepAfter = (msg: FetchContracts, after: string | undefined, failed: number): JobMessage => ({
  type: "fetch_contracts",
  run_id: msg.run_id,
  source: msg.source,
  step: msg.step + 1,
  ...(after === undefined ? {} : { after }),
  ...(failed ? { failed } : {}),
});

/** What followed a per-platform step that an earlier delivery stored: the same platforms are read again. */
async function nextAfterStep(db: Db, msg: FetchContracts) {
  const chunk = await platformsAfter(db, msg.source, msg.after, PLATFORMS_PER_MESSAGE);
  return chunk.length < PLATFORMS_PER_MESSAGE ? null : stepAfter(msg, chunk.at(-1)!.platform, msg.failed ?? 0);
}

/** Sends the next step, or (null) the run's first market page; the message carries what this one cost since its part. */
async function sendNext(s: Services, msg: FetchContracts, next: JobMessage | null, notBefore: number | undefined) {
  const usage = addUsage(currentMeter()?.take() ?? noUsage(), { queue_messages: 1 });
  const body: JobMessage = next
    ? { ...(next as FetchContracts), not_before: notBefore, usage }
    : { type: "fetch_page", run_id: msg.run_id, source: msg.source, page: 1, not_before: notBefore, usage };
  await unmetered(() => s.env.JOBS.send(body));
}
