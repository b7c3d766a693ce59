import { createRouter } from "../../lib/router";
import * as handlers from "./mappings.handlers";
import * as routes from "./mappings.routes";

export const mappingsRouter = createRouter().openapi(routes.exportMappings, handlers.exportMappings);
