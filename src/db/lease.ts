import { type SQL, sql } from "drizzle-orm";
import { now, sleep } from "../lib/clock";
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

export async function releaseLease(db: Db, name: string, holder: string) {
  await db.run(sql`DELETE FROM leases WHERE name = ${name} AND holder = ${holder}`);
}

/** Runs `fn` holding `name`, waiting for it up to `waitMs`. */
export async function withLease<T>(db: Db, name: string, ttlMs: number, waitMs: number, fn: () => Promise<T>) {
  const holder = crypto.randomUUID();
  const deadline = now() + waitMs;
  let delay = 25;
  while (!(await acquireLease(db, name, holder, ttlMs))) {
    if (now() > deadline) throw new Error(`timed out waiting for lease ${name}`);
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 500);
  }
  try {
    return await fn();
  } finally {
    await releaseLease(db, name, holder);
  }
}

export const sourceLeaseName = (source: string) => `source:${source}`;
