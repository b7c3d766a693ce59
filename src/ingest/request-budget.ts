import { sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { now, sleep } from "../lib/clock";

/**
 * Spaces calls to one upstream at 60 000 / requestsPerMinute ms, across every isolate: each caller
 * atomically reserves the next free slot in D1, then waits for it.
 */
export async function reserveRequestSlot(db: Db, source: string, requestsPerMinute: number) {
  const interval = Math.ceil(60_000 / requestsPerMinute);
  const t = now();
  const row = await db.get<{ slot: number }>(sql`
    INSERT INTO request_budgets (source, next_at) VALUES (${source}, ${t + interval})
    ON CONFLICT (source) DO UPDATE SET next_at = MAX(request_budgets.next_at, ${t}) + ${interval}
    RETURNING next_at - ${interval} AS slot`);
  const wait = (row?.slot ?? t) - t;
  if (wait > 0) await sleep(wait);
}

/** After a 429 the upstream tells us when it will take calls again; nobody calls before that. */
export async function deferRequests(db: Db, source: string, until: number) {
  await db.run(deferRequestsStatement(source, until));
}

export const deferRequestsStatement = (source: string, until: number) => sql`
  INSERT INTO request_budgets (source, next_at) VALUES (${source}, ${until})
  ON CONFLICT (source) DO UPDATE SET next_at = MAX(request_budgets.next_at, ${until})`;

/**
 * Paces the calls of one run. Only one run of a source calls its upstream at a time (the source
 * lease), so the first call takes a slot from the budget in D1 (spacing it from other runs) and
 * every later one keeps the interval from the call before it, carried from page to page in the
 * message (`not_before`), with no D1 write. A 429's reset time goes to D1 for every run.
 */
export function requestPacer(db: Db, source: string, requestsPerMinute: number, notBefore?: number) {
  const interval = Math.ceil(60_000 / requestsPerMinute);
  let next = notBefore;
  return {
    async beforeAttempt() {
      if (next === undefined) await reserveRequestSlot(db, source, requestsPerMinute);
      else if (next > now()) await sleep(next - now());
      next = now() + interval;
    },
    async onRateLimited(until: number) {
      next = Math.max(next ?? 0, until);
      await deferRequests(db, source, until);
    },
    /** When the run's next call may start. */
    nextAt: () => next,
  };
}
