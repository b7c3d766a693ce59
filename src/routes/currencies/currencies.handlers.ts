import type { RouteHandler } from "@hono/zod-openapi";
import { currentCurrencies } from "../../db/queries/currencies";
import { cachedJson } from "../../lib/http-cache";
import { type AppEnv, envelope } from "../../lib/router";
import type { ListRoute } from "./currencies.routes";

export const list: RouteHandler<ListRoute, AppEnv> = async (c) => {
  const currencies = await currentCurrencies(c.get("services"));
  return cachedJson(c, envelope(c, [...currencies.values()]));
};
