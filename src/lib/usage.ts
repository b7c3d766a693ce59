import { AsyncLocalStorage } from "node:async_hooks";

/** What a request or a run cost, in the units Cloudflare bills (SPEC `usage`). */
export const USAGE_KEYS = ["d1_rows_read", "d1_rows_written", "r2_reads", "r2_writes", "kv_reads", "kv_writes", "queue_messages"] as const;
export type UsageKey = (typeof USAGE_KEYS)[number];
export type Usage = Record<UsageKey, number>;

export const noUsage = (): Usage => ({
  d1_rows_read: 0,
  d1_rows_written: 0,
  r2_reads: 0,
  r2_writes: 0,
  kv_reads: 0,
  kv_writes: 0,
  queue_messages: 0,
});

/** Sums what the bindings report while it is the current meter; `take` hands the sum over and starts again. */
export class Meter {
  usage = noUsage();
  d1Ms = 0;
  /** Usage a message carried in (an earlier job's), while it is in `usage` and not yet handed over. */
  carried: Partial<Usage> | null = null;
  private carriedTaken: Partial<Usage> | null = null;
  add(key: UsageKey, n: number) {
    this.usage[key] += n;
  }
  /** Adds what a message carried in: recorded by whichever write takes it next, or by the message's redelivery. */
  carry(u: Partial<Usage>) {
    for (const k of USAGE_KEYS) this.usage[k] += u[k] ?? 0;
    this.carried = u;
  }
  take(): Usage {
    const out = this.usage;
    this.usage = noUsage();
    this.carriedTaken = this.carried;
    this.carried = null;
    return out;
  }
  /** Puts back what the last `take` handed to a write that did not happen. */
  restore(u: Partial<Usage>) {
    for (const k of USAGE_KEYS) this.usage[k] += u[k] ?? 0;
    this.carried = this.carriedTaken;
  }
}

const current = new AsyncLocalStorage<Meter>();

/** Runs `fn` with `meter` collecting the cost of every binding call made inside it (through any await). */
export const withMeter = <T>(meter: Meter, fn: () => T) => current.run(meter, fn);
/** Runs `fn` with no meter: for the statement that records usage itself. */
export const unmetered = <T>(fn: () => T) => current.exit(fn);

const charge = (key: UsageKey, n = 1) => current.getStore()?.add(key, n);

function chargeD1(meta: D1Meta | undefined) {
  const m = current.getStore();
  if (!m || !meta) return;
  m.add("d1_rows_read", meta.rows_read ?? 0);
  m.add("d1_rows_written", meta.rows_written ?? 0);
  m.d1Ms += meta.duration ?? 0;
}

const unwrap = new WeakMap<object, D1PreparedStatement>();

/**
 * A prepared statement that charges its meta. `raw()` and `first()` carry no meta in D1, so they
 * run as `all()`; raw rows are the row objects' values, as drizzle's own batch path reads them.
 */
function meteredStatement(inner: D1PreparedStatement): D1PreparedStatement {
  const all = async <T>() => {
    const r = await inner.all<T>();
    chargeD1(r.meta);
    return r;
  };
  const stmt = {
    bind: (...values: unknown[]) => meteredStatement(inner.bind(...values)),
    all,
    run: async <T>() => {
      const r = await inner.run<T>();
      chargeD1(r.meta);
      return r;
    },
    first: async <T>(column?: string) => {
      const row = (await all<Record<string, unknown>>()).results[0];
      if (row === undefined) return null;
      return (column === undefined ? row : row[column]) as T;
    },
    raw: async (opts?: { columnNames?: boolean }) => {
      const rows = (await all<Record<string, unknown>>()).results;
      const values = rows.map((r) => Object.values(r));
      return opts?.columnNames ? [rows[0] ? Object.keys(rows[0]) : [], ...values] : values;
    },
  } as unknown as D1PreparedStatement;
  unwrap.set(stmt, inner);
  return stmt;
}

function meteredD1(d1: D1Database): D1Database {
  return new Proxy(d1, {
    get(target, prop) {
      if (prop === "prepare") return (query: string) => meteredStatement(target.prepare(query));
      // A session (read replication) charges the same way: its statements are the binding's own.
      if (prop === "withSession" && typeof target.withSession === "function")
        return (constraint?: string) => meteredD1(target.withSession(constraint as D1SessionConstraint) as unknown as D1Database);
      if (prop === "batch") {
        return async (statements: D1PreparedStatement[]) => {
          const results = await target.batch(statements.map((s) => unwrap.get(s) ?? s));
          for (const r of results) chargeD1(r.meta);
          return results;
        };
      }
      const v = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

type Charge = { key: UsageKey; count?: (args: unknown[]) => number };

/** R2 class A operations (put, list, multipart) are writes; class B (get, head) reads; deletes are free. */
const R2_CHARGES: Record<string, Charge> = {
  get: { key: "r2_reads" },
  head: { key: "r2_reads" },
  put: { key: "r2_writes" },
  list: { key: "r2_writes" },
  createMultipartUpload: { key: "r2_writes" },
};
const KV_CHARGES: Record<string, Charge> = {
  get: { key: "kv_reads" },
  getWithMetadata: { key: "kv_reads" },
  list: { key: "kv_reads" },
  put: { key: "kv_writes" },
  delete: { key: "kv_writes" },
};
const QUEUE_CHARGES: Record<string, Charge> = {
  send: { key: "queue_messages" },
  sendBatch: { key: "queue_messages", count: (a) => (Array.isArray(a[0]) ? a[0].length : 1) },
};

/** A binding whose charged methods add to the current meter before they run. */
function chargingProxy<T extends object>(target: T, charges: Record<string, Charge>): T {
  return new Proxy(target, {
    get(t, prop) {
      const v = Reflect.get(t, prop);
      if (typeof v !== "function") return v;
      const c = typeof prop === "string" ? charges[prop] : undefined;
      if (!c) return v.bind(t);
      return (...a: unknown[]) => {
        charge(c.key, c.count?.(a) ?? 1);
        return v.apply(t, a);
      };
    },
  });
}

// biome-ignore lint/suspicious/noExplicitAny: any message type
type Bindings = { DB: D1Database; KV: KVNamespace; BUCKET: R2Bucket; JOBS: Queue<any> };
const wrapped = new WeakMap<object, object>();
const once = <T extends object>(binding: T, wrap: (b: T) => T): T => {
  let w = wrapped.get(binding) as T | undefined;
  if (!w) {
    w = wrap(binding);
    wrapped.set(binding, w);
    wrapped.set(w, w);
  }
  return w;
};

/** The same env with every billed binding charging the current meter; each binding is wrapped once. */
export function meteredEnv<E extends Bindings>(env: E): E {
  return {
    ...env,
    DB: once(env.DB, meteredD1),
    KV: once(env.KV, (kv) => chargingProxy(kv, KV_CHARGES)),
    BUCKET: once(env.BUCKET, (b) => chargingProxy(b, R2_CHARGES)),
    JOBS: once(env.JOBS, (q) => chargingProxy(q, QUEUE_CHARGES)),
  };
}

/** `Server-Timing` for one request: D1 time and rows read (W3C syntax). */
export const serverTiming = (m: Meter) => `d1;dur=${m.d1Ms.toFixed(2)};desc="rows_read=${m.usage.d1_rows_read}"`;

export const currentMeter = () => current.getStore();

export const addUsage = (a: Usage, b: Partial<Usage>, sign = 1): Usage =>
  Object.fromEntries(USAGE_KEYS.map((k) => [k, a[k] + sign * (b[k] ?? 0)])) as Usage;
export const subtractUsage = (a: Usage, b: Partial<Usage>) => addUsage(a, b, -1);

export const isZero = (u: Usage) => USAGE_KEYS.every((k) => u[k] === 0);

/**
 * Runs `fn` under a fresh meter and returns what it cost (less what it handed over with `take`);
 * the cost is also added to the enclosing meter, so a request's Server-Timing still counts it.
 */
export async function measured<T>(fn: () => Promise<T>): Promise<{ result: T; usage: Usage; carried: Partial<Usage> | null }> {
  const parent = current.getStore();
  const meter = new Meter();
  const result = await withMeter(meter, fn);
  const carried = meter.carried;
  const usage = meter.take();
  if (parent) {
    for (const k of USAGE_KEYS) parent.add(k, usage[k]);
    parent.d1Ms += meter.d1Ms;
  }
  return { result, usage, carried };
}
