ALTER TYPE "public"."task_status" ADD VALUE 'blocked';--> statement-breakpoint
CREATE SEQUENCE "public"."invoice_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1000 CACHE 1;--> statement-breakpoint
ALTER TABLE "tasks" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "invoice_no" integer DEFAULT nextval('invoice_seq');--> statement-breakpoint
CREATE VIEW "public"."open_tasks" AS (select "id", "title", "status" from "tasks" where "tasks"."status" = 'todo');--> statement-breakpoint
CREATE POLICY "tasks_all" ON "tasks" AS PERMISSIVE FOR ALL TO public USING (true);