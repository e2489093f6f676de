ALTER TABLE "public"."orders" ADD COLUMN "total_cents" bigint;
--> statement-breakpoint
ALTER TABLE "public"."orders" ADD COLUMN "item_count" integer DEFAULT 0 NOT NULL;
--> statement-breakpoint
ALTER TABLE "public"."customers" ADD COLUMN "display_name" text;
--> statement-breakpoint
ALTER TABLE "public"."order_items" ADD CONSTRAINT "order_items_quantity_positive" CHECK ("quantity" > 0);
