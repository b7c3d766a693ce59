import { sql } from "drizzle-orm";

/** The next free slot of a source: slots are handed out in order under the unify lease and never reused. */
export const nextSlotQuery = (source: string) => sql`SELECT COALESCE(MAX(slot), -1) + 1 AS next FROM asset_mappings WHERE source = ${source}`;
