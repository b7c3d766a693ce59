import { sql } from "drizzle-orm";

/**
 * The next free slot of a source (`next`, no row while it has none): slots are handed out in
 * order under the unify lease and never reused. ORDER BY … LIMIT 1 reads one index entry, where
 * MAX() under a WHERE reads the source's whole range.
 */
export const nextSlotQuery = (source: string) =>
  sql`SELECT slot + 1 AS next FROM asset_mappings WHERE source = ${source} ORDER BY slot DESC LIMIT 1`;

export const nextSlotOf = (rows: { next: number }[]) => rows[0]?.next ?? 0;
