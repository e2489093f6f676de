// A drizzle user's whole loop with mtctl (issue 13): drizzle-kit generates migrations from
// samples/drizzle-project's schema in several steps, mtctl applies each step to a fleet of tenants
// without anyone editing "public" out of the generated SQL, and after every step the catalog, drizzle-orm,
// drizzle-orm's migrator, mtctl status and drizzle-multitenant's status are checked.
// Run through tests/drizzle-kit/run.sh, which installs the pinned packages and sets:
//   MT_TEST_DATABASE_URL     postgresql:// URL of a maintenance database (superuser)
//   MT_MTCTL                 the mtctl binary
//   MT_DRIZZLE_KIT_MODULES   folder holding node_modules (drizzle-kit, drizzle-orm, pg, drizzle-multitenant)
//   MT_PLUGIN_PATH           optional [plugins] path
//   MT_LOOP_TENANTS          fleet size (default 50)
//   MT_KEEP_DB=1             keep the database and the work folder
import { spawn, spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const sample = path.join(root, "samples", "drizzle-project");
const TABLE = "__drizzle_migrations";

const results = [];
const pass = (name) => { results.push(true); console.log(`ok - ${name}`); };
const fail = (name, why) => {
  results.push(false);
  console.log(`not ok - ${name}`);
  for (const line of String(why?.stack || why).split("\n")) console.log(`    ${line}`);
};
let cleanup = async () => {};
async function finish() {
  await cleanup();
  const passed = results.filter(Boolean).length;
  const failed = results.length - passed;
  const verdict = failed === 0 && passed > 0 ? "PASS" : "FAIL";
  console.log(`drizzle-kit-loop: ${passed} passed, ${failed} failed (${verdict})`);
  process.exit(verdict === "PASS" ? 0 : 1);
}
async function check(name, fn) {
  try { await fn(); pass(name); return true; } catch (e) { fail(name, e); return false; }
}
function eq(actual, expected, what) {
  const a = JSON.stringify(actual), b = JSON.stringify(expected);
  if (a !== b) throw new Error(`${what}:\n  expected ${b}\n  actual   ${a}`);
}

const adminUrl = process.env.MT_TEST_DATABASE_URL;
const mtctlBin = process.env.MT_MTCTL || path.join(root, "build", "bin", "mtctl");
const modules = process.env.MT_DRIZZLE_KIT_MODULES || path.join(root, "build", "drizzle-kit-loop");
const fleetSize = Number(process.env.MT_LOOP_TENANTS || 50);
if (!adminUrl) { fail("environment", "MT_TEST_DATABASE_URL is not set"); await finish(); }

let require, pg, drizzle, migrate, eqOp, tsImport;
try {
  require = createRequire(path.join(modules, "package.json"));
  pg = require("pg");
  ({ drizzle } = require("drizzle-orm/node-postgres"));
  ({ migrate } = require("drizzle-orm/node-postgres/migrator"));
  ({ eq: eqOp } = require("drizzle-orm"));
  // tsx's ESM entry (its exports map sends require() to the CJS build, which cannot load here).
  ({ tsImport } = await import(pathToFileURL(path.join(modules, "node_modules", "tsx", "dist", "esm", "api", "index.mjs")).href));
} catch (e) {
  fail("environment", `cannot load the pinned packages from ${modules}: ${e.message}\n(run tests/drizzle-kit/run.sh, which installs them)`);
  await finish();
}
const drizzleKit = path.join(modules, "node_modules", "drizzle-kit", "bin.cjs");
const refCli = path.join(modules, "node_modules", "drizzle-multitenant", "bin", "drizzle-multitenant.js");

// ---------------------------------------------------------------------------------------------
// The database, the project copy, the configurations
// ---------------------------------------------------------------------------------------------
const quoteIdent = (s) => '"' + s.replace(/"/g, '""') + '"';
const dbName = `mt_dkloop_${process.pid}`;
const dbUrl = (() => { const u = new URL(adminUrl); u.pathname = "/" + dbName; return u.toString(); })();
async function withClient(url, fn, options = {}) {
  const c = new pg.Client({ connectionString: url, ...options });
  await c.connect();
  try { return await fn(c); } finally { await c.end(); }
}
const q = (sql, params = []) => withClient(dbUrl, (c) => c.query(sql, params));

// The project copy sits under the install folder so drizzle-kit's configs resolve "drizzle-kit".
const work = fs.mkdtempSync(path.join(modules, "loop-work-"));
for (const f of ["drizzle.tenant.config.ts", "drizzle.shared.config.ts", "multitenant.ini", "package.json"])
  fs.copyFileSync(path.join(sample, f), path.join(work, f));
fs.cpSync(path.join(sample, "src"), path.join(work, "src"), { recursive: true });
const ini = path.join(work, "multitenant.ini");
if (process.env.MT_PLUGIN_PATH)
  fs.writeFileSync(ini, fs.readFileSync(ini, "utf8").replace("[plugins]\n", `[plugins]\npath = ${process.env.MT_PLUGIN_PATH}\n`));
const tenantFolder = path.join(work, "drizzle", "tenant");
const refConfig = path.join(work, "tenant.config.mjs");
const DISCOVERY = "SELECT id FROM public.tenants ORDER BY id";
fs.writeFileSync(refConfig, `// written by tests/drizzle-kit/loop.mjs
import pg from "pg";
const url = ${JSON.stringify(dbUrl)};
export default {
  connection: { url },
  isolation: { strategy: "schema", schemaNameTemplate: (id) => \`tenant_\${id}\` },
  schemas: { tenant: {} },
  migrations: {
    tenantFolder: ${JSON.stringify(tenantFolder)},
    migrationsTable: ${JSON.stringify(TABLE)},
    tenantDiscovery: async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try { return (await client.query(${JSON.stringify(DISCOVERY)})).rows.map((r) => r.id); } finally { await client.end(); }
    },
  },
};
`);

const childEnv = { ...process.env, DATABASE_URL: dbUrl, NO_COLOR: "1" };
for (const k of Object.keys(childEnv)) if (k === "MT_CONFIG" || /^MT_[A-Z]+__/.test(k)) delete childEnv[k];

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 300_000, cwd: work, env: childEnv });
  return { status: r.status, stdout: r.stdout || "", stderr: r.stderr || "",
           describe: `$ ${what} ${args.join(" ")}\nexit ${r.status}${r.signal ? ` signal ${r.signal}` : ""}\n` +
                     `--- stdout\n${(r.stdout || "").slice(-4000)}\n--- stderr\n${(r.stderr || "").slice(-4000)}` };
}
function mtctl(args, code = 0) {
  const r = run(mtctlBin, ["-c", ini, ...args], "mtctl");
  if (r.status !== code) throw new Error(`expected exit ${code}\n${r.describe}`);
  return r;
}
const mtctlJson = (args) => JSON.parse(mtctl(["--json", ...args]).stdout);
function ref(args) {
  const r = run(process.execPath, [refCli, ...args, "--config", refConfig, "--json"], "drizzle-multitenant");
  if (r.status !== 0) throw new Error(`drizzle-multitenant failed\n${r.describe}`);
  return JSON.parse(r.stdout.slice(r.stdout.indexOf("{")));
}

// drizzle-kit asks "created or renamed?" when a column disappears and another appears; it needs a
// terminal for that, so it runs under script(1)'s pseudo-terminal and the answer is typed once the
// question is on screen (a deadline, not a sleep, bounds the wait).
function generate(config, name, answers = []) {
  return new Promise((resolve, reject) => {
    const cmd = [process.execPath, drizzleKit, "generate", "--config", config, "--name", name].map((a) => `'${a}'`).join(" ");
    const child = spawn("script", ["-qec", cmd, "/dev/null"], { cwd: work, env: { ...childEnv, FORCE_COLOR: "0" } });
    let out = "", from = 0, pending = [...answers], done = false;
    const deadline = setTimeout(() => { child.kill("SIGKILL"); finishWith(new Error(`drizzle-kit generate ${name}: no result within 120 s\n${out.slice(-3000)}`)); }, 120_000);
    const finishWith = (err) => { if (done) return; done = true; clearTimeout(deadline); err ? reject(err) : resolve(out); };
    child.stdout.on("data", (chunk) => {
      out += chunk.toString();
      // Each key is typed once its screen is shown: only output after the previous key counts.
      const next = pending[0];
      if (next && out.indexOf(next.screen, from) >= 0) {
        pending.shift();
        from = out.length;
        child.stdin.write(next.keys);
      }
    });
    child.on("exit", (code) => {
      if (code !== 0) return finishWith(new Error(`drizzle-kit generate ${name}: exit ${code}\n${out.slice(-3000)}`));
      if (pending.length) return finishWith(new Error(`drizzle-kit generate ${name}: never showed "${pending[0].screen}"\n${out.slice(-3000)}`));
      finishWith(null);
    });
  });
}
const DOWN = "\x1b[B";
// "created or renamed?": move to the second entry ("rename column"), then, once it is selected, Return (\r; the prompt ignores \n).
const RENAME_COLUMN = [{ screen: "created or renamed from another column?", keys: DOWN },
                       { screen: "\u276f ~ ", keys: "\r" }];

// ---------------------------------------------------------------------------------------------
// Checks after every step
// ---------------------------------------------------------------------------------------------
const tenants = Array.from({ length: fleetSize }, (_, i) => `t${String(i + 1).padStart(3, "0")}`);
const schemaOf = (id) => `tenant_${id}`;

// Every foreign key, type, sequence and view of the tenant schemas, and what each refers to.
async function catalog() {
  const fks = (await q(`
    SELECT n.nspname AS schema, c.relname AS tbl, con.conname AS name, rn.nspname AS ref_schema, rc.relname AS ref_table
    FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
    WHERE con.contype = 'f' AND n.nspname LIKE 'tenant\\_%' ORDER BY 1, 2, 3`)).rows;
  const types = (await q(`
    SELECT n.nspname AS schema, t.typname AS name, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS labels
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
    GROUP BY 1, 2 ORDER BY 1, 2`)).rows;
  const rels = (await q(`
    SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE (n.nspname LIKE 'tenant\\_%' OR n.nspname = 'public') AND c.relkind IN ('r', 'S', 'v') ORDER BY 1, 2`)).rows;
  // The relations each view reads, through its rewrite rule.
  const viewDeps = (await q(`
    SELECT vn.nspname AS schema, v.relname AS view, array_agg(DISTINCT dn.nspname || '.' || d.relname) AS reads
    FROM pg_class v JOIN pg_namespace vn ON vn.oid = v.relnamespace
    JOIN pg_rewrite r ON r.ev_class = v.oid JOIN pg_depend dep ON dep.objid = r.oid AND dep.classid = 'pg_rewrite'::regclass
    JOIN pg_class d ON d.oid = dep.refobjid AND d.oid <> v.oid JOIN pg_namespace dn ON dn.oid = d.relnamespace
    WHERE v.relkind = 'v' AND vn.nspname LIKE 'tenant\\_%' GROUP BY 1, 2 ORDER BY 1, 2`)).rows;
  // Columns whose type is an enum: the enum's schema.
  const enumCols = (await q(`
    SELECT n.nspname AS schema, c.relname AS tbl, a.attname AS col, tn.nspname AS type_schema, t.typname AS type
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace tn ON tn.oid = t.typnamespace
    WHERE t.typtype = 'e' AND c.relkind = 'r' AND n.nspname LIKE 'tenant\\_%' AND a.attnum > 0 ORDER BY 1, 2, 3`)).rows;
  // Column defaults naming a sequence (serial columns): the sequence's schema.
  const columns = (await q(`
    SELECT table_schema AS schema, table_name AS tbl, column_name AS col FROM information_schema.columns
    WHERE table_schema LIKE 'tenant\\_%' AND table_name IN ('projects', 'tasks', 'notes') ORDER BY 1, 2, ordinal_position`)).rows;
  return { fks, types, rels, viewDeps, enumCols, columns };
}

function expectFleet(cat, step) {
  const per = (rows, id) => rows.filter((r) => r.schema === schemaOf(id));
  const problems = [];
  const wantTables = ["projects", "tasks", ...(step < 4 ? ["notes"] : [])].sort();
  const wantFks = [["projects", "public", "plans"], ["tasks", schemaOf("X"), "projects"]];
  for (const id of tenants) {
    const s = schemaOf(id);
    const tables = per(cat.rels, id).filter((r) => r.kind === "r" && r.name !== TABLE).map((r) => r.name).sort();
    if (JSON.stringify(tables) !== JSON.stringify(wantTables)) problems.push(`${s}: tables ${tables} (want ${wantTables})`);
    const fks = per(cat.fks, id).map((f) => [f.tbl, f.ref_schema === s ? schemaOf("X") : f.ref_schema, f.ref_table]);
    const want = step >= 2 ? wantFks : wantFks.slice(1);
    if (JSON.stringify(fks) !== JSON.stringify(want)) problems.push(`${s}: foreign keys ${JSON.stringify(per(cat.fks, id))}`);
    const types = per(cat.types, id).map((t) => `${t.name}(${t.labels})`);
    const wantTypes = ["priority(low,high)", `task_status(todo,doing,done${step >= 2 ? ",blocked" : ""})`];
    if (JSON.stringify(types) !== JSON.stringify(wantTypes)) problems.push(`${s}: enums ${types}`);
    const enumCols = per(cat.enumCols, id).filter((c) => c.type_schema !== s);
    if (enumCols.length) problems.push(`${s}: columns typed from another schema: ${JSON.stringify(enumCols)}`);
    const seqs = per(cat.rels, id).filter((r) => r.kind === "S" && r.name !== `${TABLE}_id_seq`).map((r) => r.name).sort();
    const wantSeqs = [...(step >= 2 ? ["invoice_seq"] : []), ...(step < 4 ? ["notes_id_seq"] : []), "projects_id_seq", "tasks_id_seq"].sort();
    if (JSON.stringify(seqs) !== JSON.stringify(wantSeqs)) problems.push(`${s}: sequences ${seqs} (want ${wantSeqs})`);
    const views = per(cat.viewDeps, id);
    if (step >= 2 && (views.length !== 1 || views[0].view !== "open_tasks" || JSON.stringify(views[0].reads) !== JSON.stringify([`${s}.tasks`])))
      problems.push(`${s}: views ${JSON.stringify(views)} (want open_tasks reading ${s}.tasks)`);
    const taskCols = per(cat.columns, id).filter((c) => c.tbl === "tasks").map((c) => c.col);
    const title = step >= 3 ? "heading" : "title";
    if (!taskCols.includes(title) || taskCols.includes(step >= 3 ? "title" : "heading")) problems.push(`${s}: tasks columns ${taskCols}`);
  }
  // Nothing of the tenant schema may land in public; mtctl's run ledger lives there by design (SPEC §11).
  const ledger = ["mt_runs", "mt_runs_id_seq", "mt_run_tenants"];
  const leaked = cat.rels.filter((r) => r.schema === "public" && !["plans", "plans_id_seq", "tenants", TABLE, `${TABLE}_id_seq`, ...ledger].includes(r.name));
  if (leaked.length) problems.push(`objects created in public: ${JSON.stringify(leaked)}`);
  const publicTypes = cat.types.filter((t) => t.schema === "public");
  if (publicTypes.length) problems.push(`enums created in public: ${JSON.stringify(publicTypes)}`);
  if (problems.length) throw new Error(problems.slice(0, 12).join("\n") + (problems.length > 12 ? `\n… ${problems.length - 12} more` : ""));
}

// drizzle-orm with the user's own schema module, on one tenant through search_path.
async function useTenant(id, step) {
  const schema = await tsImport(pathToFileURL(path.join(work, "src", "tenant", "schema.ts")).href, import.meta.url);
  const pool = new pg.Pool({ connectionString: dbUrl, max: 1, options: `-c search_path=${schemaOf(id)},public` });
  try {
    const db = drizzle(pool, { schema });
    const [project] = await db.insert(schema.projects).values({ name: `p-${id}-${step}`, ...(step >= 2 ? { planId: 1 } : {}) }).returning();
    const status = step >= 2 ? "blocked" : "doing";
    const text = step >= 3 ? { heading: `h-${id}` } : { title: `t-${id}` };
    await db.insert(schema.tasks).values({ projectId: project.id, status, priority: "high", ...text });
    const rows = await db.select().from(schema.tasks).where(eqOp(schema.tasks.status, status));
    const mine = rows.filter((r) => r.projectId === project.id);
    eq([mine.length, mine[0]?.priority], [1, "high"], `${id}: the task drizzle-orm wrote and read back [count, priority]`);
    const foreign = rows.filter((r) => (r.title ?? r.heading ?? "").endsWith(id) === false);
    eq(foreign.length, 0, `${id}: rows of another tenant visible through drizzle-orm`);
    if (step >= 2) {
      const open = await db.select().from(schema.openTasks);
      eq(open.every((r) => r.status === "todo"), true, `${id}: open_tasks rows`);
      const next = (await pool.query("SELECT nextval('invoice_seq') AS v")).rows[0].v;
      if (Number(next) < 1000) throw new Error(`${id}: invoice_seq gave ${next}`);
    }
  } finally {
    await pool.end();
  }
}

// drizzle-orm's own migrator on a tenant table mtctl wrote: nothing left to run.
async function migratorUpToDate(id) {
  const before = (await q(`SELECT count(*)::int AS n FROM ${quoteIdent(schemaOf(id))}.${TABLE}`)).rows[0].n;
  const pool = new pg.Pool({ connectionString: dbUrl, max: 1, options: `-c search_path=${schemaOf(id)},public` });
  try {
    await migrate(drizzle(pool), { migrationsFolder: tenantFolder, migrationsSchema: schemaOf(id), migrationsTable: TABLE });
  } finally {
    await pool.end();
  }
  const after = (await q(`SELECT count(*)::int AS n FROM ${quoteIdent(schemaOf(id))}.${TABLE}`)).rows[0].n;
  eq(after, before, `${id}: rows in ${TABLE} after drizzle-orm's migrator`);
}

// ---------------------------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------------------------
const STEPS = [
  { file: "1-create.ts", name: "create", answers: [] },
  { file: "2-grow.ts", name: "grow", answers: [] },
  { file: "3-rename.ts", name: "rename_title", answers: RENAME_COLUMN },
  { file: "4-drop.ts", name: "drop_notes", answers: [] },
];

try {
  await withClient(adminUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(dbName)} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${quoteIdent(dbName)}`);
  });
  cleanup = async () => {
    if (process.env.MT_KEEP_DB === "1") { console.log(`# kept database ${dbName} and ${work}`); return; }
    await withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(dbName)} WITH (FORCE)`)).catch(() => {});
    fs.rmSync(work, { recursive: true, force: true });
  };
} catch (e) {
  fail("database", e);
  await finish();
}

const shared = await check("shared schema: drizzle-kit generates it, mtctl migrate-shared applies it unrebased", async () => {
  await generate("drizzle.shared.config.ts", "shared");
  mtctl(["migrate-shared"]);
  const rels = (await q("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1")).rows.map((r) => r.relname);
  eq(rels, [TABLE, "plans", "tenants"], "tables in public");
  await q("INSERT INTO public.plans (name) VALUES ('basic')");
  await q("INSERT INTO public.tenants (id, plan_id) SELECT unnest($1::text[]), 1", [tenants]);
  for (const id of tenants) await q(`CREATE SCHEMA ${quoteIdent(schemaOf(id))}`);
});
if (!shared) await finish();

for (const [i, step] of STEPS.entries()) {
  const n = i + 1;
  fs.copyFileSync(path.join(here, "steps", step.file), path.join(work, "src", "tenant", "schema.ts"));
  const generated = await check(`step ${n} (${step.name}): drizzle-kit generate writes the migration unedited`, async () => {
    await generate("drizzle.tenant.config.ts", step.name, step.answers);
    const sql = fs.readdirSync(tenantFolder).filter((f) => f.endsWith(".sql")).sort();
    eq(sql.length, n, "migration files");
    const text = fs.readFileSync(path.join(tenantFolder, sql[n - 1]), "utf8");
    if (n === 1 && !text.includes('"public"."task_status"')) throw new Error(`expected drizzle-kit to qualify with "public":\n${text}`);
    if (n === 3 && !/RENAME COLUMN "title" TO "heading"/.test(text)) throw new Error(`expected a column rename:\n${text}`);
  });
  if (!generated) break;
  const applied = await check(`step ${n} (${step.name}): mtctl migrate --all applies it to ${fleetSize} tenants`, async () => {
    const r = mtctlJson(["migrate", "--all"]);
    eq([r.summary?.failed, r.summary?.succeeded], [0, fleetSize], `migrate summary [failed, succeeded]\n${JSON.stringify(r).slice(0, 2000)}`);
  });
  if (!applied) break;
  await check(`step ${n} (${step.name}): every tenant's FKs, enums, sequences and views are its own; the shared FK points at public.plans`,
    async () => expectFleet(await catalog(), n));
  await check(`step ${n} (${step.name}): drizzle-orm inserts and selects with the enums on two tenants through search_path`, async () => {
    await useTenant(tenants[0], n);
    await useTenant(tenants[tenants.length - 1], n);
  });
  await check(`step ${n} (${step.name}): drizzle-orm's migrator finds every tenant up to date`, async () => {
    for (const id of tenants) await migratorUpToDate(id);
  });
  await check(`step ${n} (${step.name}): mtctl status and drizzle-multitenant status agree tenant by tenant`, async () => {
    const mine = mtctlJson(["status", "--all"]);
    const theirs = ref(["status"]);
    eq(mine.tenants.map((t) => [t.id, t.applied, t.pending, t.state]), tenants.map((id) => [id, n, 0, "up-to-date"]), "mtctl status");
    eq(theirs.tenants.map((t) => [t.id, t.applied, t.pending, t.status]).sort(), tenants.map((id) => [id, n, 0, "ok"]), "drizzle-multitenant status");
  });
}

await finish();
