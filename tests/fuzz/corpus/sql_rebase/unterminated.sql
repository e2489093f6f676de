select public.tasks from "public".tasks where x = 'never closed public.tasks $$ /* "
