-- Data backfill for the columns added by 0004.
UPDATE "public"."orders" o
SET "total_cents" = s.total, "item_count" = s.items
FROM (
	SELECT "order_id", sum("quantity" * "unit_price_cents") AS total, sum("quantity") AS items
	FROM "public"."order_items"
	GROUP BY "order_id"
) s
WHERE s."order_id" = o."id";
--> statement-breakpoint
UPDATE "public"."orders" SET "total_cents" = 0 WHERE "total_cents" IS NULL;
--> statement-breakpoint
UPDATE "public"."customers" SET "display_name" = split_part("email", '@', 1) WHERE "display_name" IS NULL;
--> statement-breakpoint
ALTER TABLE "public"."orders" ALTER COLUMN "total_cents" SET NOT NULL;
