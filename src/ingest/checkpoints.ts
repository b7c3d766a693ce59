import { SOURCES, type Source } from "../config";
import { nowIso } from "../lib/clock";
import type { Checkpoint } from "../schemas/runs";

const key = (source: string) => `checkpoint:${source}`;

/**
 * Checkpoints live in KV for cheap reads at the edge. KV is eventually consistent, so nothing that
 * must be exact (leases, resume offsets, "already ingested") depends on them: those live in D1.
 */
export async function writeCheckpoint(kv: KVNamespace, source: Source, update: Partial<Checkpoint>) {
  const prev = await readCheckpoint(kv, source);
  const next: Checkpoint = { ...prev, ...update, source, updated_at: nowIso() };
  await kv.put(key(source), JSON.stringify(next));
  return next;
}

export async function readCheckpoint(kv: KVNamespace, source: Source): Promise<Checkpoint> {
  const stored = await kv.get<Checkpoint>(key(source), "json");
  return stored ?? { source, cursor: null, last_run_id: null, last_success_at: null, updated_at: null };
}

export async function readCheckpoints(kv: KVNamespace) {
  return Promise.all(SOURCES.map((s) => readCheckpoint(kv, s)));
}
