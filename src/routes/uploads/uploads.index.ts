import { requireAdmin } from "../../lib/auth";
import { createRouter } from "../../lib/router";
import * as handlers from "./uploads.handlers";
import * as routes from "./uploads.routes";

export const uploadsRouter = createRouter();
uploadsRouter.use("/uploads/csv/*", requireAdmin);
uploadsRouter.openapi(routes.put, handlers.put).openapi(routes.get, handlers.get);
