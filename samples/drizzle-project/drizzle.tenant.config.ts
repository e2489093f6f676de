// drizzle-kit for the tenant schema: one folder, applied to every tenant schema by mtctl.
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./src/tenant/schema.ts",
  out: "./drizzle/tenant",
});
