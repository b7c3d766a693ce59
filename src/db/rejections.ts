import { sql } from "drizzle-orm";
import type { Rejection } from "../sources/source-quote";
import { jsonSlices } from "./batch";
import { col } from "./client";
import { rejectedRecords } from "./schema";

/**
 * Quarantines rejected records with their reasons. Rows travel as JSON parameters (which sidesteps
 * D1's 100 bound parameters), sliced by size so none passes its 2 MB value limit.
 */
export function rejectionStatements(source: string, runId: string, rejected: Rejection[], now: string) {
  const rows = rejected.map((r) => JSON.stringify({ key: r.recordKey, row: r.row, id: r.sourceId, reason: r.reason.slice(0, 500) }));
  return jsonSlices(rows).map((slice) => rejectionStatement(source, runId, slice, now));
}

function rejectionStatement(source: string, runId: string, rows: string, now: string) {
  const c = rejectedRecords;
  return sql`
    INSERT INTO ${c} (${col(c.runId)}, ${col(c.recordKey)}, ${col(c.source)}, ${col(c.row)}, ${col(c.sourceId)}, ${col(c.reason)}, ${col(c.createdAt)})
    SELECT ${runId}, j.value ->> 'key', ${source}, j.value ->> 'row', j.value ->> 'id', j.value ->> 'reason', ${now}
    FROM json_each(${rows}) j WHERE true
    ON CONFLICT DO NOTHING`;
}
