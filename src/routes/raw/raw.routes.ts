import { createRoute, z } from "@hono/zod-openapi";
import { SourceSchema } from "../../config";
import { errorResponses, jsonEnvelope, PageQuery } from "../../lib/openapi";
import { RawPayloadSchema } from "../../schemas/runs";

const SourceParam = SourceSchema.openapi({
  param: { name: "source", in: "path" },
  description: "The source whose payloads to list.",
  example: "coingecko",
});

export const list = createRoute({
  method: "get",
  path: "/data/raw/{source}",
  tags: ["Raw payloads"],
  summary: "Archived upstream payloads, newest first",
  request: { params: z.object({ source: SourceParam }), query: z.object(PageQuery) },
  responses: { 200: jsonEnvelope(z.array(RawPayloadSchema), "Index of archived payloads", true), ...errorResponses("validation_error") },
});

export const body = createRoute({
  method: "get",
  path: "/data/raw/{source}/{raw_id}",
  tags: ["Raw payloads"],
  summary: "One archived payload, byte for byte as received",
  request: {
    params: z.object({
      source: SourceParam,
      raw_id: z
        .string()
        .min(1)
        .max(200)
        .openapi({
          param: { name: "raw_id", in: "path" },
          description: "An `id` from GET /data/raw/{source}.",
          example: "run_0mwuh447g01444i03566s-page-1",
        }),
    }),
  },
  responses: {
    200: {
      description: "The body as the upstream sent it, with its content type",
      content: { "application/json": { schema: z.unknown() } },
    },
    ...errorResponses("validation_error", "not_found"),
  },
});

export type ListRoute = typeof list;
export type BodyRoute = typeof body;
