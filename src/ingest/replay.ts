import { eq, inArray, sql } from "drizzle-orm";
import type { HttpSource, Source } from "../config";
import { runBatch } from "../db/batch";
import { fenceStatement, type HolderRow, holdersQuery, sourceLeaseName } from "../db/lease";
import { ingestionRuns, rawPayloads, runParts } from "../db/schema";
import type { JobMessage } from "../jobs/messages";
import { nowIso } from "../lib/clock";
import { groupBy } from "../lib/group-by";
import { log } from "../lib/log";
import { readArchived } from "../lib/raw-archive";
import { noUsage } from "../lib/usage";
import type { Services } from "../services";
import { httpSources } from "../sources";
import { PayloadError } from "../sources/source";
import { isContractPayload, replayContracts } from "./fetch-contracts";
import { completeRun } from "./finish";
import { isFxPayload, storeFx } from "./fx";
import { closeAbandoned, getPart, getRun, isFinished, markRunning, NO_RECORDS, newRunRow, partRowStatement, startingRun } from "./runs";
import { sourceHeartbeat } from "./start-run";
import { storeNormalised } from "./store-chunk";

type ReplayMessage = Extract<JobMessage, { type: "replay" }>;

/**
 * Which archived payloads a replay re-normalises: the given one, or, per source, the payload of
 * every page of that source's latest run that stored any (an unchanged body is archived once, so
 * a run's pages may point at payloads an earlier run archived).
 */
export async function payloadsToReplay(s: Services, source?: Source, rawId?: string) {
  if (rawId) {
    const row = await s.db.query.rawPayloads.findFirst({ where: eq(rawPayloads.id, rawId) });
    return row ? [row] : [];
  }
  const sources = source ? [source] : (["coingecko", "coinpaprika"] as Source[]);
  const out: (typeof rawPayloads.$inferSelect)[] = [];
  for (const src of sources) {
    const pages = s.db
      .select({ rawId: runParts.rawId })
      .from(runParts)
      .where(
        sql`${runParts.runId} = (SELECT ${ingestionRuns.runId} FROM ${ingestionRuns} WHERE ${ingestionRuns.source} = ${src}
          AND ${ingestionRuns.trigger} != 'replay' AND EXISTS (SELECT 1 FROM ${runParts} p WHERE p.run_id = ${ingestionRuns.runId} AND p.raw_id IS NOT NULL)
          ORDER BY ${ingestionRuns.createdAt} DESC LIMIT 1)`,
      );
    out.push(...(await s.db.select().from(rawPayloads).where(inArray(rawPayloads.id, pages))));
  }
  return out;
}

/** Creates one replay run per source and enqueues it; no upstream is called. */
export async function startReplays(s: Services, payloads: (typeof rawPayloads.$inferSelect)[]) {
  const runIds: string[] = [];
  for (const [source, list] of groupBy(payloads, (p) => p.source)) {
    const ids = list.map((p) => p.id);
    const row = newRunRow(source as Source, "replay", s.config.DATA_ORIGIN);
    await startingRun(s.db, row.runId, async () => {
      await s.db.insert(ingestionRuns).values(row);
      await s.env.JOBS.send({ type: "replay", run_id: row.runId, raw_ids: ids.sort() });
    });
    runIds.push(row.runId);
  }
  return runIds.length ? s.db.select().from(ingestionRuns).where(inArray(ingestionRuns.runId, runIds)) : [];
}

/**
 * A replay is a run of its source, so it holds the source's lease like any other (no two runs of one
 * source at once): it waits its turn while another run holds it, renews it payload by payload, and
 * every write it makes is fenced by it.
 */
export async function replay(s: Services, msg: ReplayMessage) {
  const run = await getRun(s.db, msg.run_id);
  if (!run || isFinished(run.status)) return;
  const source = run.source as HttpSource;
  const lease = sourceLeaseName(source);
  // The heartbeat takes the source, or renews it only once half of it is gone: who holds it is read
  // before and after, so a run whose expired lease this replay took over is closed.
  const [before, , holders] = await runBatch<HolderRow>(s.db, [
    holdersQuery([lease]),
    sourceHeartbeat(source, msg.run_id),
    holdersQuery([lease]),
  ]);
  if (holders.results[0]?.holder !== msg.run_id) return waitForSource(s, msg, holders.results[0]);
  await closeAbandoned(s.db, before.results[0]?.holder, msg.run_id);
  await markRunning(s.db, msg.run_id);
  const fence = [fenceStatement(lease, msg.run_id)];
  const errors: string[] = [];
  for (const rawId of msg.raw_ids) {
    const part = `replay-${rawId}`;
    if (await getPart(s.db, msg.run_id, part)) continue;
    await s.db.run(sourceHeartbeat(source, msg.run_id));
    const meta = await s.db.query.rawPayloads.findFirst({ where: eq(rawPayloads.id, rawId) });
    const adapter = meta ? httpSources[meta.source as keyof typeof httpSources] : undefined;
    const object = meta ? await readArchived(s.env.BUCKET, meta.key) : null;
    if (!meta || !adapter || !object) {
      errors.push(`${rawId}: archived payload not found`);
      continue;
    }
    try {
      const body = JSON.parse(await new Response(object).text());
      // Reference data counts no records; a part of zeros marks it done, so a redelivered message skips it.
      const done = partRowStatement({ runId: msg.run_id, part, counts: NO_RECORDS, rawId, at: nowIso(), usage: noUsage() });
      // An FX payload restores the rates of its fetch.
      if (isFxPayload(rawId)) {
        const fx = await storeFx(s, meta.source as HttpSource, msg.run_id, body, Date.parse(meta.fetchedAt), [...fence, done]);
        if (!fx.ok) errors.push(`${rawId}: ${fx.error}`);
        continue;
      }
      // A contract list restores the contracts it lists.
      if (isContractPayload(rawId)) {
        const contracts = await replayContracts(s, meta.source as HttpSource, rawId, body, fence);
        if (contracts.ok) await runBatch(s.db, [...fence, done]);
        else errors.push(`${rawId}: ${contracts.error}`);
        continue;
      }
      const normalised = adapter.normalise(body, meta.fetchedAt);
      await storeNormalised(s.db, s.env.KV, {
        source: meta.source,
        runId: msg.run_id,
        part,
        fetched: Array.isArray(body) ? body.length : 0,
        normalised,
        rawId,
        fences: fence,
      });
    } catch (e) {
      if (!(e instanceof SyntaxError || e instanceof PayloadError)) throw e;
      errors.push(`${rawId}: ${e.message}`);
    }
  }
  const stored = await s.db.get<{ n: number }>(sql`SELECT COUNT(*) AS n FROM run_parts WHERE run_id = ${msg.run_id}`);
  // Replaying a payload that was malformed when fetched fails again, but only the whole run fails if nothing was stored.
  const error = errors.length && !stored?.n ? errors.join("; ") : null;
  if (errors.length) log("warn", "replay_skipped", { run_id: msg.run_id, errors });
  await completeRun(s, msg.run_id, { error, holdsLease: true });
}

/** How long a replay waits before it asks for its source again: runs of a source last seconds to a few minutes. */
const SOURCE_RECHECK_S = 5;

/** Another run holds the source: the replay stays queued and asks again shortly. */
async function waitForSource(s: Services, msg: ReplayMessage, held?: HolderRow) {
  await s.env.JOBS.send(msg, { delaySeconds: SOURCE_RECHECK_S });
  log("info", "replay_waits_for_source", { run_id: msg.run_id, holder: held?.holder ?? null, retry_in_s: SOURCE_RECHECK_S });
}
