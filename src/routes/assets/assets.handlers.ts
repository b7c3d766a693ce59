import type { RouteHandler } from "@hono/zod-openapi";
import { resolveUid } from "../../db/queries/assets";
import { ApiError } from "../../lib/errors";
import { type AppEnv, envelope } from "../../lib/router";
import { pinMapping } from "../../unify/pin";
import type { PinRoute } from "./assets.routes";

export const pin: RouteHandler<PinRoute, AppEnv> = async (c) => {
  const { asset_uid } = c.req.valid("param");
  const { source, source_id } = c.req.valid("json");
  const uid = await resolveUid(c.get("services").db, asset_uid);
  if (!uid) throw new ApiError("not_found", `no asset "${asset_uid}"`);
  return c.json(envelope(c, await pinMapping(c.get("services").db, c.get("services").env.BUCKET, uid, source, source_id)), 200);
};
