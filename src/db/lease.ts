import { type SQL, sql } from "drizzle-orm";
import { now, sleep } from "../lib/clock";
import { runBatch, type Statement } from "./batch";
import type { Db } from "./client";
import { leaseFence, leases } from "./schema";

/**
 * Exclusive, expiring locks in D1 (not KV: a stale KV read would let two holders in). A holder
 * that dies simply lets its lease expire, and the next taker proceeds.
 */
export async function acquireLease(db: Db, name: string, holder: string, ttlMs: number) {
  const row = await db.get<{ holder: string }>(leaseStatement(name, holder, ttlMs));
  return row?.holder === holder;
}

/**
 * Takes or extends the lease; `when` guards even the take (e.g. only while the holder's run is open).
 * A holder's own lease is extended only once less than `renewWithinMs` of it is left, so a heartbeat
 * on every page writes a row only now and then.
 */
export function leaseStatement(name: string, holder: string, ttlMs: number, when: SQL = sql`true`, renewWithinMs = ttlMs) {
  const t = now();
  return sql`
    INSERT INTO leases (name, holder, expires_at) SELECT ${name}, ${holder}, ${t + ttlMs} WHERE ${when}
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE leases.expires_at < ${t} OR (leases.holder = excluded.holder AND leases.expires_at <= ${t + renewWithinMs})
    RETURNING holder`;
}

export const releaseStatement = (name: string, holder: string) => sql`DELETE FROM leases WHERE name = ${name} AND holder = ${holder}`;

/** Ends the lease now if `holder` still holds it (a failed holder lets the next taker in at once), keeping the row. */
export const expireStatement = (name: string, holder: string) =>
  sql`UPDATE ${leases} SET ${sql.identifier("expires_at")} = 0 WHERE ${leases.name} = ${name} AND ${leases.holder} = ${holder}`;

/** Who holds each of `names` (a row per lease that has a holder), and until when. */
export const holdersQuery = (names: string[]) =>
  sql`SELECT ${leases.name} AS name, ${leases.holder} AS holder, ${leases.expiresAt} AS expires_at FROM ${leases}
    WHERE ${leases.name} IN (SELECT value FROM json_each(${JSON.stringify(names)}))`;
export type HolderRow = { name: string; holder: string; expires_at: number };

/** True (in SQL) while `holder` holds `name`. */
export const isHeld = (name: string, holder: string) =>
  sql`EXISTS (SELECT 1 FROM ${leases} WHERE ${leases.name} = ${name} AND ${leases.holder} = ${holder})`;

/** The leases of `held` that their holders no longer hold (taken over or released). */
export async function lostLeases(db: Db, held: { name: string; holder: string }[]) {
  const lost = await db.all<{ name: string }>(
    sql`SELECT j.value ->> 0 AS name FROM json_each(${JSON.stringify(held.map((l) => [l.name, l.holder]))}) j
      WHERE NOT EXISTS (SELECT 1 FROM ${leases} WHERE ${leases.name} = j.value ->> 0 AND ${leases.holder} = j.value ->> 1)`,
  );
  return lost.map((l) => l.name);
}

export async function releaseLease(db: Db, name: string, holder: string) {
  await db.run(releaseStatement(name, holder));
}

/** A writer whose lease was taken over (it stalled past its TTL) or released: its batch was rolled back. */
export class LeaseLost extends Error {
  constructor(readonly lease: string) {
    super(`lease ${lease} was lost before this write committed (the holder stalled past its TTL); nothing was written`);
  }
}

/**
 * The fencing token check: a statement that fails, and so rolls back the whole batch it is in, unless
 * `holder` still holds `name`. A take-over changes the holder and a release deletes the row, so a
 * holder that stalled past its TTL can never commit after another writer may have. It inserts nothing
 * while the lease is held: no row is written.
 */
export const fenceStatement = (name: string, holder: string) => failUnless(isHeld(name, holder));

/**
 * A statement that fails, and so rolls back the batch it is in, unless `condition` holds when it
 * runs: an insert of NULL into the always-empty lease_fence table's NOT NULL column. It writes no
 * row when the condition holds. Lease fences use it; so does anything else a batch must not commit without.
 */
export const failUnless = (condition: SQL) => sql`INSERT INTO ${leaseFence} (${sql.identifier("held")}) SELECT NULL WHERE NOT ${condition}`;

const FENCE_FAILED = "lease_fence.held";

export type LeaseOpts = { ttlMs: number; waitMs: number };

/** A lease this isolate holds. Every batch that writes under it starts with its fence. */
export type HeldLease = { name: string; holder: string; ttlMs: number };

/**
 * Runs `statements` as one transaction that commits only while every lease in `held` is still held
 * by its holder; a lost one aborts it with LeaseLost. Each lease is also extended when less than half
 * of it is left, so long critical sections working in several batches keep it.
 */
export async function fencedBatch(db: Db, held: HeldLease[], statements: Statement[]): Promise<D1Result[]> {
  const t = now();
  const guard = held.flatMap((l) => [
    fenceStatement(l.name, l.holder),
    sql`UPDATE ${leases} SET ${sql.identifier("expires_at")} = ${t + l.ttlMs}
      WHERE ${leases.name} = ${l.name} AND ${leases.holder} = ${l.holder} AND ${leases.expiresAt} <= ${t + l.ttlMs / 2}`,
  ]);
  try {
    const out = await runBatch(db, [...guard, ...statements]);
    return out.slice(guard.length);
  } catch (e) {
    if (String((e as Error)?.message ?? e).includes(FENCE_FAILED)) {
      const lost = await lostLeases(db, held);
      throw new LeaseLost(lost.join(", ") || held.map((l) => l.name).join(", "));
    }
    throw e;
  }
}

/**
 * Takes `name`, in the same batch as `reads` (whose results count only when it was taken; otherwise
 * the batch is sent again after a backoff, for up to `waitMs`).
 */
export async function takeLease(db: Db, name: string, opts: LeaseOpts, reads: Statement[] = []) {
  const holder = crypto.randomUUID();
  const deadline = now() + opts.waitMs;
  let delay = 25;
  while (true) {
    const [lease, ...rest] = await runBatch(db, [leaseStatement(name, holder, opts.ttlMs), ...reads]);
    if ((lease.results[0] as { holder?: string } | undefined)?.holder === holder) {
      return { lease: { name, holder, ttlMs: opts.ttlMs } satisfies HeldLease, reads: rest };
    }
    if (now() > deadline) throw new Error(`timed out waiting for lease ${name}`);
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 500);
  }
}

/**
 * A critical section in two round trips: `name` is taken in the same batch as `reads`, and the
 * writes `work` returns commit fenced, in the same transaction that releases it. `work` may take
 * further leases (`also`, e.g. a source's quotes inside unification): their fences join the write
 * batch and they are released with it.
 */
export async function inLease<T>(
  db: Db,
  name: string,
  opts: LeaseOpts,
  reads: Statement[],
  work: (readResults: D1Result[], lease: HeldLease) => Promise<{ writes: Statement[]; value: T; also?: HeldLease[] }>,
): Promise<{ value: T; writeResults: D1Result[] }> {
  const { lease, reads: results } = await takeLease(db, name, opts, reads);
  let also: HeldLease[] = [];
  try {
    const done = await work(results, lease);
    also = done.also ?? [];
    const held = [lease, ...also];
    const out = await fencedBatch(db, held, [...done.writes, ...held.map((l) => releaseStatement(l.name, l.holder))]);
    return { value: done.value, writeResults: out.slice(0, done.writes.length) };
  } catch (e) {
    await Promise.all([lease, ...also].map((l) => releaseLease(db, l.name, l.holder)));
    throw e;
  }
}

/** Runs `fn` holding `name`, waiting for it up to `waitMs`; `fn` writes through fencedBatch with the lease it is given. */
export async function withLease<T>(db: Db, name: string, opts: LeaseOpts, fn: (lease: HeldLease) => Promise<T>) {
  const { lease } = await takeLease(db, name, opts);
  try {
    return await fn(lease);
  } finally {
    await releaseLease(db, name, lease.holder);
  }
}

export const sourceLeaseName = (source: string) => `source:${source}`;
/** A source run holds its lease this long without a heartbeat before another run may take over. */
export const SOURCE_LEASE_MS = 10 * 60_000;
