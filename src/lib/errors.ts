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
