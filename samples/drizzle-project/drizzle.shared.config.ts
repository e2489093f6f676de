// drizzle-kit for the shared schema ("public"), applied once by `mtctl migrate-shared`.
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./src/shared/schema.ts",
  out: "./drizzle/shared",
});
