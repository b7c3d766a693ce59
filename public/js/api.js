// Same-origin JSON API client. Success bodies are {data, metadata} (except /health);
// errors are {error:{code,message,details,request_id}} and become ApiError.
export class ApiError extends Error {
  constructor({ code, message, status, requestId, details }) {
    super(message);
    this.code = code;
    this.status = status;
    this.requestId = requestId;
    this.details = details;
  }
}

export async function request(path, { method = "GET", headers = {}, body, signal, query } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  let res;
  try {
    res = await fetch(url, { method, headers: { accept: "application/json", ...headers }, body, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError({ code: "network_error", message: "The API could not be reached. Check your connection." });
  }
  const requestId = res.headers.get("x-request-id") ?? undefined;
  let json = null;
  const text = await res.text();
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      if (!res.ok)
        throw new ApiError({ code: `http_${res.status}`, message: res.statusText || "Request failed", status: res.status, requestId });
      throw new ApiError({
        code: "bad_response",
        message: "The API answered with something that is not JSON.",
        status: res.status,
        requestId,
      });
    }
  }
  if (!res.ok && !(path === "/health" && json?.status)) {
    const e = json?.error ?? {};
    throw new ApiError({
      code: e.code ?? `http_${res.status}`,
      message: e.message ?? (res.statusText || "Request failed"),
      status: res.status,
      requestId: e.request_id ?? requestId,
      details: e.details,
    });
  }
  return json;
}

/** GET returning {data, metadata}. */
export const getEnvelope = (path, opts) => request(path, opts);

export const getData = async (path, opts) => (await request(path, opts))?.data;

let origin = null;
/** Where this instance's data comes from ("live" or "recorded"), read once from /data's metadata. */
export function dataOrigin(known) {
  if (known) origin = Promise.resolve(known);
  origin ??= request("/data", { query: { page_size: 1 } })
    .then((body) => body?.metadata?.data_origin ?? "live")
    .catch(() => {
      origin = null;
      return "live";
    });
  return origin;
}
