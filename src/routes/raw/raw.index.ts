import { createRouter } from "../../lib/router";
import * as handlers from "./raw.handlers";
import * as routes from "./raw.routes";

export const rawRouter = createRouter().openapi(routes.list, handlers.list).openapi(routes.body, handlers.body);
