/**
 * Seams for building interleavings deterministically: a D1 binding (and an R2 bucket) that call a
 * hook after each of their calls has completed and before its caller sees the result, so a test can
 * act between two round trips of a writer (a stall, another writer, a failure).
 */
type Call = { sql: string[]; kind: "batch" | "all" | "raw" | "run" | "first" };
type Hook = (call: Call) => Promise<void> | void;
/** `before` runs before the call reaches D1 (throwing there fails the call with nothing done); `after` once it has completed. */
type Hooks = { before?: Hook; after?: Hook };

const REAL = Symbol("real");
type Wrapped = { [REAL]: D1PreparedStatement; sql: string };

export function hookedD1(d1: D1Database, hooks: Hooks | Hook): D1Database {
  const { before, after: hook = () => {} } = typeof hooks === "function" ? { after: hooks } : hooks;
  const wrap = (real: D1PreparedStatement, sql: string): D1PreparedStatement & Wrapped => {
    const after =
      <K extends "all" | "raw" | "run" | "first">(kind: K) =>
      async (...a: unknown[]) => {
        await before?.({ sql: [sql], kind });
        const out = await (real[kind] as (...x: unknown[]) => Promise<unknown>).apply(real, a);
        await hook({ sql: [sql], kind });
        return out;
      };
    return {
      [REAL]: real,
      sql,
      bind: (...values: unknown[]) => wrap(real.bind(...values), sql),
      all: after("all"),
      raw: after("raw"),
      run: after("run"),
      first: after("first"),
    } as unknown as D1PreparedStatement & Wrapped;
  };
  return {
    prepare: (sql: string) => wrap(d1.prepare(sql), sql),
    batch: async (statements: (D1PreparedStatement & Wrapped)[]) => {
      await before?.({ sql: statements.map((s) => s.sql), kind: "batch" });
      const out = await d1.batch(statements.map((s) => s[REAL] ?? s));
      await hook({ sql: statements.map((s) => s.sql), kind: "batch" });
      return out;
    },
    exec: (q: string) => d1.exec(q),
    dump: () => d1.dump(),
    withSession: (...a: Parameters<D1Database["withSession"]>) => d1.withSession(...a),
  } as unknown as D1Database;
}

/** A promise with its resolve, to hand a turn from one side of an interleaving to the other. */
export function signal<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** An R2 bucket whose put, list and delete call hooks around the real call (as hookedD1 does for D1). */
export function hookedBucket(
  bucket: R2Bucket,
  hooks: { afterPut?: (key: string) => Promise<void> | void; afterHead?: (key: string) => Promise<void> | void },
) {
  return {
    put: async (...a: Parameters<R2Bucket["put"]>) => {
      const out = await bucket.put(...a);
      await hooks.afterPut?.(a[0]);
      return out;
    },
    head: async (key: string) => {
      const out = await bucket.head(key);
      await hooks.afterHead?.(key);
      return out;
    },
    list: (...a: Parameters<R2Bucket["list"]>) => bucket.list(...a),
    delete: (...a: Parameters<R2Bucket["delete"]>) => bucket.delete(...a),
    get: (...a: Parameters<R2Bucket["get"]>) => bucket.get(...a),
  } as unknown as R2Bucket;
}
