// Step 1: the first tenant schema — two enums, two related tables and a table dropped later.
import { integer, pgEnum, pgTable, serial, text, timestamp } from "drizzle-orm/pg-core";

export const taskStatus = pgEnum("task_status", ["todo", "doing", "done"]);
export const priority = pgEnum("priority", ["low", "high"]);

export const projects = pgTable("projects", {
  id: serial("id").primaryKey(),
  name: text("name").notNull(),
});

export const tasks = pgTable("tasks", {
  id: serial("id").primaryKey(),
  projectId: integer("project_id").notNull().references(() => projects.id),
  title: text("title").notNull(),
  status: taskStatus("status").notNull().default("todo"),
  priority: priority("priority").notNull().default("low"),
  createdAt: timestamp("created_at", { withTimezone: true }).defaultNow(),
});

export const notes = pgTable("notes", {
  id: serial("id").primaryKey(),
  body: text("body").notNull(),
});
