import { sql } from "drizzle-orm";
import type { Rejection } from "../sources/source-quote";
import { col } from "./client";
import { rejectedRecords } from "./schema";

/** Quarantines rejected records with their reasons; one JSON parameter sidesteps D1's 100 bound parameters. */
export function rejectionStatement(source: string, runId: string, rejected: Rejection[], now: string) {
  const rows = JSON.stringify(rejected.map((r) => ({ key: r.recordKey, row: r.row, id: r.sourceId, reason: r.reason.slice(0, 500) })));
  const c = rejectedRecords;
  return sql`
    INSERT INTO ${c} (${col(c.runId)}, ${col(c.recordKey)}, ${col(c.source)}, ${col(c.row)}, ${col(c.sourceId)}, ${col(c.reason)}, ${col(c.createdAt)})
    SELECT ${runId}, j.value ->> 'key', ${source}, j.value ->> 'row', j.value ->> 'id', j.value ->> 'reason', ${now}
    FROM json_each(${rows}) j WHERE true
    ON CONFLICT DO NOTHING`;
}
