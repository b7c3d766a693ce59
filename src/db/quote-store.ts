import { and, eq, sql } from "drizzle-orm";
import { hex } from "../lib/digest";
import { groupBy } from "../lib/group-by";
import type { SourceQuote } from "../sources/source-quote";
import { jsonSlices, runBatch, type Statement } from "./batch";
import { col, type Db, builder as q } from "./client";
import { blobBytes, bucketOf, decodePoints, encodePoints, isWeighted, mergePoints, type Point, periodStart } from "./history-codec";
import { type HeldLease, inLease, releaseLease, takeLease, withLease } from "./lease";
import { FIGURES, type Figures, historyBuckets, quoteBuckets, type Resolution, type StoredQuote } from "./schema";

/** A validated quote with the asset it belongs to and its slot in its source's buckets. */
export type ResolvedQuote = SourceQuote & { assetUid: string; slot: number };
export type QuoteBucket = Record<string, StoredQuote>;

const jsonList = (xs: unknown[]) => JSON.stringify([...new Set(xs)]);

export const quoteBucketsQuery = (db: Db, source: string, buckets: number[]) =>
  db
    .select({ bucket: quoteBuckets.bucket, quotes: quoteBuckets.quotes })
    .from(quoteBuckets)
    .where(and(eq(quoteBuckets.source, source), sql`${quoteBuckets.bucket} IN (SELECT value FROM json_each(${jsonList(buckets)}))`));

/** The given buckets of one source, by bucket number (absent ones are empty). */
export async function readQuoteBuckets(db: Db, source: string, buckets: number[]) {
  const rows = buckets.length ? await quoteBucketsQuery(db, source, buckets) : [];
  return new Map<number, QuoteBucket>(rows.map((r) => [r.bucket, r.quotes]));
}

const qb = quoteBuckets;
/** Upserts whole buckets, many per statement (one JSON parameter each, read with json_each), each with its figures. */
export function quoteBucketStatements(source: string, buckets: Map<number, QuoteBucket>, now: string): Statement[] {
  const rows = [...buckets].map(([bucket, quotes]) => JSON.stringify({ bucket, quotes, figures: figuresOf(quotes) }));
  return jsonSlices(rows).map(
    (json) => sql`
      INSERT INTO ${qb} (${col(qb.source)}, ${col(qb.bucket)}, ${col(qb.quotes)}, ${col(qb.figures)}, ${col(qb.updatedAt)})
      SELECT ${source}, j.value ->> 'bucket', j.value -> 'quotes', j.value -> 'figures', ${now} FROM json_each(${json}) j WHERE true
      ON CONFLICT (${col(qb.source)}, ${col(qb.bucket)}) DO UPDATE SET ${col(qb.quotes)} = excluded.${col(qb.quotes)},
        ${col(qb.figures)} = excluded.${col(qb.figures)}, ${col(qb.updatedAt)} = excluded.${col(qb.updatedAt)}`,
  );
}

const figuresOf = (quotes: QuoteBucket): Record<string, Figures> =>
  Object.fromEntries(Object.entries(quotes).map(([id, q]) => [id, FIGURES.map((f) => q[f] ?? null) as Figures]));

export const historyRowsQuery = (db: Db, source: string, resolution: Resolution, keys: { bucket: number; start: number }[]) =>
  db
    .select({ bucket: historyBuckets.bucket, periodStart: historyBuckets.periodStart, points: historyBuckets.points })
    .from(historyBuckets)
    .where(
      and(
        eq(historyBuckets.source, source),
        eq(historyBuckets.resolution, resolution),
        sql`(${historyBuckets.bucket}, ${historyBuckets.periodStart}) IN (SELECT value ->> 0, value ->> 1 FROM json_each(${jsonList(keys.map((k) => [k.bucket, new Date(k.start).toISOString()]))}))`,
      ),
    );

/** History rows of one source and resolution for the given (bucket, period start) pairs. */
async function readHistoryRows(db: Db, source: string, resolution: Resolution, keys: { bucket: number; start: number }[]) {
  if (!keys.length) return new Map<string, Point[]>();
  return decodedHistory(await historyRowsQuery(db, source, resolution, keys));
}

const decodedHistory = (rows: { bucket: number; periodStart: string; points: unknown }[]) =>
  new Map(
    rows.map((r) => [
      historyKey(r.bucket, Date.parse(r.periodStart)),
      decodePoints(Date.parse(r.periodStart), r.bucket, blobBytes(r.points)),
    ]),
  );

const historyKey = (bucket: number, start: number) => `${bucket}@${start}`;

const hb = historyBuckets;

/** Upserts whole history rows, many per statement: points travel hex-encoded in one JSON parameter. */
export function historyRowStatements(
  source: string,
  resolution: Resolution,
  rows: { bucket: number; start: number; points: Point[] }[],
): Statement[] {
  const json = rows.map((r) =>
    JSON.stringify({
      bucket: r.bucket,
      start: new Date(r.start).toISOString(),
      points: hex(encodePoints(r.start, r.points, isWeighted(resolution))),
      count: r.points.length,
    }),
  );
  return jsonSlices(json).map(
    (param) => sql`
      INSERT INTO ${hb} (${col(hb.source)}, ${col(hb.bucket)}, ${col(hb.resolution)}, ${col(hb.periodStart)}, ${col(hb.points)}, ${col(hb.count)})
      SELECT ${source}, j.value ->> 'bucket', ${resolution}, j.value ->> 'start', unhex(j.value ->> 'points'), j.value ->> 'count'
      FROM json_each(${param}) j WHERE true
      ON CONFLICT (${col(hb.source)}, ${col(hb.bucket)}, ${col(hb.resolution)}, ${col(hb.periodStart)})
      DO UPDATE SET ${col(hb.points)} = excluded.${col(hb.points)}, ${col(hb.count)} = excluded.${col(hb.count)}`,
  );
}

export const deleteHistoryRowStatement = (source: string, bucket: number, resolution: Resolution, start: number) =>
  q
    .delete(historyBuckets)
    .where(
      and(
        eq(historyBuckets.source, source),
        eq(historyBuckets.bucket, bucket),
        eq(historyBuckets.resolution, resolution),
        eq(historyBuckets.periodStart, new Date(start).toISOString()),
      ),
    );

/** The merge of a slice of quotes into the stored buckets: only quotes newer than the stored ones change anything. */
function mergeQuotes(stored: Map<number, QuoteBucket>, quotes: ResolvedQuote[], runId: string, now: string) {
  const dirty = new Map<number, QuoteBucket>();
  const points: Point[] = [];
  let written = 0;
  for (const q of quotes) {
    const b = bucketOf(q.slot);
    const old = (dirty.get(b) ?? stored.get(b))?.[q.sourceId];
    if (old && old.sourceUpdatedAt >= q.sourceUpdatedAt) continue;
    // A bucket is copied once, when its first quote changes.
    const bucket = dirty.get(b) ?? { ...(stored.get(b) ?? {}) };
    const { source: _source, ...quote } = q;
    bucket[q.sourceId] = { ...quote, ingestedAt: now, runId };
    dirty.set(b, bucket);
    written++;
    points.push(toPoint(q));
  }
  return { dirty, points, written };
}

/** Points grouped by the (bucket, period) row of `resolution` they belong in. */
function groupPoints(points: Point[], resolution: Resolution) {
  const rows = new Map<string, { bucket: number; start: number; points: Point[] }>();
  for (const p of points) {
    const bucket = bucketOf(p.slot);
    const start = periodStart(resolution, p.at);
    const k = historyKey(bucket, start);
    const row = rows.get(k) ?? { bucket, start, points: [] };
    row.points.push(p);
    rows.set(k, row);
  }
  return rows;
}

/** Merges points into a source's history rows of one resolution: the statements that write them. */
export async function historyStatements(db: Db, source: string, resolution: Resolution, points: Point[]) {
  const existing = await readHistoryRows(db, source, resolution, [...groupPoints(points, resolution).values()]);
  return mergedHistoryStatements(source, resolution, points, existing);
}

/** The rows `points` fall in, each merged with what it already held (`existing`, by historyKey). */
export function mergedHistoryStatements(source: string, resolution: Resolution, points: Point[], existing: Map<string, Point[]>) {
  const rows = [...groupPoints(points, resolution).entries()].map(([k, r]) => ({
    ...r,
    points: mergePoints(existing.get(k) ?? [], r.points, isWeighted(resolution)),
  }));
  return historyRowStatements(source, resolution, rows);
}

/** One writer per source's buckets at a time: a page, a CSV block, a pin, a move and a roll-up read, merge and write them under it. */
export const quotesLeaseName = (source: string) => `quotes:${source}`;
export const QUOTES_LEASE = { ttlMs: 60_000, waitMs: 45_000 };

export const withQuotesLease = <T>(db: Db, source: string, fn: (lease: HeldLease) => Promise<T>) =>
  withLease(db, quotesLeaseName(source), QUOTES_LEASE, fn);

/** Statements that run in the slice's own transaction, by name; their results come back under the same names. */
export type TailStatements = Record<string, Statement[]>;

type StoreQuotesInput = {
  source: string;
  runId: string;
  quotes: ResolvedQuote[];
  now: string;
  /** True when every id was mapped before this part: then a first look without the lease may show nothing is newer. */
  allKnown: boolean;
  /** The part's bookkeeping, given how many quotes were newer. */
  tail?: (written: number) => TailStatements;
};

/**
 * Stores a slice of resolved quotes: reads the buckets they fall in, keeps only quotes newer than
 * the stored ones, and writes the changed buckets, their history points and the tail in one
 * transaction, fenced by the source's quotes lease. Returns how many quotes were newer and the
 * tail's results by name.
 */
export async function storeQuotes(db: Db, input: StoreQuotesInput) {
  const { source, runId, quotes, now } = input;
  const tail: (written: number) => TailStatements = input.tail ?? (() => ({}));
  const buckets = quotes.map((q) => bucketOf(q.slot));
  // Ids seen before may bring nothing newer (a market that did not move): a first look without
  // the lease, and then nothing to merge and only the tail to write.
  if (input.allKnown && mergeQuotes(await readQuoteBuckets(db, source, buckets), quotes, runId, now).written === 0) {
    const named = tail(0);
    const flat = Object.values(named).flat();
    return { written: 0, tail: byName(named, flat.length ? await runBatch(db, flat) : []) };
  }
  // The buckets and every history row the slice's points could fall in, read with the lease taken.
  const rowKeys = [...groupPoints(quotes.map(toPoint), "raw").values()];
  let named: TailStatements = {};
  const { value, writeResults } = await inLease(
    db,
    quotesLeaseName(source),
    QUOTES_LEASE,
    [quoteBucketsQuery(db, source, buckets), historyRowsQuery(db, source, "raw", rowKeys)],
    async ([bucketRows, historyRows]) => {
      const stored = new Map<number, QuoteBucket>(
        (bucketRows.results as { bucket: number; quotes: string }[]).map((r) => [r.bucket, JSON.parse(r.quotes) as QuoteBucket]),
      );
      const { dirty, points, written } = mergeQuotes(stored, quotes, runId, now);
      const own = [...quoteBucketStatements(source, dirty, now), ...mergedHistoryStatements(source, "raw", points, rawRows(historyRows))];
      named = tail(written);
      return { writes: [...own, ...Object.values(named).flat()], value: { written, own: own.length } };
    },
  );
  return { written: value.written, tail: byName(named, writeResults.slice(value.own)) };
}

/** Results of a flattened TailStatements, given back under their names. */
function byName(named: TailStatements, results: D1Result[]) {
  const out: Record<string, D1Result[]> = {};
  let i = 0;
  for (const [name, list] of Object.entries(named)) {
    out[name] = results.slice(i, i + list.length);
    i += list.length;
  }
  return out;
}

/** History rows as a batch read them (snake_case columns), decoded by historyKey. */
export const rawRows = (res: D1Result) =>
  decodedHistory(
    (res.results as { bucket: number; period_start: string; points: unknown }[]).map((r) => ({
      bucket: r.bucket,
      periodStart: r.period_start,
      points: r.points,
    })),
  );

const toPoint = (q: ResolvedQuote): Point => ({
  slot: q.slot,
  at: Date.parse(q.sourceUpdatedAt),
  priceUsd: q.priceUsd,
  marketCapUsd: q.marketCapUsd,
  volume24hUsd: q.volume24hUsd,
});

type Move = { source: string; sourceId: string; slot: number; assetUid: string };

/**
 * Takes the quotes lease of every source the moves touch (in source order, as every multi-lease
 * writer does) and returns the statements that rewrite the stored quotes of these ids, where there
 * are any, to belong to their new assets. The caller commits them with `leases` fenced, in the same
 * transaction as the mapping change (a pin, a mapping decided again), and releases the leases.
 */
export async function takeQuotesToMove(db: Db, moves: Move[], now: string) {
  const leases: HeldLease[] = [];
  const writes: Statement[] = [];
  try {
    for (const [source, list] of [...groupBy(moves, (m) => m.source)].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const taken = await takeLease(db, quotesLeaseName(source), QUOTES_LEASE, [
        quoteBucketsQuery(db, source, [...new Set(list.map((m) => bucketOf(m.slot)))]),
      ]);
      leases.push(taken.lease);
      const stored = new Map(
        (taken.reads[0].results as { bucket: number; quotes: string }[]).map((r) => [r.bucket, JSON.parse(r.quotes) as QuoteBucket]),
      );
      const changed = new Map<number, QuoteBucket>();
      for (const m of list) {
        const bucket = stored.get(bucketOf(m.slot));
        const quote = bucket?.[m.sourceId];
        if (!bucket || !quote || quote.assetUid === m.assetUid) continue;
        bucket[m.sourceId] = { ...quote, assetUid: m.assetUid };
        changed.set(bucketOf(m.slot), bucket);
      }
      writes.push(...quoteBucketStatements(source, changed, now));
    }
    return { leases, writes };
  } catch (e) {
    await Promise.all(leases.map((l) => releaseLease(db, l.name, l.holder)));
    throw e;
  }
}

/** The stored quotes of the given (source, slot, source id)s, e.g. an asset's mappings. */
export async function storedQuotesOf(db: Db, ids: { source: string; sourceId: string; slot: number }[]) {
  const buckets = new Map<string, Map<number, QuoteBucket>>();
  await Promise.all(
    [...groupBy(ids, (id) => id.source)].map(async ([source, list]) =>
      buckets.set(source, await readQuoteBuckets(db, source, [...new Set(list.map((id) => bucketOf(id.slot)))])),
    ),
  );
  return ids.flatMap((id) => {
    const q = buckets.get(id.source)?.get(bucketOf(id.slot))?.[id.sourceId];
    return q ? [{ source: id.source, ...q }] : [];
  });
}

/** Every stored bucket of every source, a page of rows at a time (each row holds QUOTES_PER_BUCKET quotes). */
export async function* allQuoteBuckets(db: Db, pageRows = 200) {
  let after: [string, number] = ["", -1];
  while (true) {
    const rows = await db
      .select({ source: quoteBuckets.source, bucket: quoteBuckets.bucket, quotes: quoteBuckets.quotes })
      .from(quoteBuckets)
      .where(sql`(${quoteBuckets.source}, ${quoteBuckets.bucket}) > (${after[0]}, ${after[1]})`)
      .orderBy(quoteBuckets.source, quoteBuckets.bucket)
      .limit(pageRows);
    for (const r of rows) yield r;
    if (rows.length < pageRows) return;
    const last = rows[rows.length - 1];
    after = [last.source, last.bucket];
  }
}
