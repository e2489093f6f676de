select * from public.tasks, "public"."tasks", "public".tasks, public."tasks", PUBLIC.TASKS, "PUBLIC".tasks,
  U&"p\0075blic".tasks, U&"public" UESCAPE '!' . tasks, public /* c */ . -- d
  tasks, other.public.tasks, public.tasks.id, "x"public.tasks, u&public.tasks, public.plans, public.now();
--> statement-breakpoint
select 'public.tasks', E'public.\'tasks', e'\\', U&'public.tasks', B'10''01', X'ff', N'public.tasks', $1, 1..10, .5e-3;
