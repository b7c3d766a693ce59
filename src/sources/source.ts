import type { Config, HttpSource } from "../config";
import type { Normalised } from "./source-quote";

/** An upstream that answers JSON over HTTP. It knows its API and its records, nothing about storage. */
export interface HttpSourceAdapter {
  name: HttpSource;
  /** Records per page when the upstream pages; null when one request returns everything. */
  perPage: number | null;
  request(config: Config, page: number): { url: string; headers: Record<string, string> };
  requestsPerMinute(config: Config): number;
  /** Turns a parsed body into validated quotes; throws PayloadError when the body is not the expected shape. */
  normalise(body: unknown, fetchedAt: string): Normalised;
}

export class PayloadError extends Error {}
