import type { SQL } from "drizzle-orm";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import type { Db } from "./client";

const dialect = new SQLiteAsyncDialect({ casing: "snake_case" });

/** A raw SQL fragment or a drizzle query builder (anything with toSQL). */
export type Statement = SQL | { toSQL(): { sql: string; params: unknown[] } };

/**
 * Runs statements as one D1 batch: a single round trip and a single transaction (D1's only one).
 * drizzle's own batch takes query builders only; bulk statements here are often plain SQL.
 */
export async function runBatch<T = Record<string, unknown>>(db: Db, statements: Statement[]): Promise<D1Result<T>[]> {
  const d1 = db.$client;
  return d1.batch<T>(
    statements.map((s) => {
      const q = "toSQL" in s ? s.toSQL() : dialect.sqlToQuery(s);
      return d1.prepare(q.sql).bind(...q.params);
    }),
  );
}

/** Bytes of JSON per statement parameter, well under D1's 2 MB value limit. */
const PARAM_BYTES = 800_000;

/** Splits rows into JSON arrays of at most PARAM_BYTES each. */
export function jsonSlices(rows: string[]) {
  const out: string[] = [];
  let cur: string[] = [];
  let size = 0;
  for (const r of rows) {
    if (cur.length && size + r.length > PARAM_BYTES) {
      out.push(`[${cur.join(",")}]`);
      cur = [];
      size = 0;
    }
    cur.push(r);
    size += r.length + 1;
  }
  if (cur.length) out.push(`[${cur.join(",")}]`);
  return out;
}
