import type { RouteHandler } from "@hono/zod-openapi";
import { SOURCES } from "../../config";
import { getRunView, toRun } from "../../db/queries/runs";
import { startRebuild } from "../../ingest/rebuild";
import { payloadsToReplay, startReplays } from "../../ingest/replay";
import { startSourceRun } from "../../ingest/start-run";
import { ApiError } from "../../lib/errors";
import { type AppEnv, envelope } from "../../lib/router";
import type { GetRunRoute, RebuildRoute, ReplayRoute, RunAllRoute, RunOneRoute } from "./etl.routes";

export const runOne: RouteHandler<RunOneRoute, AppEnv> = async (c) => {
  const { source } = c.req.valid("param");
  const result = await startSourceRun(c.get("services"), source, "manual");
  if (!result.started) {
    throw new ApiError("conflict", `${source} is already running${result.runningRunId ? ` (run ${result.runningRunId})` : ""}`, [
      { running_run_id: result.runningRunId },
    ]);
  }
  return c.json(envelope(c, toRun(result.run)), 202);
};

export const runAll: RouteHandler<RunAllRoute, AppEnv> = async (c) => {
  const s = c.get("services");
  const runs = [];
  for (const source of SOURCES) {
    const result = await startSourceRun(s, source, "manual");
    const run = result.started ? toRun(result.run) : result.runningRunId ? await getRunView(s.db, result.runningRunId) : null;
    if (run) runs.push(run);
  }
  return c.json(envelope(c, { runs }), 202);
};

export const replay: RouteHandler<ReplayRoute, AppEnv> = async (c) => {
  const body = c.req.valid("json") ?? {};
  const s = c.get("services");
  const payloads = await payloadsToReplay(s, body.source, body.raw_id);
  if (!payloads.length)
    throw new ApiError("not_found", body.raw_id ? `no archived payload "${body.raw_id}"` : "no archived payloads to replay");
  const runs = await startReplays(s, payloads);
  return c.json(envelope(c, { runs: runs.map(toRun) }), 202);
};

export const rebuild: RouteHandler<RebuildRoute, AppEnv> = async (c) => {
  const result = await startRebuild(c.get("services"));
  if (!result.started) {
    throw new ApiError("conflict", `a rebuild is already running (runs ${result.running.join(", ")})`, [
      { running_run_ids: result.running },
    ]);
  }
  return c.json(envelope(c, { runs: result.runs.map(toRun) }), 202);
};

export const getRun: RouteHandler<GetRunRoute, AppEnv> = async (c) => {
  const { run_id } = c.req.valid("param");
  const run = await getRunView(c.get("services").db, run_id);
  if (!run) throw new ApiError("not_found", `no run "${run_id}"`);
  return c.json(envelope(c, run), 200);
};
