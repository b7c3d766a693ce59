import { sql } from "drizzle-orm";
import type { HttpSource } from "../config";
import { expireStatement, type HeldLease, type HolderRow, holdersQuery, isHeld, SOURCE_LEASE_MS, sourceLeaseName } from "../db/lease";
import type { JobMessage } from "../jobs/messages";
import { now } from "../lib/clock";
import { log } from "../lib/log";
import type { Services } from "../services";
import { type ArchiveWriter, deleteUnindexed, newArchiveWriter } from "./archive";

/**
 * The page lease: which delivery does its run's current step (a market page, a contract step) at a
 * source, and the fence of what it writes. One row per source (a source runs one run at a time),
 * held by `<run> <position> <day> <id>`: the run's next step, or the next run, takes it on; a
 * redelivery of the step takes it over only once its holder's time is up (that one died or stalled,
 * and its writes then fail the fence). The day and id name the objects the holder archives in.
 */
export type PageLease = HeldLease & { writer: ArchiveWriter };
/** A step of a run, by its position in the run: pages are numbered from 1, contract steps before them. */
export type RunStep = { run_id: string; source: HttpSource; position: number };

/** Contract step k runs before the first page: its position is k − CONTRACT_STEPS (a refresh has far fewer steps). */
const CONTRACT_STEPS = 1_000_000;
export const contractStepPosition = (step: number) => step - CONTRACT_STEPS;

/**
 * How long a delivery holds its step before a redelivery may take it over: well inside the source
 * lease, so that a dead holder's step is taken over while its run still holds the source.
 */
const PAGE_LEASE_MS = SOURCE_LEASE_MS / 2;

const pageLeaseName = (source: HttpSource) => `pages:${source}`;

/** What a step's opening batch reads to know whether it may go on: who holds its run's source and the page lease. */
export const stepHoldersQuery = (source: HttpSource) => holdersQuery([sourceLeaseName(source), pageLeaseName(source)]);

export function pageLease(step: RunStep): PageLease {
  const writer = newArchiveWriter();
  return {
    name: pageLeaseName(step.source),
    holder: `${step.run_id} ${step.position} ${writer.day} ${writer.id}`,
    ttlMs: PAGE_LEASE_MS,
    writer,
  };
}

export function holderOf(holder: string) {
  const [runId, position, day, id] = holder.split(" ");
  return { runId, position: Number(position), writer: { day, id } };
}

/**
 * Takes the page lease, only while the run holds its source: from another run (over: the source is
 * this run's now), from an earlier step of this run (it sent this one), or from this step's holder
 * once its time is up.
 */
export function takePageStatement(lease: PageLease, step: RunStep) {
  const t = now();
  const run = `${step.run_id} `;
  const heldAt = sql`CAST(substr(leases.holder, ${run.length + 1}) AS INTEGER)`;
  return sql`
    INSERT INTO leases (name, holder, expires_at) SELECT ${lease.name}, ${lease.holder}, ${t + lease.ttlMs}
    WHERE ${isHeld(sourceLeaseName(step.source), step.run_id)}
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE substr(leases.holder, 1, ${run.length}) != ${run} OR ${heldAt} < ${step.position}
      OR (${heldAt} = ${step.position} AND leases.expires_at < ${t})
    RETURNING holder`;
}

/**
 * Taken over from a delivery of this step that died or stalled before storing it: what that one
 * archived is nobody's, and is deleted. `holders` are what stepHoldersQuery read before the take.
 */
export async function deletePriorArchives(s: Services, step: RunStep, holders: HolderRow[]) {
  const held = holders.find((r) => r.name === pageLeaseName(step.source));
  const prior = held && holderOf(held.holder);
  if (prior?.runId !== step.run_id || prior.position !== step.position) return;
  await deleteUnindexed(s.env.BUCKET, s.db, { source: step.source, runId: step.run_id, writer: prior.writer });
}

/**
 * This delivery gives its step up (it failed, or a taker fenced its writes out): its lease expires,
 * so the queue's retry takes the step at once, and what it archived and nobody indexed is deleted
 * (the retry, or the taker, fetches the step again).
 */
export async function giveUpStep(s: Services, step: RunStep, lease: PageLease) {
  await s.db.run(expireStatement(lease.name, lease.holder)).catch(() => {});
  await deleteUnindexed(s.env.BUCKET, s.db, { source: step.source, runId: step.run_id, writer: lease.writer }).catch(() => {});
}

/**
 * This delivery did not get its step. While another delivery of the step holds it, this one comes
 * back when that one's time is up, to take the step over should it have died; once a later step has
 * started (this is a stale copy), or the run lost its source, there is nothing left to do.
 * `holders` are what stepHoldersQuery read.
 */
export async function leaveToHolder(s: Services, msg: JobMessage, step: RunStep, holders: HolderRow[]) {
  if (holders.find((r) => r.name === sourceLeaseName(step.source))?.holder !== step.run_id) return;
  const held = holders.find((r) => r.name === pageLeaseName(step.source));
  const h = held && holderOf(held.holder);
  if (!held || h?.runId !== step.run_id || h.position !== step.position) return;
  const delaySeconds = Math.max(1, Math.ceil((held.expires_at - now()) / 1000) + 1);
  await s.env.JOBS.send(msg, { delaySeconds });
  log("info", "step_held", { run_id: step.run_id, source: step.source, type: msg.type, position: step.position, retry_in_s: delaySeconds });
}
