import { createRoute, z } from "@hono/zod-openapi";
import { SourceSchema } from "../../config";
import { adminErrors, errorResponses, jsonEnvelope } from "../../lib/openapi";
import { AssetUidParam } from "../data/data.routes";

export const PinBody = z
  .object({
    source: SourceSchema,
    source_id: z.string().min(1).max(200).openapi({ example: "btc-bitcoin" }),
  })
  .strict()
  .openapi("PinMapping");

export const pin = createRoute({
  method: "put",
  path: "/assets/{asset_uid}/mappings",
  tags: ["Assets"],
  summary: "Pin a source id to an asset",
  description: "The pin wins over every automatic matching rule, now and on every later ingestion or replay.",
  security: [{ adminToken: [] }],
  request: { params: AssetUidParam, body: { required: true, content: { "application/json": { schema: PinBody } } } },
  responses: {
    200: jsonEnvelope(
      z.object({
        source: SourceSchema,
        source_id: z.string(),
        asset_uid: z.string(),
        pinned: z.literal(true),
        previous_asset_uid: z.string().nullable(),
      }),
      "The pinned mapping",
    ),
    ...errorResponses("validation_error", ...adminErrors, "not_found"),
  },
});
export type PinRoute = typeof pin;
