import { and, asc, desc, eq, gt, gte, lt, lte, type SQL, sql } from "drizzle-orm";
import { HTTP_SOURCES } from "../config";
import { weightedAverage } from "../lib/averages";
import { groupBy } from "../lib/group-by";
import type { FxRate } from "../sources/fx";
import { runBatch, type Statement } from "./batch";
import { builder, type Db } from "./client";
import { periodStart } from "./history-codec";
import { type FxPoints, fxHistory, fxRates, RESOLUTIONS, type Resolution, type StoredRate } from "./schema";

const iso = (ms: number) => new Date(ms).toISOString();

/** A write batch found the rows changed since it read them (another writer came first): read again and retry. */
class FxRowsMoved extends Error {}
const GUARD_FAILED = "fx_rates.source";
const ATTEMPTS = 5;

/**
 * Fails (and so rolls back) the batch it opens unless every row still has the `rev` it was read
 * with (0: absent), the way leases fence their writes (db/lease.ts): it inserts a NULL into a NOT
 * NULL column, here fx_rates' own key, so that its failure is told apart from a lost lease's.
 */
function unchangedGuard(expect: { where: SQL; table: typeof fxRates | typeof fxHistory; rev: number }[]) {
  const checks = expect.map((e) => sql`COALESCE((SELECT ${e.table.rev} FROM ${e.table} WHERE ${e.where}), 0) = ${e.rev}`);
  return sql`INSERT INTO ${fxRates} (${sql.identifier("source")}, ${sql.identifier("rates")}, ${sql.identifier("fetched_at")}, ${sql.identifier("rev")})
    SELECT NULL, '{}', '', 0 WHERE NOT (${sql.join(checks, sql` AND `)})`;
}

async function guardedBatch(db: Db, statements: Statement[]) {
  try {
    return await runBatch(db, statements);
  } catch (e) {
    if (String((e as Error)?.message ?? e).includes(GUARD_FAILED)) throw new FxRowsMoved();
    throw e;
  }
}

const ratesWhere = (source: string) => eq(fxRates.source, source);
const historyWhere = (source: string, resolution: Resolution, start: number) =>
  and(eq(fxHistory.source, source), eq(fxHistory.resolution, resolution), eq(fxHistory.periodStart, iso(start)))!;

/** A source's latest rates with a fetch's rates merged in: per currency the newer wins, and a name it lacks is kept. */
function mergeRates(stored: Record<string, StoredRate>, rates: FxRate[], at: number) {
  const out = { ...stored };
  for (const x of rates) {
    const old = out[x.code];
    if (old && old.t > at) continue;
    out[x.code] = {
      r: x.usdRate,
      t: at,
      ...((x.name ?? old?.n) ? { n: x.name ?? old?.n } : {}),
      ...((x.unit ?? old?.u) ? { u: x.unit ?? old?.u } : {}),
      ...((x.type ?? old?.k) ? { k: x.type ?? old?.k } : {}),
    };
  }
  return out;
}

/**
 * Adds points to a row's points in time order, one point per time. Stored again (a replayed
 * payload), a fetch replaces itself; rolled-up points at the same time (a late roll-up) combine,
 * weighted by how many fetches each stands for.
 */
function mergeFxPoints(row: FxPoints, added: { t: number; rates: Record<string, number>; w?: number }[], combine = false) {
  const byTime = new Map<number, { rates: Record<string, number>; w: number }>();
  row.t.forEach((t, i) => {
    const rates: Record<string, number> = {};
    for (const [code, rs] of Object.entries(row.r)) if (rs[i] !== null && rs[i] !== undefined) rates[code] = rs[i] as number;
    byTime.set(t, { rates, w: row.w?.[i] ?? 1 });
  });
  for (const p of added) {
    const old = byTime.get(p.t);
    const w = p.w ?? 1;
    if (!combine || !old) {
      byTime.set(p.t, { rates: p.rates, w });
      continue;
    }
    const rates = { ...old.rates };
    for (const [code, r] of Object.entries(p.rates))
      rates[code] = weightedAverage(
        [
          [rates[code], old.w],
          [r, w],
        ],
        ([v]) => v,
        ([, n]) => n,
      )!;
    byTime.set(p.t, { rates, w: old.w + w });
  }
  const times = [...byTime.keys()].sort((a, b) => a - b);
  const codes = [...new Set([...byTime.values()].flatMap((p) => Object.keys(p.rates)))].sort();
  const out: FxPoints = { t: times, r: Object.fromEntries(codes.map((c) => [c, times.map((t) => byTime.get(t)!.rates[c] ?? null)])) };
  if (times.some((t) => byTime.get(t)!.w !== 1)) out.w = times.map((t) => byTime.get(t)!.w);
  return out;
}

const EMPTY: FxPoints = { t: [], r: {} };

/**
 * Stores one fetch of a source's rates, timed `at`: merged into the source's latest rates and added
 * to the raw FX history of its hour, with `also` (lease fences, the payload's archive index row), in
 * one transaction that commits only over the rows it read; a concurrent writer (a replay, a roll-up)
 * makes it read again. A fetch whose hour was rolled up already (a replay of a week-old payload) was
 * counted in that roll-up: its point is not added again, so no hour's weight counts a fetch twice.
 * A fetch costs a few rows read and two written (three when it opens an hour's row).
 */
export async function storeFxRates(db: Db, source: string, at: number, rates: FxRate[], also: Statement[] = []) {
  const start = periodStart("raw", at);
  // The rows its hour is rolled into: the day's hourly row (a point at the hour), the month's daily row (a point at the day).
  const rolledInto = [
    { resolution: "hour" as const, start: periodStart("hour", at), point: start },
    { resolution: "day" as const, start: periodStart("day", at), point: periodStart("hour", at) },
  ];
  const historyRow = (resolution: Resolution, rowStart: number) =>
    db
      .select({ points: fxHistory.points, rev: fxHistory.rev })
      .from(fxHistory)
      .where(historyWhere(source, resolution, rowStart));
  for (let attempt = 1; ; attempt++) {
    const [latest, hour, ...coarser] = await db.batch([
      db.select({ rates: fxRates.rates, fetchedAt: fxRates.fetchedAt, rev: fxRates.rev }).from(fxRates).where(ratesWhere(source)),
      historyRow("raw", start),
      ...rolledInto.map((r) => historyRow(r.resolution, r.start)),
    ]);
    const old = latest[0];
    const merged = mergeRates(old?.rates ?? {}, rates, at);
    const fetchedAt = old && old.fetchedAt > iso(at) ? old.fetchedAt : iso(at);
    const rolledUp = rolledInto.some((r, i) => coarser[i][0]?.points.t.includes(r.point));
    const points = mergeFxPoints(hour[0]?.points ?? EMPTY, [{ t: at, rates: Object.fromEntries(rates.map((x) => [x.code, x.usdRate])) }]);
    try {
      await guardedBatch(db, [
        unchangedGuard([
          { table: fxRates, where: ratesWhere(source), rev: old?.rev ?? 0 },
          { table: fxHistory, where: historyWhere(source, "raw", start), rev: hour[0]?.rev ?? 0 },
          ...rolledInto.map((r, i) => ({
            table: fxHistory,
            where: historyWhere(source, r.resolution, r.start),
            rev: coarser[i][0]?.rev ?? 0,
          })),
        ]),
        ...(rolledUp ? [] : [historyUpsert(source, "raw", start, points)]),
        builder
          .insert(fxRates)
          .values({ source, rates: merged, fetchedAt, rev: 1 })
          .onConflictDoUpdate({ target: fxRates.source, set: { rates: merged, fetchedAt, rev: sql`${fxRates.rev} + 1` } }),
        ...also,
      ]);
      return { currencies: Object.keys(merged).length };
    } catch (e) {
      if (!(e instanceof FxRowsMoved) || attempt >= ATTEMPTS) throw e;
    }
  }
}

const historyUpsert = (source: string, resolution: Resolution, start: number, points: FxPoints) =>
  builder
    .insert(fxHistory)
    .values({ source, resolution, periodStart: iso(start), points, rev: 1 })
    .onConflictDoUpdate({
      target: [fxHistory.source, fxHistory.resolution, fxHistory.periodStart],
      set: { points, rev: sql`${fxHistory.rev} + 1` },
    });

/** Every source's latest rates: one row per source. */
export async function latestFxRates(db: Db) {
  return db.select({ source: fxRates.source, rates: fxRates.rates }).from(fxRates);
}

/** One currency's points of one source, oldest first. */
export type FxSeries = Map<string, { t: number; r: number }[]>;

type SeriesRow = { source: string; t: string | null; r: string | null };

/**
 * One currency's FX points per source over [from, to], for converting a series: the rows of every
 * resolution whose period overlaps the range, and per source and resolution the last row before it
 * (the rate in force when the range starts). json_extract picks the currency out of each row, so a
 * row read is one row however many currencies it holds. When nothing is stored before `to`, the
 * first rows after it are read instead (values older than every rate use the oldest one).
 */
export async function fxSeries(db: Db, code: string, from: number, to: number): Promise<FxSeries> {
  const path = `$.r."${code}"`;
  const pick = {
    source: fxHistory.source,
    t: sql<string | null>`json_extract(${fxHistory.points}, '$.t')`.as("t"),
    r: sql<string | null>`json_extract(${fxHistory.points}, ${path})`.as("r"),
  };
  const statements = HTTP_SOURCES.flatMap((source) =>
    RESOLUTIONS.flatMap((resolution) => {
      const base = and(eq(fxHistory.source, source), eq(fxHistory.resolution, resolution));
      const first = Number.isFinite(from) ? iso(periodStart(resolution, from)) : "";
      const inRange = builder
        .select(pick)
        .from(fxHistory)
        .where(and(base, gte(fxHistory.periodStart, first), Number.isFinite(to) ? lte(fxHistory.periodStart, iso(to)) : undefined));
      if (!first) return [inRange];
      const before = builder
        .select(pick)
        .from(fxHistory)
        .where(and(base, lt(fxHistory.periodStart, first)))
        .orderBy(desc(fxHistory.periodStart))
        .limit(1);
      return [inRange, before];
    }),
  );
  let rows = (await runBatch<SeriesRow>(db, statements)).flatMap((r) => r.results);
  let series = toSeries(rows);
  if (![...series.values()].some((s) => s.length) && Number.isFinite(to)) {
    const after = HTTP_SOURCES.flatMap((source) =>
      RESOLUTIONS.map((resolution) =>
        builder
          .select(pick)
          .from(fxHistory)
          .where(and(eq(fxHistory.source, source), eq(fxHistory.resolution, resolution), gt(fxHistory.periodStart, iso(to))))
          .orderBy(asc(fxHistory.periodStart))
          .limit(1),
      ),
    );
    rows = (await runBatch<SeriesRow>(db, after)).flatMap((r) => r.results);
    series = toSeries(rows);
  }
  return series;
}

function toSeries(rows: SeriesRow[]): FxSeries {
  const out: FxSeries = new Map();
  for (const row of rows) {
    if (!row.t || !row.r) continue;
    const times = JSON.parse(row.t) as number[];
    const rates = JSON.parse(row.r) as (number | null)[];
    const list = out.get(row.source) ?? [];
    times.forEach((t, i) => {
      const r = rates[i];
      if (typeof r === "number" && r > 0) list.push({ t, r });
    });
    out.set(row.source, list);
  }
  for (const list of out.values()) list.sort((a, b) => a.t - b.t);
  return out;
}

/** Rows rolled up per pass. */
const ROWS_PER_PASS = 100;

/**
 * Rolls FX history up as price history is (db/history-rollup.ts): every `from` row whose period
 * ended before `cutoff` becomes one point per currency at its period's start, the mean of its points
 * weighted by how many fetches each stands for, merged into the `to` row of its period; the target
 * is written and the inputs deleted in one transaction that commits only while they are as read.
 */
export async function rollUpFx(db: Db, from: Resolution, to: Resolution, cutoff: number) {
  const periodMs = from === "raw" ? 3_600_000 : 86_400_000;
  let removed = 0;
  let added = 0;
  for (const source of HTTP_SOURCES) {
    let moved = 0;
    while (true) {
      const due = await db
        .select({ periodStart: fxHistory.periodStart, points: fxHistory.points, rev: fxHistory.rev })
        .from(fxHistory)
        .where(and(eq(fxHistory.source, source), eq(fxHistory.resolution, from), lte(fxHistory.periodStart, iso(cutoff - periodMs))))
        .orderBy(asc(fxHistory.periodStart))
        .limit(ROWS_PER_PASS);
      if (!due.length) break;
      for (const [target, rows] of groupBy(due, (r) => periodStart(to, Date.parse(r.periodStart)))) {
        const [existing] = await db
          .select({ points: fxHistory.points, rev: fxHistory.rev })
          .from(fxHistory)
          .where(historyWhere(source, to, target));
        const rolled = rows.map((row) => meanPoint(Date.parse(row.periodStart), row.points));
        const points = mergeFxPoints(existing?.points ?? EMPTY, rolled, true);
        try {
          await guardedBatch(db, [
            unchangedGuard([
              { table: fxHistory, where: historyWhere(source, to, target), rev: existing?.rev ?? 0 },
              ...rows.map((row) => ({ table: fxHistory, where: historyWhere(source, from, Date.parse(row.periodStart)), rev: row.rev })),
            ]),
            historyUpsert(source, to, target, points),
            ...rows.map((row) => builder.delete(fxHistory).where(historyWhere(source, from, Date.parse(row.periodStart)))),
          ]);
          removed += rows.reduce((n, row) => n + row.points.t.length, 0);
          added += rolled.length;
        } catch (e) {
          // A row changed since it was read (a replayed fetch landed in it): the next pass reads it again.
          if (!(e instanceof FxRowsMoved) || ++moved > ATTEMPTS) throw e;
        }
      }
      if (due.length < ROWS_PER_PASS) break;
    }
  }
  return { fx_points_removed: removed, fx_points_added: added };
}

/** A row's points as one point at `t`: per currency the weighted mean of the points that have it. */
function meanPoint(t: number, p: FxPoints) {
  const weights = p.t.map((_, i) => p.w?.[i] ?? 1);
  const rates: Record<string, number> = {};
  for (const [code, rs] of Object.entries(p.r)) {
    const mean = weightedAverage(
      rs,
      (r) => r,
      (_, i) => weights[i],
    );
    if (mean !== null) rates[code] = mean;
  }
  return { t, rates, w: weights.reduce((a, b) => a + b, 0) };
}
