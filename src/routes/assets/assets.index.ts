import { requireAdmin } from "../../lib/auth";
import { createRouter } from "../../lib/router";
import * as handlers from "./assets.handlers";
import * as routes from "./assets.routes";

export const assetsRouter = createRouter();
assetsRouter.use("/assets/*", requireAdmin);
assetsRouter.openapi(routes.pin, handlers.pin);
