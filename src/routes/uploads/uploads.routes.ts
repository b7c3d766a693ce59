import { createRoute, z } from "@hono/zod-openapi";
import { adminErrors, errorResponses, jsonEnvelope } from "../../lib/openapi";
import { UploadSchema } from "../../schemas/runs";

export const CSV_TYPES = ["text/csv", "application/csv", "text/plain", "text/tab-separated-values", "application/vnd.ms-excel"];

export const put = createRoute({
  method: "put",
  path: "/uploads/csv/{filename}",
  tags: ["Uploads"],
  summary: "Upload a CSV file for ingestion",
  description:
    "Stores the body in R2 under `uploads/`, records the upload and queues its ingestion. Uploading the same bytes under the same name again answers with the existing upload.",
  security: [{ adminToken: [] }],
  request: {
    params: z.object({
      filename: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$/, "letters, digits, dot, dash, underscore and space only")
        .openapi({
          param: { name: "filename", in: "path" },
          description: "Name to store the file under (kept in the upload record).",
          example: "coins.csv",
        }),
    }),
    body: { required: true, content: { "text/csv": { schema: z.string().openapi({ format: "binary" }) } } },
  },
  responses: {
    202: jsonEnvelope(UploadSchema, "Stored and queued"),
    ...errorResponses("validation_error", ...adminErrors, "payload_too_large", "unsupported_media_type"),
  },
});

export const get = createRoute({
  method: "get",
  path: "/uploads/{upload_id}",
  tags: ["Uploads"],
  summary: "Status of an upload, with its first rejected rows",
  request: {
    params: z.object({
      upload_id: z
        .string()
        .min(1)
        .max(100)
        .openapi({
          param: { name: "upload_id", in: "path" },
          description: "An `upload_id` from PUT /uploads/csv/{filename}.",
          example: "upl_0mwuhtqrz0t4a4r6g1p3n",
        }),
    }),
  },
  responses: { 200: jsonEnvelope(UploadSchema, "The upload"), ...errorResponses("validation_error", "not_found") },
});

export type PutRoute = typeof put;
export type GetRoute = typeof get;
