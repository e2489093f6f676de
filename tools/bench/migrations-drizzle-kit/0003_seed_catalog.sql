-- Starter data every tenant gets: a small catalog, customers and their orders.
INSERT INTO "public"."products" ("sku", "title", "price_cents")
SELECT 'SKU-' || lpad(g::text, 4, '0'), 'Product ' || g, 100 + (g * 37) % 9900
FROM generate_series(1, 20) AS g;
--> statement-breakpoint
INSERT INTO "public"."customers" ("email", "name")
SELECT 'customer' || g || '@example.com', 'Customer ' || g
FROM generate_series(1, 25) AS g;
--> statement-breakpoint
INSERT INTO "public"."orders" ("customer_id", "status")
SELECT 1 + (g % 25), CASE WHEN g % 5 = 0 THEN 'shipped' ELSE 'new' END
FROM generate_series(1, 50) AS g;
--> statement-breakpoint
INSERT INTO "public"."order_items" ("order_id", "product_id", "quantity", "unit_price_cents")
SELECT 1 + (g % 50), 1 + (g % 20), 1 + (g % 3), 100 + (g * 37) % 9900
FROM generate_series(1, 150) AS g;
