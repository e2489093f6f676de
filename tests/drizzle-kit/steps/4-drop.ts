// Step 4: a dropped table — the tenant schema as it stands today (also samples/drizzle-project/src/tenant/schema.ts).
import { eq } from "drizzle-orm";
import { integer, pgEnum, pgSequence, pgTable, pgView, serial, text, timestamp } from "drizzle-orm/pg-core";
import { plans } from "../shared/schema";

export const taskStatus = pgEnum("task_status", ["todo", "doing", "done", "blocked"]);
export const priority = pgEnum("priority", ["low", "high"]);
export const invoiceSeq = pgSequence("invoice_seq", { startWith: 1000, increment: 1 });

export const projects = pgTable("projects", {
  id: serial("id").primaryKey(),
  name: text("name").notNull(),
  description: text("description"),
  planId: integer("plan_id").references(() => plans.id),
});

export const tasks = pgTable("tasks", {
  id: serial("id").primaryKey(),
  projectId: integer("project_id").notNull().references(() => projects.id),
  heading: text("heading").notNull(),
  status: taskStatus("status").notNull().default("todo"),
  priority: priority("priority").notNull().default("low"),
  createdAt: timestamp("created_at", { withTimezone: true }).defaultNow(),
});

export const openTasks = pgView("open_tasks").as((qb) => qb.select().from(tasks).where(eq(tasks.status, "todo")));
