import { z } from "@hono/zod-openapi";
import { ERROR_STATUS, type ErrorCode } from "./errors";

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      details: z.array(z.unknown()),
      request_id: z.string(),
    }),
  })
  .openapi("Error");

const DESCRIPTIONS: Record<ErrorCode, string> = {
  validation_error: "A parameter or the body is invalid; `details` lists each problem.",
  unauthorized: "Missing or wrong `Authorization: Bearer <ADMIN_TOKEN>`.",
  not_found: "No such resource.",
  conflict: "The source is already running.",
  payload_too_large: "The body exceeds MAX_UPLOAD_BYTES.",
  unsupported_media_type: "The body is not CSV.",
  rate_limited: "Too many requests from this client; see Retry-After.",
  internal: "Unexpected failure (no internals are exposed).",
  admin_disabled: "Writes are disabled because no ADMIN_TOKEN is configured.",
  unavailable: "A dependency (D1) is unreachable.",
};

/** OpenAPI responses for the given error codes, so each route lists how it can fail. */
export function errorResponses(...codes: ErrorCode[]) {
  const out: Record<number, { description: string; content: { "application/json": { schema: typeof ErrorSchema } } }> = {};
  for (const code of [...codes, "rate_limited", "internal"] as ErrorCode[]) {
    const status = ERROR_STATUS[code];
    const prev = out[status]?.description;
    out[status] = {
      description: prev ? `${prev} Or \`${code}\`: ${DESCRIPTIONS[code]}` : `\`${code}\`: ${DESCRIPTIONS[code]}`,
      content: { "application/json": { schema: ErrorSchema } },
    };
  }
  return out;
}
export const adminErrors = ["unauthorized", "admin_disabled"] as const;

export const MetadataSchema = z.object({
  request_id: z.string().openapi({ description: "Equals the x-request-id response header." }),
  api_latency_ms: z.number(),
});
export const PagedMetadataSchema = MetadataSchema.extend({
  page: z.number().int(),
  page_size: z.number().int(),
  total: z.number().int(),
});

/** The success envelope of a route: `data`, and metadata (paging and `extra` fields as the route adds them). */
export function jsonEnvelope<T extends z.ZodTypeAny, M extends z.ZodRawShape = Record<never, never>>(
  data: T,
  description: string,
  paged = false,
  extra?: M,
) {
  const metadata = (paged ? PagedMetadataSchema : MetadataSchema).extend(extra ?? ({} as M));
  return { description, content: { "application/json": { schema: z.object({ data, metadata }) } } };
}

export const PageQuery = {
  page: z.coerce.number().int().min(1).max(100_000).default(1).openapi({ description: "Page number, from 1.", example: 1 }),
  page_size: z.coerce.number().int().min(1).max(250).default(50).openapi({ description: "Items per page, 1 to 250.", example: 50 }),
};
