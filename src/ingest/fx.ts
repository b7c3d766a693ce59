import type { HttpSource } from "../config";
import { runBatch, type Statement } from "../db/batch";
import { rollUpFx, storeFxRates } from "../db/fx-store";
import { forgetCurrencies } from "../db/queries/currencies";
import { rejectionStatements } from "../db/rejections";
import { now, nowIso } from "../lib/clock";
import { log } from "../lib/log";
import type { Services } from "../services";
import { fxSources } from "../sources";
import type { FxNormalised } from "../sources/fx";
import { PayloadError } from "../sources/source";
import { type ArchivePlace, archiveRaw } from "./archive";
import { fetchUpstream, upstreamPolicy } from "./http-client";
import type { requestPacer } from "./request-budget";
import { HOURLY_POINTS_DAYS, RAW_POINTS_DAYS } from "./retention";

/** The part an FX payload is archived as: its raw id is `<run_id>-fx`. */
const FX_PART = "fx";
export const isFxPayload = (rawId: string) => rawId.endsWith(`-${FX_PART}`);

/**
 * A source's FX rates, fetched with the first page of each of its HTTP runs (no queue message of
 * their own): through the same client, request budget (the run's pacer), retry policy and raw
 * archive as the quotes, while the run holds its source lease. What it costs is the run's usage
 * (the message's meter); it adds nothing to the run's records. It never throws: a failed fetch,
 * payload or store is logged and leaves the rates stored before (this source's and the other's)
 * in force, and the run's quotes go on.
 */
export async function fetchFxRates(
  s: Services,
  p: {
    source: HttpSource;
    runId: string;
    pacer: ReturnType<typeof requestPacer>;
    /** The delivery that fetches (names its archive object), and the fences of its page lease and its run's source lease. */
    writer: ArchivePlace["writer"];
    fences: Statement[];
  },
) {
  const adapter = fxSources[p.source];
  const { url, headers } = adapter.request(s.config);
  let raw: Awaited<ReturnType<typeof archiveRaw>> | undefined;
  try {
    const body = await fetchUpstream(url, headers, upstreamPolicy(s.config.UPSTREAM_TIMEOUT_MS, p.pacer), s.fetch);
    raw = await archiveRaw(s.env.BUCKET, s.db, {
      source: p.source,
      runId: p.runId,
      part: FX_PART,
      writer: p.writer,
      bytes: body.bytes,
      contentType: body.contentType,
      origin: s.config.DATA_ORIGIN,
    });
    const stored = raw.body.ok
      ? await storeFx(s, p.source, p.runId, raw.body.value, Date.parse(raw.fetchedAt), [...p.fences, ...raw.inPart])
      : null;
    if (!stored?.ok) {
      // An unusable body is indexed on its own, as a page's is.
      if (raw.index) await runBatch(s.db, [...p.fences, raw.index]);
      const error = raw.body.ok ? stored?.error : `malformed JSON (${raw.body.error})`;
      log("warn", "fx_rejected", { run_id: p.runId, source: p.source, error, raw_id: raw.id });
      return { ok: false as const, error };
    }
    log("info", "fx_stored", { run_id: p.runId, source: p.source, raw_id: raw.id, raw_reused: raw.reused, ...stored.counts });
    return { ok: true as const, ...stored.counts };
  } catch (e) {
    const error = (e as Error).message;
    // Nothing indexes a body archived for a write that did not commit.
    if (raw && !raw.reused) await s.env.BUCKET.delete(raw.key).catch(() => {});
    log("warn", "fx_failed", { run_id: p.runId, source: p.source, error });
    return { ok: false as const, error };
  }
}

/** Normalises an FX body and stores its rates at `at` (with `also`, e.g. its archive index row); a body of the wrong shape stores nothing. */
export async function storeFx(s: Services, source: HttpSource, runId: string, body: unknown, at: number, also: Statement[] = []) {
  let normalised: FxNormalised;
  try {
    normalised = fxSources[source].normalise(body);
  } catch (e) {
    if (!(e instanceof PayloadError)) throw e;
    return { ok: false as const, error: e.message };
  }
  const rejections = rejectionStatements(source, runId, normalised.rejected, nowIso());
  const { currencies } = await storeFxRates(s.db, source, at, normalised.rates, [...also, ...rejections]);
  // This isolate serves the new rates at once; others within their recheck interval.
  forgetCurrencies();
  return { ok: true as const, counts: { rates: normalised.rates.length, rejected: normalised.rejected.length, currencies } };
}

const DAY = 86_400_000;

/** FX history kept as price history is (ingest/retention.ts): raw fetches for 7 days, hourly means for 90, daily means for good. */
export async function rollUpFxHistory(s: Services, at = now()) {
  const hourly = await rollUpFx(s.db, "raw", "hour", at - RAW_POINTS_DAYS * DAY);
  const daily = await rollUpFx(s.db, "hour", "day", at - HOURLY_POINTS_DAYS * DAY);
  return {
    fx_hourly_points_added: hourly.fx_points_added,
    fx_raw_points_removed: hourly.fx_points_removed,
    fx_daily_points_added: daily.fx_points_added,
    fx_hourly_points_removed: daily.fx_points_removed,
  };
}
