// The shared schema ("public"): the tenant registry and what every tenant refers to. Migrated once
// with `mtctl migrate-shared`; never rebased.
import { integer, pgTable, serial, text } from "drizzle-orm/pg-core";

export const plans = pgTable("plans", {
  id: serial("id").primaryKey(),
  name: text("name").notNull(),
});

// mtctl's discovery-sql reads the tenant list from here (multitenant.ini).
export const tenants = pgTable("tenants", {
  id: text("id").primaryKey(),
  planId: integer("plan_id").references(() => plans.id),
});
