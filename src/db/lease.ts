import { type SQL, sql } from "drizzle-orm";
import { now, sleep } from "../lib/clock";
import { runBatch, type Statement } from "./batch";
import type { Db } from "./client";

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

export async function releaseLease(db: Db, name: string, holder: string) {
  await db.run(releaseStatement(name, holder));
}

/**
 * A critical section in two round trips: `name` is taken in the same batch as `reads` (whose
 * results count only when it was taken; otherwise the batch is sent again after a backoff, for up
 * to `waitMs`), and released in the same transaction as the writes `work` returns.
 */
export async function inLease<T>(
  db: Db,
  name: string,
  opts: { ttlMs: number; waitMs: number },
  reads: Statement[],
  work: (readResults: D1Result[]) => Promise<{ writes: Statement[]; value: T }>,
): Promise<{ value: T; writeResults: D1Result[] }> {
  const holder = crypto.randomUUID();
  const deadline = now() + opts.waitMs;
  let delay = 25;
  let results: D1Result[];
  while (true) {
    const [lease, ...rest] = await runBatch(db, [leaseStatement(name, holder, opts.ttlMs), ...reads]);
    if ((lease.results[0] as { holder?: string } | undefined)?.holder === holder) {
      results = rest;
      break;
    }
    if (now() > deadline) throw new Error(`timed out waiting for lease ${name}`);
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 500);
  }
  try {
    const { writes, value } = await work(results);
    const out = await runBatch(db, [...writes, releaseStatement(name, holder)]);
    return { value, writeResults: out.slice(0, writes.length) };
  } catch (e) {
    await releaseLease(db, name, holder);
    throw e;
  }
}

/** Runs `fn` holding `name`, waiting for it up to `waitMs`. */
export async function withLease<T>(db: Db, name: string, ttlMs: number, waitMs: number, fn: () => Promise<T>) {
  const { value } = await inLease(db, name, { ttlMs, waitMs }, [], async () => ({ writes: [], value: await fn() }));
  return value;
}

export const sourceLeaseName = (source: string) => `source:${source}`;
