import { z } from "zod";
import { HTTP_SOURCES } from "../config";

/** Queue messages. Each names the run it belongs to; the work it resumes from lives in D1. */
export const JobMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("fetch_page"), run_id: z.string(), source: z.enum(HTTP_SOURCES), page: z.number().int().min(1) }),
  z.object({ type: z.literal("csv_upload"), run_id: z.string(), upload_id: z.string() }),
  z.object({ type: z.literal("csv_sweep"), run_id: z.string() }),
  z.object({ type: z.literal("replay"), run_id: z.string(), raw_ids: z.array(z.string()).min(1) }),
]);
export type JobMessage = z.infer<typeof JobMessageSchema>;
