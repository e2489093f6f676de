DO $$ BEGIN
 CREATE TYPE "public"."status" AS ENUM('a', 'b');
EXCEPTION
 WHEN duplicate_object THEN null;
END $$;
--> statement-breakpoint
DO $$ BEGIN
 ALTER TABLE "tasks" ADD CONSTRAINT "tasks_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;
EXCEPTION
 WHEN duplicate_object THEN null;
END $$;
--> statement-breakpoint
do language plpgsql $x$ begin perform 1 from public.projects; end $x$;
--> statement-breakpoint
CREATE FUNCTION public.f() RETURNS void AS $f$ BEGIN DO $$ BEGIN PERFORM 1 FROM public.projects; END $$; END $f$ LANGUAGE plpgsql;
