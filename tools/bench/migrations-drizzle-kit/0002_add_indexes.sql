CREATE UNIQUE INDEX "customers_email_idx" ON "public"."customers" USING btree ("email");
--> statement-breakpoint
CREATE UNIQUE INDEX "products_sku_idx" ON "public"."products" USING btree ("sku");
--> statement-breakpoint
CREATE INDEX "orders_customer_id_idx" ON "public"."orders" USING btree ("customer_id");
--> statement-breakpoint
CREATE INDEX "orders_status_placed_at_idx" ON "public"."orders" USING btree ("status","placed_at");
--> statement-breakpoint
CREATE INDEX "order_items_order_id_idx" ON "public"."order_items" USING btree ("order_id");
