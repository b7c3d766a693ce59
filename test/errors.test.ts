import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app";
import type { Env } from "../src/env";
import { api } from "./helpers";

/** The app with routes that fail in each way a handler or middleware can. */
function failingApp() {
  const app = createApp();
  app.get("/test/http/:status", (c) => {
    throw new HTTPException(Number(c.req.param("status")) as ContentfulStatusCode, { message: `thrown with ${c.req.param("status")}` });
  });
  app.get("/test/http-bare/:status", (c) => {
    throw new HTTPException(Number(c.req.param("status")) as ContentfulStatusCode);
  });
  app.get("/test/crash", () => {
    throw new Error("secret detail");
  });
  app.get("/test/no-table", async (c) => c.json(await c.env.DB.prepare("SELECT * FROM table_not_migrated").all()));
  return app;
}

function call(path: string, method = "GET") {
  return failingApp().fetch(new Request(`http://coinfuse.test${path}`, { method }), env as unknown as Env, createExecutionContext());
}

async function expectError(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  const body = await res.json<{ error: Record<string, unknown> }>();
  expect(body).toEqual({
    error: { code, message: expect.any(String), details: expect.any(Array), request_id: res.headers.get("x-request-id") },
  });
  expect(body.error.request_id).toMatch(/.{8,}/);
  return body.error;
}

describe("errors", () => {
  it.each([
    [400, "validation_error"],
    [401, "unauthorized"],
    [404, "not_found"],
    [409, "conflict"],
    [413, "payload_too_large"],
    [415, "unsupported_media_type"],
    [429, "rate_limited"],
  ])("an HTTPException %i keeps its status under its own code, %s, and its message", async (status, code) => {
    const error = await expectError(await call(`/test/http/${status}`), status, code);
    expect(error.message).toBe(`thrown with ${status}`);
  });

  it("an HTTPException without a message says what its code means", async () => {
    const error = await expectError(await call("/test/http-bare/409"), 409, "conflict");
    expect(error.message).toBe("conflict");
  });

  it("a 4xx the SPEC has no code for is a 400 validation_error", async () => {
    await expectError(await call("/test/http/418"), 400, "validation_error");
  });

  it("a 5xx HTTPException and any other thrown error are a 500 internal that shows no detail", async () => {
    expect((await expectError(await call("/test/http/502"), 500, "internal")).message).not.toContain("thrown");
    expect((await expectError(await call("/test/crash"), 500, "internal")).message).not.toContain("secret");
  });

  it("a table the migrations have not created yet is a 503 unavailable that says to apply them", async () => {
    const error = await expectError(await call("/test/no-table"), 503, "unavailable");
    expect(error.message).toContain('no table "table_not_migrated"');
    expect(error.message).toContain("db:migrate:remote");
  });

  it("an unknown route is a 404 not_found in the same shape as every error, with the request id header", async () => {
    for (const method of ["GET", "POST", "PUT"]) {
      const res = await call("/no-such-route", method);
      const error = await expectError(res, 404, "not_found");
      expect(error).toEqual({
        code: "not_found",
        message: `no route for ${method} /no-such-route`,
        details: [],
        request_id: res.headers.get("x-request-id"),
      });
      expect(res.headers.get("content-type")).toContain("application/json");
      expect(res.headers.get("server-timing")).toContain("d1;dur=");
    }
  });
});

describe("/docs", () => {
  it("is Swagger UI whose scripts and styles all come from this Worker, and they load", async () => {
    const html = await (await api("/docs")).text();
    expect(html).toContain("SwaggerUIBundle");
    expect(html).toContain("/openapi.json");
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(refs.length).toBeGreaterThanOrEqual(3);
    for (const ref of refs) {
      expect(ref.startsWith("/")).toBe(true);
      const res = await api(ref);
      expect(res.status, ref).toBe(200);
      await res.arrayBuffer();
    }
  });
});
