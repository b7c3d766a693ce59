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
