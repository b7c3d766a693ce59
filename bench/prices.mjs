// Workers Paid prices and included usage, per month, and the bill of a schedule.

// https://developers.cloudflare.com/workers/platform/pricing/ : $5 a month, 10M requests included, then $0.30/M.
export const WORKERS = { base: 5, requestsIncluded: 10e6, perMillionRequests: 0.3 };
// https://developers.cloudflare.com/d1/platform/pricing/ : 25B rows read and 50M rows written included, then
// $0.001/M read and $1.00/M written; 5 GB storage included, then $0.75/GB-month.
export const D1 = { readIncluded: 25e9, perMillionRead: 0.001, writtenIncluded: 50e6, perMillionWritten: 1.0 };
// https://developers.cloudflare.com/r2/pricing/ : $0.015/GB-month (10 GB free), class A $4.50/M (1M free), class B $0.36/M (10M free).
export const R2 = { perGbMonth: 0.015, gbIncluded: 10, perMillionA: 4.5, aIncluded: 1e6, perMillionB: 0.36, bIncluded: 10e6 };
// https://developers.cloudflare.com/kv/platform/pricing/ : 10M reads and 1M writes included, then $0.50/M and $5.00/M.
export const KV = { readIncluded: 10e6, perMillionRead: 0.5, writeIncluded: 1e6, perMillionWrite: 5 };
// https://developers.cloudflare.com/queues/platform/pricing/ : 1M operations included, then $0.40/M; a message is
// about 3 operations (write, read, delete).
export const QUEUES = { opsIncluded: 1e6, perMillionOps: 0.4, opsPerMessage: 3 };

const over = (used, included, perMillion) => (Math.max(0, used - included) / 1e6) * perMillion;
const round = (x) => Math.round(x * 100) / 100;

/**
 * The month of a schedule: one steady tick's `usage` times the ticks in 30 days. Requests are the
 * cron's once-a-minute invocations plus one queue delivery per message; raw archive storage is the
 * upstream bytes per tick kept for `retentionDays`. CPU time is not modelled (see README).
 */
export function monthlyBill({ tick, intervalMinutes, rawBytesPerTick, retentionDays = 30 }) {
  const ticks = (30 * 24 * 60) / intervalMinutes;
  const m = (k) => tick[k] * ticks;
  const requests = 30 * 24 * 60 + m("queue_messages");
  const rawGb = (rawBytesPerTick * ticks * (retentionDays / 30)) / 1e9;
  const bill = {
    d1_writes: over(m("d1_rows_written"), D1.writtenIncluded, D1.perMillionWritten),
    d1_reads: over(m("d1_rows_read"), D1.readIncluded, D1.perMillionRead),
    r2_class_a: over(m("r2_writes"), R2.aIncluded, R2.perMillionA),
    r2_class_b: over(m("r2_reads"), R2.bIncluded, R2.perMillionB),
    r2_storage: Math.max(0, rawGb - R2.gbIncluded) * R2.perGbMonth,
    kv: over(m("kv_reads"), KV.readIncluded, KV.perMillionRead) + over(m("kv_writes"), KV.writeIncluded, KV.perMillionWrite),
    queues: over(m("queue_messages") * QUEUES.opsPerMessage, QUEUES.opsIncluded, QUEUES.perMillionOps),
    requests: over(requests, WORKERS.requestsIncluded, WORKERS.perMillionRequests),
  };
  const overage = Object.values(bill).reduce((a, b) => a + b, 0);
  return {
    ticks_per_month: ticks,
    month: {
      d1_rows_written: m("d1_rows_written"),
      d1_rows_read: m("d1_rows_read"),
      r2_class_a: m("r2_writes"),
      r2_class_b: m("r2_reads"),
      r2_raw_archive_gb: round(rawGb),
      kv_reads: m("kv_reads"),
      kv_writes: m("kv_writes"),
      queue_operations: m("queue_messages") * QUEUES.opsPerMessage,
      worker_requests: requests,
    },
    overage_usd: Object.fromEntries(Object.entries(bill).map(([k, v]) => [k, round(v)])),
    total_usd: round(WORKERS.base + overage),
  };
}
