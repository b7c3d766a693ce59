import { type Column, sql } from "drizzle-orm";
import { CasingCache } from "drizzle-orm/casing";
import { drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";

const handles = new WeakMap<D1Database, Db>();

/** The drizzle handle of a D1 binding, built once per binding (building it walks the whole schema). */
export function dbFor(d1: D1Database): Db {
  let db = handles.get(d1);
  if (!db) {
    db = drizzle(d1, { schema, casing: "snake_case" });
    handles.set(d1, db);
  }
  return db;
}
export type Db = ReturnType<typeof drizzle<typeof schema>>;

/** A drizzle handle over one D1 session (read replication): built per session, as a session lives for one request. */
export const sessionDb = (session: D1DatabaseSession): Db => drizzle(session as unknown as D1Database, { schema, casing: "snake_case" });

/** Builds statements for batches (toSQL) where no handle is at hand; never executes anything. */
export const builder: Db = drizzle({} as D1Database, { schema, casing: "snake_case" });

const casing = new CasingCache("snake_case");
/** A column's SQL name, unqualified, for the column lists of hand-written INSERT … SELECT statements. */
export const col = (c: Column) => sql.identifier(casing.getColumnCasing(c));
