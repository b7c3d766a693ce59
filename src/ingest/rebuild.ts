import { and, eq, inArray, sql } from "drizzle-orm";
import { HTTP_SOURCES, type HttpSource, SOURCES, type Source } from "../config";
import { jsonSlices, runBatch, type Statement } from "../db/batch";
import { builder } from "../db/client";
import {
  acquireLease,
  fenceStatement,
  type HolderRow,
  holdersQuery,
  leaseStatement,
  releaseLease,
  releaseStatement,
  sourceLeaseName,
} from "../db/lease";
import { storedSnapshotVersion } from "../db/read-model";
import { ingestionRuns, leases, rawPayloads, readModel, runParts, uploads } from "../db/schema";
import type { JobMessage } from "../jobs/messages";
import { now, nowIso } from "../lib/clock";
import { sha256 } from "../lib/digest";
import { newId } from "../lib/ids";
import { log } from "../lib/log";
import { readArchived } from "../lib/raw-archive";
import { currentMeter, noUsage } from "../lib/usage";
import type { Services } from "../services";
import { httpSources } from "../sources";
import { PayloadError } from "../sources/source";
import { forgetMapCopies, publishMapCache } from "../unify/map-cache";
import { CSV_OBJECT, STUCK_AFTER_MS, UPLOAD_PREFIX } from "./csv-sweep";
import { ingestUpload } from "./csv-upload";
import { isContractPayload, replayContracts } from "./fetch-contracts";
import { completeRun } from "./finish";
import { isFxPayload, storeFx } from "./fx";
import {
  finishRun,
  getRun,
  isFinished,
  markRunningStatement,
  NO_RECORDS,
  newRunRow,
  partRowStatement,
  runIsOpen,
  startingRun,
  TAKEN_OVER,
} from "./runs";
import { sourceHeartbeat } from "./start-run";
import { storeNormalised } from "./store-chunk";

type RebuildMessage = Extract<JobMessage, { type: "rebuild" }>;
/** Per-message bounds, smaller in tests so that a small archive still spans several messages. */
type Limits = { itemsPerMessage?: number; listLimit?: number; listCalls?: number };
export type RebuildRuns = RebuildMessage["runs"];
type RunRow = typeof ingestionRuns.$inferSelect;

/** One rebuild at a time: the lease is held by the rebuild's runs and renewed by each of its messages. */
export const REBUILD_LEASE = "rebuild";
/** A rebuild whose messages stopped for this long (none renewed its lease) can be started again. */
const REBUILD_LEASE_MS = 10 * 60_000;
/** R2 list calls per listing message (1,000 keys each). */
const LIST_CALLS = 10;
/**
 * Archived objects replayed per message, and the time after which a message hands the rest to the
 * next one: an invocation has bounded time and subrequests, and a payload takes about ten (R2, D1, leases).
 */
const ITEMS_PER_MESSAGE = 10;
const TIME_BUDGET_MS = 20_000;
/** How long the rebuild waits before it looks again at a source's running run or a CSV file ingested in its own messages. */
const WAIT_SECONDS = 10;

const RAW_PREFIX = "raw/";
/** What the rebuild lists, in this order: each HTTP source's raw archive, then the CSV uploads. */
const PREFIXES = [...HTTP_SOURCES.map((s) => `${RAW_PREFIX}${s}/`), UPLOAD_PREFIX];
/** A market page's archive (`<run>-page-<n>`, maybe followed by the fetching delivery's id); other archived bodies are reference data. */
const MARKET_PAGE = /\/[^/]+-page-\d+(-[^/]*)?\.json$/;

const holderOf = (runs: RebuildRuns) => SOURCES.map((s) => runs[s]).join(",");
const runOfPrefix = (runs: RebuildRuns, prefix: string) =>
  prefix.startsWith(RAW_PREFIX) ? runs[prefix.slice(RAW_PREFIX.length, -1) as HttpSource] : runs.csv;

export type RebuildStart = { started: true; runs: RunRow[] } | { started: false; running: string[] };

/**
 * Starts a rebuild of the database from R2: one replay run per source, all queued, under the rebuild
 * lease (409 while another holds it). Its first message takes each source's lease, so no run of a
 * source interleaves with the replay of its archive.
 */
export async function startRebuild(s: Services): Promise<RebuildStart> {
  const rows = SOURCES.map((source) => newRunRow(source, "replay", s.config.DATA_ORIGIN));
  const runs = Object.fromEntries(rows.map((r) => [r.source, r.runId])) as RebuildRuns;
  const holder = holderOf(runs);
  const taken = await startingRun(s.db, runs.csv, async () => {
    const previous = await s.db.query.leases.findFirst({ where: eq(leases.name, REBUILD_LEASE) });
    if (!(await acquireLease(s.db, REBUILD_LEASE, holder, REBUILD_LEASE_MS))) return { started: false, holder: previous?.holder ?? "" };
    if (previous && previous.holder !== holder) {
      await abandonRuns(
        s,
        previous.holder.split(","),
        "abandoned: the rebuild's messages stopped and its lease expired; a later rebuild took over",
      );
    }
    try {
      await runBatch(
        s.db,
        rows.map((r) => builder.insert(ingestionRuns).values(r)),
      );
      await s.env.JOBS.send({ type: "rebuild", run_id: runs.csv, runs, step: "start" });
    } catch (e) {
      await releaseLease(s.db, REBUILD_LEASE, holder);
      await s.db
        .update(ingestionRuns)
        .set({ status: "failed", error: "could not enqueue the rebuild" })
        .where(
          inArray(
            ingestionRuns.runId,
            rows.map((r) => r.runId),
          ),
        );
      throw e;
    }
    return { started: true, holder };
  });
  if (!taken.started) return { started: false, running: taken.holder ? taken.holder.split(",") : [] };
  log("info", "rebuild_queued", { runs });
  const stored = await s.db
    .select()
    .from(ingestionRuns)
    .where(
      inArray(
        ingestionRuns.runId,
        rows.map((r) => r.runId),
      ),
    );
  return { started: true, runs: SOURCES.map((src) => stored.find((r) => r.source === src)!) };
}

/**
 * One step of a rebuild: `start` (take the source leases, make KV's map copies D1's), `list` (index
 * R2's raw payloads and CSV objects in D1), `replay` (replay them in the order they were fetched or
 * uploaded, then close the runs). Every message renews the leases; one that finds the rebuild lease
 * held by another rebuild does nothing.
 */
export async function rebuild(s: Services, msg: RebuildMessage, opts: Limits = {}) {
  const lease = await heartbeat(s, msg);
  if (!lease.held) {
    log("warn", "rebuild_not_held", { run_id: msg.run_id, step: msg.step });
    return;
  }
  if (lease.tookOver.length) {
    await abandonRuns(s, lease.tookOver, "abandoned: its lease expired without a heartbeat; a rebuild took over");
  }
  // A map copy parsed in this isolate before the rebuild (from KV) may map ids that D1 lost: none is used.
  forgetMapCopies();
  const rs: Services = { ...s, env: { ...s.env, KV: withoutReads(s.env.KV) } };
  if (msg.step === "start") return start(s, msg, lease);
  if (msg.step === "list") return list(rs, msg, opts);
  return replayInOrder(s, rs, msg, opts, lease.sources);
}

/**
 * Why the rebuild does not hold a source: another run holds it ("elsewhere": the rebuild waits for
 * it), the rebuild's own close finished its run of it ("closed"), or a run that took over its expired
 * lease (the rebuild stalled) closed that run, which can then never take the source back ("lost").
 */
async function whyNotHeld(s: Services, msg: RebuildMessage, source: Source) {
  const run = await getRun(s.db, msg.runs[source]);
  if (run?.error === TAKEN_OVER) return "lost";
  return run && isFinished(run.status) ? "closed" : "elsewhere";
}

/** A rebuild that lost a source to a takeover fails, naming it, rather than wait for good. */
async function failLostSource(s: Services, msg: RebuildMessage, source: Source) {
  log("warn", "rebuild_lost_source", { run_id: msg.run_id, source });
  await abandonRebuild(s, msg, `the rebuild's ${source} run was closed by a run that took over its expired lease; start the rebuild again`);
}

/** Closes a rebuild that cannot go on (its message was dead-lettered): every run failed with `error`, every lease released. */
export async function abandonRebuild(s: Services, msg: RebuildMessage, error: string) {
  for (const source of SOURCES) await completeRun(s, msg.runs[source], { error, holdsLease: true });
  await releaseLease(s.db, REBUILD_LEASE, holderOf(msg.runs));
}

async function start(s: Services, msg: RebuildMessage, lease: Awaited<ReturnType<typeof heartbeat>>) {
  const busy = SOURCES.filter((source) => !lease.sources.has(source));
  for (const source of busy) if ((await whyNotHeld(s, msg, source)) === "lost") return failLostSource(s, msg, source);
  if (busy.length) {
    // A source's run holds its lease: the rebuild starts when it has finished (or its lease expired).
    log("info", "rebuild_waits", { run_id: msg.run_id, running: busy.map((b) => lease.holders[b]) });
    await s.env.JOBS.send(msg, { delaySeconds: WAIT_SECONDS });
    return;
  }
  await runBatch(
    s.db,
    SOURCES.map((source) => markRunningStatement(msg.runs[source])),
  );
  await restoreReadModelRow(s);
  // KV's map copies become D1's (empty, when D1 lost its rows), for the runs that follow the rebuild.
  for (const source of SOURCES) await publishMapCache(s.db, s.env.KV, source);
  forgetMapCopies();
  await s.env.JOBS.send({ ...base(msg), run_id: runOfPrefix(msg.runs, PREFIXES[0]), step: "list", prefix: PREFIXES[0] });
}

const base = (msg: RebuildMessage) => ({ type: "rebuild" as const, runs: msg.runs });

/** Lists R2 and writes the index rows the replay walks: one raw_payloads row per archived payload, one uploads row per CSV object. */
async function list(s: Services, msg: RebuildMessage, opts: Limits) {
  let prefix = msg.prefix ?? PREFIXES[0];
  let cursor = msg.cursor;
  for (let call = 0; call < (opts.listCalls ?? LIST_CALLS); call++) {
    const page = await s.env.BUCKET.list({ prefix, cursor, limit: opts.listLimit ?? 1000, include: ["httpMetadata", "customMetadata"] });
    const statements = indexStatements(s, prefix, page.objects);
    if (statements.length) await runBatch(s.db, statements);
    if (page.truncated) {
      cursor = page.cursor;
      continue;
    }
    const next = PREFIXES[PREFIXES.indexOf(prefix) + 1];
    if (!next) {
      await s.env.JOBS.send({ ...base(msg), run_id: msg.runs.csv, step: "replay" });
      return;
    }
    prefix = next;
    cursor = undefined;
  }
  await s.env.JOBS.send({ ...base(msg), run_id: runOfPrefix(msg.runs, prefix), step: "list", prefix, cursor });
}

/**
 * Index rows for listed objects, kept where they exist already (their id and fetch time are the exact ones).
 * From R2 alone: a raw payload's run, part, fetch time and origin are in its custom metadata (archive.ts);
 * an archive written before the metadata carried them has its id from its key, its fetch time from
 * when R2 stored it (a few milliseconds after the fetch) and the configured origin. Size, record count
 * and digest are filled in when it is replayed.
 */
function indexStatements(s: Services, prefix: string, objects: R2Object[]): Statement[] {
  if (prefix.startsWith(RAW_PREFIX)) {
    const source = prefix.slice(RAW_PREFIX.length, -1);
    const rows = objects.flatMap((o) => {
      const name = /([^/]+)\.json$/.exec(o.key)?.[1];
      if (!name) return [];
      const meta = o.customMetadata ?? {};
      // The payload's id is `<run>-<part>`; a key may add the fetching delivery's id after it. Without
      // the part in the metadata, a market page's part is `page-<n>` and another's id is the key's name.
      const runId = meta.run_id ?? name.split("-")[0];
      const page = /^(.+?-page-\d+)(-|$)/.exec(name)?.[1];
      return JSON.stringify({
        id: meta.id ?? (meta.part ? `${runId}-${meta.part}` : (page ?? name)),
        source,
        run_id: runId,
        key: o.key,
        fetched_at: meta.fetched_at ?? o.uploaded.toISOString(),
        bytes: o.size,
        content_type: o.httpMetadata?.contentType ?? "application/json",
        origin: meta.origin ?? s.config.DATA_ORIGIN,
      });
    });
    return jsonSlices(rows).map(
      (json) => sql`
        INSERT INTO raw_payloads (id, source, run_id, key, fetched_at, bytes, records, content_type, origin, digest)
        SELECT j.value ->> 'id', j.value ->> 'source', j.value ->> 'run_id', j.value ->> 'key', j.value ->> 'fetched_at',
          j.value ->> 'bytes', NULL, j.value ->> 'content_type', j.value ->> 'origin', NULL
        FROM json_each(${json}) j
        WHERE NOT EXISTS (SELECT 1 FROM raw_payloads r WHERE r.run_id = j.value ->> 'run_id' AND r.key = j.value ->> 'key')
        ON CONFLICT (id) DO NOTHING`,
    );
  }
  const at = nowIso();
  const rows = objects
    .filter((o) => CSV_OBJECT.test(o.key))
    .map((o) =>
      JSON.stringify({
        // An API upload's key holds its id; an object put in R2 by other means gets one.
        upload_id: /^uploads\/(upl_[0-9a-z]+)\//.exec(o.key)?.[1] ?? newId("upl", o.uploaded.getTime()),
        key: o.key,
        filename: o.customMetadata?.filename ?? o.key.split("/").pop() ?? o.key,
        bytes: o.size,
        etag: o.etag,
        created_at: o.uploaded.toISOString(),
      }),
    );
  return jsonSlices(rows).map(
    (json) => sql`
      INSERT INTO uploads (upload_id, key, filename, bytes, etag, run_id, status, created_at, updated_at)
      SELECT j.value ->> 'upload_id', j.value ->> 'key', j.value ->> 'filename', j.value ->> 'bytes', j.value ->> 'etag', NULL,
        'queued', j.value ->> 'created_at', ${at}
      FROM json_each(${json}) j WHERE true
      ON CONFLICT DO NOTHING`,
  );
}

type Item =
  | { kind: "raw"; source: HttpSource; id: string; key: string; at: string }
  | { kind: "upload"; id: string; key: string; at: string };

/**
 * Replays archived payloads and uploads in (time, key) order from `after`, a bounded number per
 * message, then closes the rebuild. A payload whose source another run holds waits, in order, until
 * the rebuild holds the source again; if that run closed the rebuild's run of the source (the
 * rebuild stalled past its lease and the run took over), the rebuild fails, naming the source.
 */
async function replayInOrder(s: Services, rs: Services, msg: RebuildMessage, opts: Limits, held: Set<Source>) {
  const perMessage = opts.itemsPerMessage ?? ITEMS_PER_MESSAGE;
  const deadline = now() + TIME_BUDGET_MS;
  let after = msg.after ?? (["", ""] as [string, string]);
  let waiting = msg.waiting;
  let done = 0;
  while (done < perMessage && now() < deadline) {
    const items = await nextItems(rs, after, perMessage - done);
    if (!items.length) return finishRebuild(s, msg);
    for (const item of items) {
      if (item.kind === "raw" && !held.has(item.source)) {
        const state = await whyNotHeld(s, msg, item.source);
        if (state === "lost") return failLostSource(s, msg, item.source);
        if (state === "elsewhere") {
          log("info", "rebuild_waits", { run_id: msg.run_id, source: item.source });
          await rs.env.JOBS.send({ ...base(msg), run_id: msg.runs.csv, step: "replay", after, waiting }, { delaySeconds: WAIT_SECONDS });
          return;
        }
        // "closed": this rebuild's close finished that source's run already (a retried last message): its payloads were replayed.
      } else if (item.kind === "raw") {
        await replayPayload(rs, msg.runs[item.source], item);
      } else if ((await replayUpload(rs, msg, item, waiting === item.id)) === "continues") {
        // The file goes on in its own messages; the rebuild looks again later, to keep the order.
        await rs.env.JOBS.send(
          { ...base(msg), run_id: msg.runs.csv, step: "replay", after, waiting: item.id },
          { delaySeconds: WAIT_SECONDS },
        );
        return;
      }
      waiting = undefined;
      after = [item.at, item.key];
      done++;
      if (now() >= deadline) break;
    }
  }
  await rs.env.JOBS.send({ ...base(msg), run_id: msg.runs.csv, step: "replay", after });
}

/**
 * The next archived objects after `after`, in (time, key) order: up to `limit` from each list (each
 * read through an index range), merged. A list cut at `limit` is complete only up to its last item,
 * so nothing after the earliest such cut is returned.
 */
async function nextItems(s: Services, [t, k]: [string, string], limit: number): Promise<Item[]> {
  const results = await runBatch<{ id: string; key: string; at: string }>(s.db, [
    ...HTTP_SOURCES.map(
      (source) => sql`SELECT id, key, fetched_at AS at FROM raw_payloads
        WHERE source = ${source} AND fetched_at >= ${t} AND (fetched_at > ${t} OR key > ${k})
        ORDER BY fetched_at, key LIMIT ${limit}`,
    ),
    sql`SELECT upload_id AS id, key, created_at AS at FROM uploads
      WHERE created_at >= ${t} AND (created_at > ${t} OR key > ${k})
      ORDER BY created_at, key LIMIT ${limit}`,
  ]);
  const lists: Item[][] = results.map((r, i) =>
    r.results.map((row) => (i < HTTP_SOURCES.length ? { kind: "raw", source: HTTP_SOURCES[i], ...row } : { kind: "upload", ...row })),
  );
  const bound = lists
    .filter((l) => l.length === limit)
    .map((l) => l[l.length - 1])
    .sort(byTimeAndKey)[0];
  return lists
    .flat()
    .sort(byTimeAndKey)
    .filter((i) => !bound || byTimeAndKey(i, bound) <= 0)
    .slice(0, limit);
}

/** The order SQLite compares text in (UTF-8 bytes, the same as code points), so the cursor and this sort agree. */
function byTimeAndKey(a: { at: string; key: string }, b: { at: string; key: string }) {
  return codePoints(a.at, b.at) || codePoints(a.key, b.key);
}
function codePoints(a: string, b: string) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = (x[i].codePointAt(0) ?? 0) - (y[i].codePointAt(0) ?? 0);
    if (d) return d;
  }
  return x.length - y.length;
}

/**
 * Replays one archived payload into its source's rebuild run, and completes its index row (size,
 * records, digest). What it writes is fenced by the run's source lease: a rebuild that stalled past
 * it while another run took the source over stores nothing (the message is retried, and goes on
 * once the rebuild holds the source again).
 */
async function replayPayload(s: Services, runId: string, item: Extract<Item, { kind: "raw" }>) {
  const fence = fenceStatement(sourceLeaseName(item.source), runId);
  if (!MARKET_PAGE.test(item.key)) return replayReference(s, runId, item, fence);
  const read = await readForReplay(s, runId, item, [`replay-${item.id}`, `skip-${item.id}`]);
  if (!read) return;
  const { body, index } = read;
  const records = Array.isArray(body) ? body.length : null;
  let normalised: ReturnType<(typeof httpSources)[HttpSource]["normalise"]>;
  try {
    normalised = httpSources[item.source].normalise(body, item.at);
  } catch (e) {
    if (!(e instanceof PayloadError)) throw e;
    return skip(s, runId, item, e.message, [fence, index(records)]);
  }
  await storeNormalised(s.db, s.env.KV, {
    source: item.source,
    runId,
    part: `replay-${item.id}`,
    fetched: records ?? 0,
    normalised,
    rawId: item.id,
    fences: [fence],
    also: [index(records)],
  });
}

/**
 * Reference data (exchange rates, contract lists) is stored again as its fetch stored it, in the
 * same time order as the market pages (history in another currency converts at the rates of its
 * time). It counts no records; a part of zeros marks it done, so a redelivered message skips it.
 */
async function replayReference(s: Services, runId: string, item: Extract<Item, { kind: "raw" }>, fence: Statement) {
  const fx = isFxPayload(item.id);
  if (!fx && !isContractPayload(item.id)) return;
  const part = `replay-${item.id}`;
  const read = await readForReplay(s, runId, item, [part]);
  if (!read) return;
  const { body, index } = read;
  const done = [
    fence,
    index(Array.isArray(body) ? body.length : null),
    partRowStatement({ runId, part, counts: NO_RECORDS, rawId: item.id, at: nowIso(), usage: noUsage() }),
  ];
  const stored = fx
    ? await storeFx(s, item.source, runId, body, Date.parse(item.at), done)
    : await replayContracts(s, item.source, item.id, body, [fence]);
  if (!stored.ok) return skip(s, runId, item, stored.error, [fence, done[1]]);
  if (!fx) await runBatch(s.db, done);
}

/**
 * An archived payload read and parsed for replay, with the statement that completes its index row
 * (size, records, digest): none when one of `parts` shows it done already, or when it was skipped
 * (its object gone from R2, its body not JSON).
 */
async function readForReplay(s: Services, runId: string, item: Extract<Item, { kind: "raw" }>, parts: string[]) {
  const replayed = await s.db
    .select({ part: runParts.part })
    .from(runParts)
    .where(and(eq(runParts.runId, runId), inArray(runParts.part, parts)));
  if (replayed.length) return;
  const stream = await readArchived(s.env.BUCKET, item.key);
  if (!stream) return skip(s, runId, item, "the archived object is no longer in R2");
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  const digest = await sha256(bytes);
  const index = (records: number | null) =>
    builder.update(rawPayloads).set({ bytes: bytes.byteLength, records, digest }).where(eq(rawPayloads.id, item.id));
  try {
    return { body: JSON.parse(new TextDecoder().decode(bytes)) as unknown, index };
  } catch (e) {
    return skip(s, runId, item, `malformed JSON (${(e as Error).message})`, [index(null)]);
  }
}

/** A payload that cannot be replayed is recorded as a part of its run (counting nothing), with what it cost so far. */
async function skip(s: Services, runId: string, item: { id: string }, reason: string, also: Statement[] = []) {
  const usage = currentMeter()?.take() ?? noUsage();
  const part = partRowStatement({ runId, part: `skip-${item.id}`, counts: NO_RECORDS, rawId: item.id, at: nowIso(), usage });
  try {
    await runBatch(s.db, [...also, part]);
  } catch (e) {
    currentMeter()?.restore(usage);
    throw e;
  }
  log("warn", "rebuild_skipped", { run_id: runId, raw_id: item.id, reason });
}

/**
 * Ingests one CSV object again, from its first row, in a run of its own (as an upload is), inline.
 * The rebuild's csv run records a part per upload, in the same transaction that resets the upload,
 * so a redelivery resumes the file instead of starting it again. "continues" when the file went on
 * in its own messages (a large file): the rebuild waits for its run to close.
 */
async function replayUpload(s: Services, msg: RebuildMessage, item: Extract<Item, { kind: "upload" }>, waiting: boolean) {
  const marker = `upload-${item.id}`;
  let upload = await s.db.query.uploads.findFirst({ where: eq(uploads.uploadId, item.id) });
  if (!upload) return "done";
  const [started] = await s.db.all<{ part: string }>(sql`SELECT part FROM run_parts WHERE run_id = ${msg.runs.csv} AND part = ${marker}`);
  if (!started) {
    const object = await s.env.BUCKET.head(upload.key);
    const current = upload.runId ? await getRun(s.db, upload.runId) : undefined;
    const stuck = Date.parse(upload.updatedAt) < now() - STUCK_AFTER_MS;
    if (!object || (current && !isFinished(current.status) && !stuck)) {
      // Gone from R2 (nothing to replay), or being ingested right now by its own run: left as it is.
      await s.db.run(partRowStatement({ runId: msg.runs.csv, part: marker, counts: NO_RECORDS, at: nowIso(), usage: noUsage() }));
      return "done";
    }
    if (current && !isFinished(current.status)) await finishRun(s.db, current.runId, "abandoned: a rebuild replays this upload again");
    const run = newRunRow("csv", "replay", "live");
    const at = nowIso();
    await startingRun(s.db, run.runId, () =>
      runBatch(s.db, [
        builder.insert(ingestionRuns).values(run),
        builder
          .update(uploads)
          .set({
            runId: run.runId,
            status: "queued",
            byteOffset: 0,
            rowsDone: 0,
            header: null,
            accepted: 0,
            rejected: 0,
            bytes: object.size,
            etag: object.etag,
            updatedAt: at,
          })
          .where(eq(uploads.uploadId, item.id)),
        partRowStatement({ runId: msg.runs.csv, part: marker, counts: { ...NO_RECORDS, fetched: 1 }, at, usage: noUsage() }),
      ]),
    );
    upload = { ...upload, runId: run.runId, updatedAt: at };
    waiting = false;
  }
  const run = upload.runId ? await getRun(s.db, upload.runId) : undefined;
  if (!run || isFinished(run.status)) return "done";
  // Waiting on the file's own messages, unless they stopped (then it resumes from its checkpoint here).
  if (!waiting || Date.parse(upload.updatedAt) < now() - STUCK_AFTER_MS) {
    await ingestUpload(s, { type: "csv_upload", run_id: run.runId, upload_id: upload.uploadId });
  }
  const after = await getRun(s.db, run.runId);
  return after && !isFinished(after.status) ? "continues" : "done";
}

/** Closes the rebuild's runs (each publishes what it wrote, its checkpoint and map, and releases its source's lease), then the rebuild lease. */
async function finishRebuild(s: Services, msg: RebuildMessage) {
  const ids = SOURCES.map((source) => msg.runs[source]);
  const parts = await s.db.all<{ run_id: string; skipped: number; replayed: number }>(sql`
    SELECT run_id, SUM(part LIKE 'skip-%') AS skipped, SUM(part LIKE 'replay-%') AS replayed FROM run_parts
    WHERE run_id IN (SELECT value FROM json_each(${JSON.stringify(ids)})) GROUP BY run_id`);
  for (const source of SOURCES) {
    const p = parts.find((x) => x.run_id === msg.runs[source]);
    const error =
      p?.skipped && !p.replayed ? `none of the ${p.skipped} archived payloads could be replayed (see the rebuild_skipped logs)` : null;
    await completeRun(s, msg.runs[source], { error, holdsLease: true });
  }
  await releaseLease(s.db, REBUILD_LEASE, holderOf(msg.runs));
  log("info", "rebuild_finished", { runs: msg.runs, skipped: parts.reduce((n, p) => n + (p.skipped ?? 0), 0) });
}

/**
 * Renews the rebuild lease and each source's lease for the rebuild's runs (taking a source's lease
 * once its run has finished or its lease expired), in one round trip: who holds each after, and
 * the runs whose expired leases were taken over.
 */
async function heartbeat(s: Services, msg: RebuildMessage) {
  const names = [REBUILD_LEASE, ...SOURCES.map(sourceLeaseName)];
  const holders = holdersQuery(names);
  const results = await runBatch<HolderRow>(s.db, [
    holders,
    leaseStatement(REBUILD_LEASE, holderOf(msg.runs), REBUILD_LEASE_MS, runIsOpen(msg.runs.csv), REBUILD_LEASE_MS / 2),
    ...SOURCES.map((source) => sourceHeartbeat(source, msg.runs[source])),
    holders,
  ]);
  const before = new Map(results[0].results.map((r) => [r.name, r.holder]));
  const after = new Map(results[results.length - 1].results.map((r) => [r.name, r.holder]));
  const holds = (source: Source) => after.get(sourceLeaseName(source)) === msg.runs[source];
  return {
    held: after.get(REBUILD_LEASE) === holderOf(msg.runs),
    sources: new Set(SOURCES.filter(holds)),
    holders: Object.fromEntries(SOURCES.map((source) => [source, after.get(sourceLeaseName(source)) ?? null])) as Record<
      Source,
      string | null
    >,
    tookOver: SOURCES.flatMap((source) => {
      const previous = before.get(sourceLeaseName(source));
      return previous && previous !== msg.runs[source] && holds(source) ? [previous] : [];
    }),
  };
}

/** Closes runs whose holder stopped, as failed with `reason`, and releases the source leases they hold. */
async function abandonRuns(s: Services, runIds: string[], reason: string) {
  for (const runId of runIds) {
    const run = await getRun(s.db, runId);
    if (!run) continue;
    await finishRun(s.db, runId, reason, { run, also: [releaseStatement(sourceLeaseName(run.source), runId)] });
  }
}

/**
 * The read model's row, which the migration seeds, when it went with the other rows: numbered after
 * the snapshot still in R2 (read-model.ts stores its version with it), so no isolate holding it takes
 * a new snapshot for one it has.
 */
async function restoreReadModelRow(s: Services) {
  if (await s.db.query.readModel.findFirst({ where: eq(readModel.id, 1), columns: { id: true } })) return;
  const newest = await storedSnapshotVersion(s.env.BUCKET);
  await s.db
    .insert(readModel)
    .values({ id: 1, claimed: newest, version: newest, key: null, assets: 0, builtAt: null })
    .onConflictDoNothing();
}

/**
 * KV as the rebuild's replays see it: nothing is read (a map copy made before D1 lost its rows maps ids
 * D1 no longer has, and KV may serve it for a minute after it is replaced), writes go through. Every
 * id is then looked up in D1, the ground truth.
 */
function withoutReads(kv: KVNamespace): KVNamespace {
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "get") return async () => null;
      if (prop === "getWithMetadata") return async () => ({ value: null, metadata: null, cacheStatus: null });
      const v = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}
