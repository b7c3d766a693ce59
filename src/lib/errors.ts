import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export const ERROR_STATUS = {
  validation_error: 400,
  unauthorized: 401,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal: 500,
  admin_disabled: 503,
  unavailable: 503,
} as const satisfies Record<string, ContentfulStatusCode>;
export type ErrorCode = keyof typeof ERROR_STATUS;

/** The one error type: thrown anywhere, rendered by the app's onError in the SPEC's error shape. */
export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: unknown[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
  get status() {
    return ERROR_STATUS[this.code];
  }
}

export function errorBody(code: ErrorCode, message: string, details: unknown[], requestId: string) {
  return { error: { code, message, details, request_id: requestId } };
}

/** The SPEC's code for each 4xx status it names (each has exactly one). */
const CODE_FOR_STATUS = new Map<number, ErrorCode>(
  (Object.entries(ERROR_STATUS) as [ErrorCode, number][]).filter(([, status]) => status < 500).map(([code, status]) => [status, code]),
);

/** The table a D1 "no such table" error names, looking through wrapped causes (drizzle wraps D1's error). */
function missingTable(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 5; depth++, e = e.cause) {
    const m = /no such table: ([\w.]+)/.exec(e.message);
    if (m) return m[1];
  }
  return undefined;
}

/**
 * Anything thrown, as the one error type. An HTTPException keeps its 4xx status under the SPEC's code
 * for it (a 4xx the SPEC does not name is a 400 `validation_error`). A missing table means the
 * migrations have not been applied yet (a first deploy creates the database, then migrates): 503
 * `unavailable`, saying so. Everything else is `internal`, with no detail for the client.
 */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof HTTPException && err.status < 500) {
    const code = CODE_FOR_STATUS.get(err.status) ?? "validation_error";
    return new ApiError(code, err.message || code.replaceAll("_", " "));
  }
  const table = missingTable(err);
  if (table)
    return new ApiError("unavailable", `the database has no table "${table}" yet: apply the migrations (npm run db:migrate:remote)`);
  return new ApiError("internal", "internal error; quote the request id when reporting it");
}
