import { createRoute, z } from "@hono/zod-openapi";
import { SourceSchema } from "../../config";
import { adminErrors, errorResponses, jsonEnvelope } from "../../lib/openapi";
import { RunSchema } from "../../schemas/runs";

const security = [{ adminToken: [] }];
const RunsBody = z.object({ runs: z.array(RunSchema) });

export const runOne = createRoute({
  method: "post",
  path: "/etl/run/{source}",
  tags: ["Ingestion"],
  summary: "Start a run of one source",
  description: "Queues a run. 409 while a run of that source holds its lease.",
  security,
  request: {
    params: z.object({
      source: SourceSchema.openapi({ param: { name: "source", in: "path" }, description: "The source to run.", example: "coingecko" }),
    }),
  },
  responses: { 202: jsonEnvelope(RunSchema, "The queued run"), ...errorResponses("validation_error", ...adminErrors, "conflict") },
});

export const runAll = createRoute({
  method: "post",
  path: "/etl/run-all",
  tags: ["Ingestion"],
  summary: "Start a run of every source",
  description: "One run per source; a source already running is reported with its current run.",
  security,
  responses: { 202: jsonEnvelope(RunsBody, "The runs"), ...errorResponses(...adminErrors) },
});

export const replay = createRoute({
  method: "post",
  path: "/etl/replay",
  tags: ["Ingestion"],
  summary: "Re-normalise archived payloads without calling upstream",
  description: "With `raw_id`, that payload; else the latest archived fetch of `source` (or of every HTTP source).",
  security,
  request: {
    body: {
      required: false,
      content: {
        "application/json": {
          schema: z
            .object({ source: z.enum(["coingecko", "coinpaprika"]).optional(), raw_id: z.string().min(1).max(200).optional() })
            .strict(),
        },
      },
    },
  },
  responses: { 202: jsonEnvelope(RunsBody, "The replay runs"), ...errorResponses("validation_error", ...adminErrors, "not_found") },
});

export const rebuild = createRoute({
  method: "post",
  path: "/etl/rebuild",
  tags: ["Ingestion"],
  summary: "Rebuild the database from the R2 archive",
  description:
    "Replays every raw payload archived in R2 and every CSV object under `uploads/`, in the order they were fetched or uploaded, into the current database: needs nothing from D1 but the migrated schema (R2 is listed, its index rows written again). One replay run per source, done through the queue; each source's lease is held until the rebuild ends, so no run of a source interleaves. Pins are not in the archive: export them first and pin them again after. 409 `conflict` while a rebuild runs.",
  security,
  request: {
    body: { required: false, content: { "application/json": { schema: z.object({}).strict() } } },
  },
  responses: {
    202: jsonEnvelope(RunsBody, "The rebuild's runs, one per source, queued"),
    ...errorResponses("validation_error", ...adminErrors, "conflict"),
  },
});

export const getRun = createRoute({
  method: "get",
  path: "/etl/runs/{run_id}",
  tags: ["Ingestion"],
  summary: "One ingestion run",
  request: {
    params: z.object({
      run_id: z
        .string()
        .min(1)
        .max(100)
        .openapi({ param: { name: "run_id", in: "path" }, description: "A `run_id` from a Run.", example: "run_0mwuh447g01444i03566s" }),
    }),
  },
  responses: { 200: jsonEnvelope(RunSchema, "The run"), ...errorResponses("validation_error", "not_found") },
});

export type RunOneRoute = typeof runOne;
export type RunAllRoute = typeof runAll;
export type ReplayRoute = typeof replay;
export type RebuildRoute = typeof rebuild;
export type GetRunRoute = typeof getRun;
