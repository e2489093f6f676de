// drizzle-multitenant 1.3.5 and mtctl on one database (issue 11, item 5). Run through
// tools/bench/compat_test.sh, which installs the reference (pinned by tools/bench/node/package-lock.json)
// and sets:
//   MT_TEST_DATABASE_URL  postgresql:// URL of a maintenance database (superuser)
//   MT_MTCTL              the mtctl binary
//   MT_COMPAT_NODE_DIR    folder whose node_modules hold drizzle-multitenant 1.3.5 and pg
//   MT_PLUGIN_PATH        optional [plugins] path for the manifest
//   MT_KEEP_DB=1          keep the database and the scratch folder
// Every case compares exact values: outcomes, migration names in order, counts, formats and the
// tracking rows themselves. Prints "ok - CASE" / "not ok - CASE" and a last line
//   compat: <passed> passed, <failed> failed (PASS|FAIL)
// and exits 0 only when every case passed.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const TABLE = "__drizzle_migrations";
const SOURCE_MIGRATIONS = path.join(here, "migrations");

const results = [];
function report(name, ok, why) {
  results.push(ok);
  console.log(`${ok ? "ok" : "not ok"} - ${name}`);
  if (!ok) for (const line of String(why).split("\n")) console.log(`    ${line}`);
}
function finish() {
  const passed = results.filter(Boolean).length;
  const failed = results.length - passed;
  const verdict = failed === 0 && passed > 0 ? "PASS" : "FAIL";
  console.log(`compat: ${passed} passed, ${failed} failed (${verdict})`);
  process.exit(verdict === "PASS" ? 0 : 1);
}
function fatal(what) {
  report("environment", false, what);
  finish();
}

const adminUrl = process.env.MT_TEST_DATABASE_URL || process.env.DATABASE_URL;
const mtctlBin = process.env.MT_MTCTL;
const nodeDir = process.env.MT_COMPAT_NODE_DIR;
if (!adminUrl) fatal("neither MT_TEST_DATABASE_URL nor DATABASE_URL is set");
if (!mtctlBin) fatal("MT_MTCTL is not set");
if (!nodeDir) fatal("MT_COMPAT_NODE_DIR is not set (run tools/bench/compat_test.sh)");
try { fs.accessSync(mtctlBin, fs.constants.X_OK); } catch { fatal(`mtctl not found or not executable at ${mtctlBin}`); }

let pg, refMigrator;
const refCli = path.join(nodeDir, "node_modules", "drizzle-multitenant", "bin", "drizzle-multitenant.js");
try {
  const require = createRequire(path.join(nodeDir, "package.json"));
  pg = require("pg");
  const version = JSON.parse(fs.readFileSync(path.join(nodeDir, "node_modules", "drizzle-multitenant", "package.json"), "utf8")).version;
  if (version !== "1.3.5") fatal(`expected drizzle-multitenant 1.3.5 in ${nodeDir}, found ${version}`);
  // ESM only; its "exports" map names ./migrator, but importing the file by URL needs no resolution.
  refMigrator = await import(pathToFileURL(path.join(nodeDir, "node_modules", "drizzle-multitenant", "dist", "migrator", "index.js")).href);
} catch (e) {
  fatal(`cannot load drizzle-multitenant and pg from ${nodeDir}: ${e.message}`);
}

// ---------------------------------------------------------------------------------------------
// Database, folders, configurations
// ---------------------------------------------------------------------------------------------
const quoteIdent = (s) => '"' + s.replace(/"/g, '""') + '"';
const dbName = `mt_compat_${process.pid}`;
const dbUrl = (() => { const u = new URL(adminUrl); u.pathname = "/" + dbName; return u.toString(); })();

async function withClient(url, fn) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { return await fn(c); } finally { await c.end(); }
}
const q = (sql, params = []) => withClient(dbUrl, (c) => c.query(sql, params));

// The scratch folder sits under nodeDir so that the reference's config file can `import "pg"`.
const work = fs.mkdtempSync(path.join(nodeDir, "compat-work-"));
const folder = path.join(work, "migrations");
const ini = path.join(work, "multitenant.ini");
const refConfig = path.join(work, "tenant.config.mjs");

const DISCOVERY = "SELECT id FROM public.tenants ORDER BY id";
const tenantConfig = {
  connection: { url: dbUrl },
  isolation: { strategy: "schema", schemaNameTemplate: (id) => `tenant_${id}` },
  schemas: { tenant: {} },
};
const discover = async () => (await q(DISCOVERY)).rows.map((r) => r.id);

function writeConfigs() {
  fs.cpSync(SOURCE_MIGRATIONS, folder, { recursive: true });
  const pluginPath = process.env.MT_PLUGIN_PATH || "";
  fs.writeFileSync(ini, [
    "# written by tools/bench/compat_test.mjs",
    "[database]", `url = ${dbUrl}`, "",
    "[isolation]", "schema_template = tenant_{id}", "shared_schema = public", "",
    "[migrations]", `tenant_dir = ${folder}`, `table = ${TABLE}`, "format = auto", "default_format = name",
    "concurrency = 4", "",
    "[plugins]", ...(pluginPath ? [`path = ${pluginPath}`] : []),
    "load = tracking-name, tracking-hash, tracking-drizzle-kit, discovery-sql, retry-exponential", "",
    "[roles]", "discovery = discovery-sql", "retry = retry-exponential", "",
    "[plugin.discovery-sql]", `query = ${DISCOVERY}`, "",
  ].join("\n"));
  // As tools/bench/bench.sh writes it (see tools/bench/REFERENCE.md).
  fs.writeFileSync(refConfig, `// written by tools/bench/compat_test.mjs
import pg from "pg";
const url = ${JSON.stringify(dbUrl)};
export default {
  connection: { url },
  isolation: { strategy: "schema", schemaNameTemplate: (id) => \`tenant_\${id}\` },
  schemas: { tenant: {} },
  migrations: {
    tenantFolder: ${JSON.stringify(folder)},
    migrationsTable: ${JSON.stringify(TABLE)},
    tenantDiscovery: async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return (await client.query(${JSON.stringify(DISCOVERY)})).rows.map((r) => r.id);
      } finally {
        await client.end();
      }
    },
  },
};
`);
}

async function createDatabase() {
  await withClient(adminUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(dbName)} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${quoteIdent(dbName)}`);
  });
  await q("CREATE TABLE public.tenants (id text PRIMARY KEY)");
}

async function dropDatabase() {
  if (process.env.MT_KEEP_DB === "1") {
    console.log(`# kept database ${dbName} and folder ${work}`);
    return;
  }
  await withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(dbName)} WITH (FORCE)`));
  fs.rmSync(work, { recursive: true, force: true });
}

// Tenants exist as empty schemas: the reference's migrate never creates one (REFERENCE.md).
async function addTenants(...ids) {
  for (const id of ids) {
    await q("INSERT INTO public.tenants (id) VALUES ($1)", [id]);
    await q(`CREATE SCHEMA ${quoteIdent("tenant_" + id)}`);
  }
}

// The folder as both tools read it: every *.sql file, by leading integer, hash = sha256 of the text.
function folderMigrations() {
  return fs.readdirSync(folder).filter((f) => f.endsWith(".sql"))
    .map((f) => ({ name: f.slice(0, -4), n: parseInt(f, 10), hash: createHash("sha256").update(fs.readFileSync(path.join(folder, f), "utf8")).digest("hex") }))
    .sort((a, b) => a.n - b.n || (a.name < b.name ? -1 : 1));
}
const names = () => folderMigrations().map((m) => m.name);
const hashOf = (name) => folderMigrations().find((m) => m.name === name).hash;

// ---------------------------------------------------------------------------------------------
// The two tools
// ---------------------------------------------------------------------------------------------
// Environment for child processes without the caller's manifest overrides (MT_CONFIG, MT_*__*).
const childEnv = Object.fromEntries(Object.entries(process.env)
  .filter(([k]) => k !== "MT_CONFIG" && !/^MT_[A-Z0-9_]+__/.test(k)));

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 180_000, cwd: work, env: childEnv });
  const tail = (s) => (s || "").trim().split("\n").slice(-20).join("\n");
  const describe = `$ ${what} ${args.join(" ")}\nexit ${r.status}${r.error ? ` (${r.error.message})` : ""}${r.signal ? ` signal ${r.signal}` : ""}` +
    (tail(r.stdout) ? `\nstdout:\n${tail(r.stdout)}` : "") + (tail(r.stderr) ? `\nstderr:\n${tail(r.stderr)}` : "");
  return { status: r.status, stdout: r.stdout || "", stderr: r.stderr || "", describe };
}
function parseJson(r) {
  try { return JSON.parse(r.stdout); } catch (e) { throw new Error(`stdout is not one JSON document (${e.message})\n${r.describe}`); }
}

// mtctl with --json; expects exit `code` and returns the document.
function mtctl(args, code = 0) {
  const r = run(mtctlBin, ["-c", ini, "--json", "--no-color", "--no-progress", ...args], "mtctl");
  if (r.status !== code) throw new Error(`expected exit ${code}\n${r.describe}`);
  return parseJson(r);
}
let lastRefExit = null;
// The reference's CLI with --json; expects exit `code` and returns the document.
function ref(args, code = 0) {
  const r = run(process.execPath, [refCli, ...args, "-c", refConfig, "--json"], "drizzle-multitenant");
  // "any": the caller compares the per-tenant results first (a clearer message), then lastRefExit.
  lastRefExit = r.status;
  if (code !== "any" && r.status !== code) throw new Error(`expected exit ${code}\n${r.describe}`);
  return parseJson(r);
}
// The reference's library API: the CLI cannot migrate part of a folder or pick a table format.
function refApi(options = {}) {
  return refMigrator.createMigrator(tenantConfig, { migrationsFolder: folder, migrationsTable: TABLE, tenantDiscovery: discover, ...options });
}
async function refLoad(api) { return api.loadMigrations(); }

// ---------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------
const show = (x) => JSON.stringify(x);
class Failure extends Error {}
function assert(cond, msg) { if (!cond) throw new Failure(msg); }
function eq(got, want, what) {
  assert(show(got) === show(want), `${what}:\n  got      ${show(got)}\n  expected ${show(want)}`);
}
// How the reference names a record: by name in the name format, else by hash (its identifier).
const refIdentifier = (format, record) => (format === "name" ? record.name : record.hash);
const byId = (list, key, id, what) => {
  const found = list.filter((x) => x[key] === id);
  assert(found.length === 1, `${what}: ${found.length} entries for tenant ${id} (expected 1) in ${show(list)}`);
  return found[0];
};

// Every row of a tenant's tracking table as it is stored (timestamps as PostgreSQL renders them).
async function trackingRows(id) {
  const schema = "tenant_" + id;
  const cols = (await q(`SELECT column_name, data_type FROM information_schema.columns
                        WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, [schema, TABLE])).rows;
  if (cols.length === 0) return { columns: null, rows: [] };
  const rows = (await q(`SELECT to_jsonb(t) AS r FROM ${quoteIdent(schema)}.${quoteIdent(TABLE)} t ORDER BY id`)).rows.map((x) => x.r);
  return { columns: cols.map((c) => `${c.column_name} ${c.data_type}`), rows };
}
async function userTables(id) {
  return (await q(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name <> $2 ORDER BY 1`,
    ["tenant_" + id, TABLE])).rows.map((r) => r.table_name);
}
const ALL_TABLES = ["customers", "order_items", "orders", "products"];

// The state every migration of tools/bench/migrations leaves, each exactly once.
async function assertFullyMigrated(id) {
  const s = quoteIdent("tenant_" + id);
  eq(await userTables(id), ALL_TABLES, `tables of tenant_${id}`);
  const r = (await q(`SELECT (SELECT count(*) FROM ${s}.products)::int AS products, (SELECT count(*) FROM ${s}.customers)::int AS customers,
      (SELECT count(*) FROM ${s}.orders)::int AS orders, (SELECT count(*) FROM ${s}.order_items)::int AS items,
      (SELECT count(*) FROM ${s}.orders WHERE item_count = 0)::int AS unfilled,
      (SELECT count(*) FROM ${s}.customers WHERE display_name IS NULL)::int AS no_display`)).rows[0];
  eq(r, { products: 20, customers: 25, orders: 50, items: 150, unfilled: 0, no_display: 0 }, `row counts in tenant_${id} (seed once, backfill done)`);
}

const REF_NAME_COLUMNS = ["id integer", "name character varying", "applied_at timestamp with time zone"];

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------
const passedCases = new Set();
async function check(name, fn, needs = []) {
  const missing = needs.filter((n) => !passedCases.has(n));
  if (missing.length) { report(name, false, `not run: depends on failed case(s): ${missing.join("; ")}`); return; }
  try {
    await fn();
    passedCases.add(name);
    report(name, true);
  } catch (e) {
    report(name, false, e instanceof Failure ? e.message : (e && e.stack) || e);
  }
}

const ALL = [
  "0000_create_customers", "0001_create_orders", "0002_add_indexes",
  "0003_seed_catalog", "0004_alter_orders_customers", "0005_backfill_totals",
];

const C_REF_FIRST = "migrate, reference first: drizzle-multitenant migrates some tenants / some migrations, mtctl finishes";
const C_MT_FIRST = "migrate, mtctl first: drizzle-multitenant sees everything applied and applies nothing (name, hash, drizzle-kit tables)";
const C_MT_PARTIAL = "migrate, mtctl --to: drizzle-multitenant applies exactly the rest into mtctl's name table";
const C_MT_PARTIAL_HASH = "migrate, mtctl --to: drizzle-multitenant applies exactly the rest into mtctl's hash and drizzle-kit tables";
const C_MARK_MT = "mark-applied: mtctl migrate --mark-applied read back by drizzle-multitenant";
const C_MARK_REF = "mark-applied: drizzle-multitenant migrate --mark-applied / markAsApplied read back by mtctl";
const C_STATUS = "status: mtctl status and drizzle-multitenant status agree tenant by tenant (applied, pending, pending names, state)";
const C_SYNC_STATUS = "sync --status: mtctl sync and drizzle-multitenant sync --status agree tenant by tenant (in sync, missing, orphans)";
const C_FORMATS = "format: drizzle-multitenant detects the tracking format mtctl reports, tenant by tenant";
const C_SYNC = "sync after a rename, a delete and a manual apply (the reference's name and hash tables): mtctl sync --mark-missing --clean-orphans, then drizzle-multitenant sees them in sync";
const C_SYNC_RENAME = "sync after a rename in mtctl's own name table: drizzle-multitenant sees it in sync after mtctl's repair";
const C_RENAME_MARK = "rename only (git mv, same content) in mtctl's name tables: mtctl sync reports it renamed, mtctl migrate runs nothing, and after mtctl sync --mark-missing drizzle-multitenant shows the tenants up to date";
const C_CONVERT_ROWS = "convert-format round trips keep each tracking row's id, name, hash and timestamp";
const C_FLEET_END = "status and sync over the whole fleet at the end (renames, deletes, new files unrepaired): both tools agree tenant by tenant";
const C_CONVERT_READ = "convert-format round trips: drizzle-multitenant reads the same applied set, missing and orphans after every step";

// Case 1 -----------------------------------------------------------------------------------
async function caseRefFirst() {
  await addTenants("ra1", "ra2", "ra3");
  const r1 = ref(["migrate", "--tenants", "ra1"]);
  eq(r1.results.map((x) => [x.tenantId, x.success, x.appliedMigrations, x.format]), [["ra1", true, ALL, "name"]], "reference migrate --tenants ra1");
  const api = refApi();
  const part = await api.migrateTenant("ra2", (await refLoad(api)).slice(0, 3));
  eq([part.success, part.appliedMigrations, part.error], [true, ALL.slice(0, 3), undefined], "reference migrateTenant(ra2, first three migrations)");

  const before = await trackingRows("ra1");
  eq(before.columns, REF_NAME_COLUMNS, "columns of the reference's table in tenant_ra1");
  const doc = mtctl(["migrate", "--tenants", "ra1,ra2,ra3"]);
  eq(doc.tenants.map((t) => [t.id, t.outcome, t.migrations, t.format]),
    [["ra1", "up-to-date", [], "name"], ["ra2", "migrated", ALL.slice(3), "name"], ["ra3", "migrated", ALL, "name"]],
    "mtctl migrate --tenants ra1,ra2,ra3: [id, outcome, migrations, format]");
  eq(doc.summary.migrations_applied, 9, "mtctl summary.migrations_applied");
  eq(await trackingRows("ra1"), before, "tenant_ra1's table after mtctl (it must not change a table it has nothing to add to)");
  for (const id of ["ra1", "ra2", "ra3"]) {
    const t = await trackingRows(id);
    eq(t.rows.map((r) => [r.id, r.name]), ALL.map((n, i) => [i + 1, n]), `tracking rows (id, name) of tenant_${id}`);
    await assertFullyMigrated(id);
  }
  eq((await trackingRows("ra2")).columns, REF_NAME_COLUMNS, "tenant_ra2 keeps the reference's layout");
  // And the reference, asked again, agrees there is nothing left.
  const again = ref(["migrate", "--tenants", "ra1,ra2,ra3", "--dry-run"]);
  eq(again.results.map((x) => [x.tenantId, x.success, x.appliedMigrations]),
    [["ra1", true, []], ["ra2", true, []], ["ra3", true, []]], "reference migrate --dry-run afterwards");
}

// Case 2 -----------------------------------------------------------------------------------
async function caseMtFirst() {
  await addTenants("mb1", "mb2", "mb3");
  const runs = [
    [["migrate", "--tenant", "mb1"], "mb1", "name"],
    [["--migrations.default_format=hash", "migrate", "--tenant", "mb2"], "mb2", "hash"],
    [["--migrations.default_format=drizzle-kit", "migrate", "--tenant", "mb3"], "mb3", "drizzle-kit"],
  ];
  for (const [args, id, format] of runs) {
    const doc = mtctl(args);
    eq(doc.tenants.map((t) => [t.id, t.outcome, t.migrations, t.format]), [[id, "migrated", ALL, format]], `mtctl ${args.join(" ")}`);
  }
  const before = {};
  for (const id of ["mb1", "mb2", "mb3"]) before[id] = await trackingRows(id);
  const dry = ref(["migrate", "--tenants", "mb1,mb2,mb3", "--dry-run"]);
  eq(dry.results.map((x) => [x.tenantId, x.success, x.appliedMigrations]),
    [["mb1", true, []], ["mb2", true, []], ["mb3", true, []]], "reference migrate --dry-run on mtctl's tables: [tenant, success, to apply]");
  const real = ref(["migrate", "--tenants", "mb1,mb2,mb3"]);
  eq(real.results.map((x) => [x.tenantId, x.success, x.appliedMigrations]),
    [["mb1", true, []], ["mb2", true, []], ["mb3", true, []]], "reference migrate on mtctl's tables");
  for (const id of ["mb1", "mb2", "mb3"]) {
    eq(await trackingRows(id), before[id], `tenant_${id}'s table after the reference's migrate`);
    await assertFullyMigrated(id);
  }
}

// Case 3 -----------------------------------------------------------------------------------
// mtctl stops after 0002 (--to) in a table it creates; the reference applies exactly the rest into
// that table, and mtctl then reads the table as complete.
async function mtPartial(formats) {
  await addTenants(...Object.keys(formats));
  for (const [id, format] of Object.entries(formats)) {
    const doc = mtctl([`--migrations.default_format=${format}`, "migrate", "--tenant", id, "--to", "0002_add_indexes"]);
    eq(doc.tenants.map((t) => [t.id, t.outcome, t.migrations, t.format]), [[id, "migrated", ALL.slice(0, 3), format]], `mtctl migrate --tenant ${id} --to 0002_add_indexes (${format})`);
  }
  const ids = Object.keys(formats).join(",");
  const doc = ref(["migrate", "--tenants", ids], "any");
  eq(doc.results.map((x) => [x.tenantId, x.success, x.appliedMigrations, x.error]),
    Object.keys(formats).map((id) => [id, true, ALL.slice(3), undefined]), `reference migrate --tenants ${ids}: [tenant, success, applied, error]`);
  eq(lastRefExit, 0, `exit code of reference migrate --tenants ${ids}`);
  const st = mtctl(["status", "--tenants", ids]);
  eq(st.tenants.map((t) => [t.id, t.format, t.state, t.applied, t.pending, t.orphans]),
    Object.entries(formats).map(([id, format]) => [id, format, "up-to-date", 6, 0, 0]), "mtctl status afterwards");
  for (const id of Object.keys(formats)) await assertFullyMigrated(id);
}

// Case 4 -----------------------------------------------------------------------------------
async function caseMarkMtctl() {
  await addTenants("mk1", "mk2");
  let doc = mtctl(["migrate", "--tenant", "mk1", "--mark-applied"]);
  eq(doc.tenants.map((t) => [t.id, t.outcome, t.migrations]), [["mk1", "migrated", ALL]], "mtctl migrate --tenant mk1 --mark-applied");
  doc = mtctl(["migrate", "--tenant", "mk2", "--mark-applied", "--to", "0001_create_orders"]);
  eq(doc.tenants.map((t) => [t.id, t.outcome, t.migrations]), [["mk2", "migrated", ALL.slice(0, 2)]], "mtctl migrate --tenant mk2 --mark-applied --to 0001_create_orders");
  const st = ref(["status"]);
  eq(["mk1", "mk2"].map((id) => byId(st.tenants, "id", id, "reference status")).map((t) => [t.id, t.format, t.applied, t.pending, t.status, t.pendingMigrations]),
    [["mk1", "name", 6, 0, "ok", []], ["mk2", "name", 2, 4, "behind", ALL.slice(2)]], "reference status of the marked tenants");
  const m = ref(["migrate", "--tenants", "mk1"]);
  eq(m.results.map((x) => [x.tenantId, x.success, x.appliedMigrations]), [["mk1", true, []]], "reference migrate --tenants mk1 after mtctl's mark-applied");
  eq(await userTables("mk1"), [], "tables in tenant_mk1 (nothing was executed)");
  eq(await userTables("mk2"), [], "tables in tenant_mk2 (nothing was executed)");
}

// Case 5 -----------------------------------------------------------------------------------
async function caseMarkReference() {
  await addTenants("mr1", "mr2", "mr3");
  const r = ref(["migrate", "--tenants", "mr1", "--mark-applied"]);
  eq(r.results.map((x) => [x.tenantId, x.success, x.appliedMigrations, x.format]), [["mr1", true, ALL, "name"]], "reference migrate --tenants mr1 --mark-applied");
  for (const [id, tableFormat] of [["mr2", "hash"], ["mr3", "drizzle-kit"]]) {
    const res = await refApi({ tableFormat }).markAsApplied(id);
    eq([res.success, res.appliedMigrations, res.format, res.error], [true, ALL, tableFormat, undefined], `reference markAsApplied(${id}) with tableFormat ${tableFormat}`);
  }
  const st = mtctl(["status", "--tenants", "mr1,mr2,mr3"]);
  eq(st.tenants.map((t) => [t.id, t.format, t.state, t.applied, t.pending, t.orphans, t.pending_migrations]),
    [["mr1", "name", "up-to-date", 6, 0, 0, []], ["mr2", "hash", "up-to-date", 6, 0, 0, []], ["mr3", "drizzle-kit", "up-to-date", 6, 0, 0, []]],
    "mtctl status of the tenants the reference marked");
  const before = {};
  for (const id of ["mr1", "mr2", "mr3"]) before[id] = await trackingRows(id);
  const doc = mtctl(["migrate", "--tenants", "mr1,mr2,mr3"]);
  eq(doc.tenants.map((t) => [t.id, t.outcome, t.migrations]), [["mr1", "up-to-date", []], ["mr2", "up-to-date", []], ["mr3", "up-to-date", []]],
    "mtctl migrate after the reference's mark-applied");
  for (const id of ["mr1", "mr2", "mr3"]) {
    eq(await trackingRows(id), before[id], `tenant_${id}'s table after mtctl migrate`);
    eq(await userTables(id), [], `tables in tenant_${id} (nothing was executed)`);
  }
}

// Case 6 and 7 -----------------------------------------------------------------------------
// Both tools over the whole fleet so far, plus a tenant without a table and the reference's own
// hash and drizzle-kit tables part-way.
const REF_STATUS = { ok: ["up-to-date"], behind: ["behind", "no-table"] };
async function caseStatus() {
  await addTenants("st0", "st1", "st2");
  const api = async (tableFormat, id, k) => {
    const m = refApi({ tableFormat });
    const res = await m.migrateTenant(id, (await refLoad(m)).slice(0, k));
    eq([res.success, res.appliedMigrations], [true, ALL.slice(0, k)], `reference migrateTenant(${id}, first ${k}) as ${tableFormat}`);
  };
  await api("hash", "st1", 4);
  await api("drizzle-kit", "st2", 1);
  const mine = mtctl(["status", "--all"]);
  const theirs = ref(["status"]);
  eq(mine.tenants.map((t) => t.id), await discover(), "mtctl status: tenants");
  eq(theirs.tenants.map((t) => t.id), await discover(), "reference status: tenants");
  const rows = [];
  for (const t of mine.tenants) {
    const r = byId(theirs.tenants, "id", t.id, "reference status");
    const a = { applied: t.applied, pending: t.pending, pendingMigrations: t.pending_migrations };
    const b = { applied: r.applied, pending: r.pending, pendingMigrations: r.pendingMigrations };
    if (show(a) !== show(b) || !REF_STATUS[r.status]?.includes(t.state) || t.orphans !== 0)
      rows.push(`${t.id}: mtctl ${show({ ...a, state: t.state, orphans: t.orphans })}\n    ${" ".repeat(t.id.length)}  reference ${show({ ...b, status: r.status, error: r.error })}`);
  }
  assert(rows.length === 0, `${rows.length} of ${mine.tenants.length} tenants disagree:\n  ${rows.join("\n  ")}`);
  const expect = { st0: ["name", 0, 6, "no-table"], st1: ["hash", 4, 2, "behind"], st2: ["drizzle-kit", 1, 5, "behind"], ra1: ["name", 6, 0, "up-to-date"], mk2: ["name", 2, 4, "behind"] };
  for (const [id, want] of Object.entries(expect)) {
    const t = byId(mine.tenants, "id", id, "mtctl status");
    eq([t.format, t.applied, t.pending, t.state], want, `mtctl status of ${id} [format, applied, pending, state]`);
  }
}

async function caseSyncStatus() {
  const mine = mtctl(["sync", "--all"]);
  const theirs = ref(["sync", "--status"]);
  eq(theirs.tenants.map((t) => t.id), mine.tenants.map((t) => t.id), "tenants in both sync reports");
  const rows = [];
  for (const t of mine.tenants) {
    const r = byId(theirs.tenants, "id", t.id, "reference sync --status");
    const a = { inSync: t.in_sync, missing: t.missing, orphans: t.orphans.map((o) => refIdentifier(t.format, o)) };
    const b = { inSync: r.inSync, missing: r.missing, orphans: r.orphans };
    if (show(a) !== show(b) || t.edited.length !== 0) rows.push(`${t.id}: mtctl ${show(a)} edited ${t.edited.length}\n    reference ${show(b)}`);
  }
  assert(rows.length === 0, `${rows.length} of ${mine.tenants.length} tenants disagree:\n  ${rows.join("\n  ")}`);
  const st1 = byId(mine.tenants, "id", "st1", "mtctl sync");
  eq([st1.in_sync, st1.missing, st1.orphans], [false, ALL.slice(4), []], "mtctl sync of st1 [in_sync, missing, orphans]");
}

// Both tools name the same tracking format for every tenant. The one documented difference: for a
// schema without a table, mtctl names the format it would create (default_format), the reference null.
async function caseFormats() {
  const mine = mtctl(["status", "--all"]);
  const theirs = ref(["status"]);
  const rows = [];
  for (const t of mine.tenants) {
    const r = byId(theirs.tenants, "id", t.id, "reference status");
    const want = t.state === "no-table" ? null : t.format;
    if (r.format !== want) rows.push(`${t.id}: mtctl ${show(t.format)} (${t.state}), reference ${show(r.format)}, expected ${show(want)}`);
  }
  assert(rows.length === 0, `${rows.length} of ${mine.tenants.length} tenants disagree on the format:\n  ${rows.join("\n  ")}`);
  const st0 = byId(mine.tenants, "id", "st0", "mtctl status");
  eq([st0.state, st0.format], ["no-table", "name"], "mtctl status of st0 (no table) [state, format]");
}

// Case 8a ----------------------------------------------------------------------------------
// Only a rename (the folder is restored afterwards, so case 8 starts from the same folder).
// Before the repair the reference sees the new name pending in mtctl's name table (it reads it by
// name) and would run the file again; after mtctl sync --mark-missing it sees the tenants up to date.
const RN = ["rn1", "rn2"];
async function caseRenameMark() {
  await addTenants(...RN);
  const doc = mtctl(["migrate", "--tenants", RN.join(",")]);
  eq(doc.tenants.map((t) => [t.id, t.outcome, t.format, t.migrations]), RN.map((id) => [id, "migrated", "name", ALL]), "mtctl migrate --tenants rn1,rn2");
  fs.renameSync(path.join(folder, RENAMED_FROM + ".sql"), path.join(folder, RENAMED_TO + ".sql"));
  try {
    const files = names();
    eq(files, [...ALL.slice(0, 4), RENAMED_TO, ALL[5]], "the folder after the rename");
    const renamed = [{ from: RENAMED_FROM, to: RENAMED_TO }];
    const refStatus = (what) => RN.map((id) => byId(what.tenants, "id", id, "reference status")).map((t) => [t.id, t.status, t.applied, t.pending, t.pendingMigrations]);
    eq(refStatus(ref(["status"])), RN.map((id) => [id, "behind", 6, 1, [RENAMED_TO]]), "reference status before the repair [tenant, status, applied, pending, pendingMigrations]");
    const before = mtctl(["sync", "--tenants", RN.join(",")]);
    eq(before.tenants.map((t) => [t.id, t.in_sync, t.missing, t.orphans, t.renamed]), RN.map((id) => [id, false, [], [], renamed]),
      "mtctl sync before the repair [tenant, in_sync, missing, orphans, renamed]");
    eq(mtctl(["migrate", "--tenants", RN.join(",")]).summary.migrations_applied, 0, "mtctl migrate after the rename: migrations applied");
    const fixed = mtctl(["sync", "--mark-missing", "--tenants", RN.join(",")]);
    eq(fixed.tenants.map((t) => [t.id, t.outcome, t.marked, t.cleaned, t.rewritten]), RN.map((id) => [id, "repaired", [], [], renamed]),
      "mtctl sync --mark-missing [tenant, outcome, marked, cleaned, rewritten]");
    for (const id of RN)
      // The rewritten record is a new row (the last id), with the old row's hash and timestamp.
      eq((await trackingRows(id)).rows.map((r) => [r.name, r.hash]).sort((a, b) => files.indexOf(a[0]) - files.indexOf(b[0])),
        files.map((n) => [n, hashOf(n)]), `tracking rows of tenant_${id} after the repair [name, hash]`);
    eq(refStatus(ref(["status"])), RN.map((id) => [id, "ok", 6, 0, []]), "reference status after mtctl sync --mark-missing [tenant, status, applied, pending, pendingMigrations]");
    const sync = ref(["sync", "--status"]);
    eq(RN.map((id) => byId(sync.tenants, "id", id, "reference sync --status")).map((t) => [t.id, t.inSync, t.missing, t.orphans]),
      RN.map((id) => [id, true, [], []]), "reference sync --status after the repair [tenant, inSync, missing, orphans]");
    const dry = ref(["migrate", "--tenants", RN.join(","), "--dry-run"]);
    eq(RN.map((id) => byId(dry.results, "tenantId", id, "reference migrate --dry-run")).map((x) => [x.tenantId, x.success, x.appliedMigrations]),
      RN.map((id) => [id, true, []]), "reference migrate --dry-run after the repair");
  } finally {
    fs.renameSync(path.join(folder, RENAMED_TO + ".sql"), path.join(folder, RENAMED_FROM + ".sql"));
  }
}

// Case 8 -----------------------------------------------------------------------------------
const RENAMED_FROM = "0004_alter_orders_customers", RENAMED_TO = "0004_alter_orders_and_customers";
const DELETED = "0005_backfill_totals", MANUAL = "0006_add_customer_notes";
const MANUAL_SQL = 'ALTER TABLE "customers" ADD COLUMN "notes" text;\n';
const SY = ["sy1", "sy2", "sy3"];
async function caseSync() {
  await addTenants(...SY);
  const r = ref(["migrate", "--tenants", "sy1"]);
  eq(r.results.map((x) => [x.tenantId, x.success, x.appliedMigrations]), [["sy1", true, ALL]], "reference migrate --tenants sy1");
  const m = refApi({ tableFormat: "hash" });
  const res = await m.migrateTenant("sy2");
  eq([res.success, res.appliedMigrations], [true, ALL], "reference migrateTenant(sy2) as hash");
  const doc = mtctl(["migrate", "--tenant", "sy3"]);
  eq(doc.tenants.map((t) => [t.id, t.outcome, t.migrations]), [["sy3", "migrated", ALL]], "mtctl migrate --tenant sy3");
  const deletedHash = hashOf(DELETED);

  fs.renameSync(path.join(folder, RENAMED_FROM + ".sql"), path.join(folder, RENAMED_TO + ".sql"));
  fs.rmSync(path.join(folder, DELETED + ".sql"));
  fs.writeFileSync(path.join(folder, MANUAL + ".sql"), MANUAL_SQL);
  for (const id of SY) await q(`SET search_path TO ${quoteIdent("tenant_" + id)}; ${MANUAL_SQL}`);
  const files = names();
  eq(files, [...ALL.slice(0, 4), RENAMED_TO, MANUAL], "the folder after the rename, the delete and the new file");

  // Before the repair: each tool's own reading, exactly. A name table without a hash column
  // (the reference's) cannot see a rename; a hash table (no name column) sees only the content.
  const nameView = { missing: [RENAMED_TO, MANUAL], orphans: [RENAMED_FROM, DELETED] };
  const hashView = { missing: [MANUAL], orphans: [deletedHash] };
  const theirs = ref(["sync", "--status"]);
  eq(SY.map((id) => byId(theirs.tenants, "id", id, "reference sync --status")).map((t) => [t.id, t.format, { missing: t.missing, orphans: t.orphans }]),
    [["sy1", "name", nameView], ["sy2", "hash", hashView], ["sy3", "name", nameView]], "reference sync --status before the repair");
  const mine = mtctl(["sync", "--tenants", SY.join(",")]);
  eq(mine.tenants.map((t) => [t.id, t.format, { missing: t.missing, orphans: t.orphans.map((o) => o.name ?? o.hash) }, t.renamed]),
    // mtctl's own name tables keep each file's hash too: the renamed file is still applied, and
    // reported as renamed (drizzle-multitenant reads the record by its old name).
    [["sy1", "name", nameView, []], ["sy2", "hash", hashView, []],
     ["sy3", "name", { missing: [MANUAL], orphans: [DELETED] }, [{ from: RENAMED_FROM, to: RENAMED_TO }]]],
    "mtctl sync before the repair [tenant, format, missing/orphans, renamed]");

  const fixed = mtctl(["sync", "--mark-missing", "--clean-orphans", "--tenants", SY.join(",")]);
  eq(fixed.tenants.map((t) => [t.id, t.outcome, t.marked, t.cleaned.map((o) => o.name ?? o.hash), t.accepted, t.rewritten]),
    [["sy1", "repaired", [RENAMED_TO, MANUAL], [RENAMED_FROM, DELETED], [], []], ["sy2", "repaired", [MANUAL], [deletedHash], [], []],
     ["sy3", "repaired", [MANUAL], [DELETED], [], [{ from: RENAMED_FROM, to: RENAMED_TO }]]],
    "mtctl sync --mark-missing --clean-orphans [tenant, outcome, marked, cleaned, accepted, rewritten]");

  syncAfter = { sync: ref(["sync", "--status"]), status: ref(["status"]), dry: ref(["migrate", "--tenants", SY.join(","), "--dry-run"]),
                mine: mtctl(["sync", "--tenants", SY.join(",")]) };
  assertSyncedAfter(["sy1", "sy2"]);
}
let syncAfter = null;

// After the repair every tool must see every tenant in sync, and the reference must run nothing.
function assertSyncedAfter(ids) {
  assert(syncAfter, "not run: the sync case did not get as far as mtctl's repair");
  const { sync, status, dry, mine } = syncAfter;
  eq(ids.map((id) => byId(sync.tenants, "id", id, "reference sync --status")).map((t) => [t.id, t.inSync, t.missing, t.orphans]),
    ids.map((id) => [id, true, [], []]), "reference sync --status after mtctl's repair [tenant, inSync, missing, orphans]");
  eq(ids.map((id) => byId(status.tenants, "id", id, "reference status")).map((t) => [t.id, t.status, t.applied, t.pending]),
    ids.map((id) => [id, "ok", 6, 0]), "reference status after mtctl's repair [tenant, status, applied, pending]");
  eq(ids.map((id) => byId(dry.results, "tenantId", id, "reference migrate --dry-run")).map((x) => [x.tenantId, x.success, x.appliedMigrations]),
    ids.map((id) => [id, true, []]), "reference migrate --dry-run after the repair");
  eq(ids.map((id) => byId(mine.tenants, "id", id, "mtctl sync")).map((t) => [t.id, t.in_sync]), ids.map((id) => [id, true]), "mtctl sync after the repair");
}

// Case 9 -----------------------------------------------------------------------------------
// A tracking row as a comparable value: id, name, hash and the timestamp in microseconds since
// the epoch (a drizzle-kit created_at is milliseconds); null where the table has no such column.
async function normalisedRows(id) {
  const schema = "tenant_" + id;
  const cols = new Map((await q(`SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`,
    [schema, TABLE])).rows.map((c) => [c.column_name, c.data_type]));
  const ts = cols.has("applied_at") ? "applied_at" : "created_at";
  const at = cols.get(ts) === "bigint" ? `(t.${ts} * 1000)::text` : `(extract(epoch FROM t.${ts}) * 1000000)::numeric(20,0)::text`;
  const sql = `SELECT t.id, ${cols.has("name") ? "t.name::text" : "NULL::text"} AS name, ${cols.has("hash") ? "t.hash" : "NULL::text"} AS hash,
               ${at} AS at_us FROM ${quoteIdent(schema)}.${quoteIdent(TABLE)} t ORDER BY t.id`;
  return { has: { name: cols.has("name"), hash: cols.has("hash") }, bigint: cols.get(ts) === "bigint", rows: (await q(sql)).rows };
}

// Converts each tenant along a chain of formats; after every step compares the rows with the
// original and the reference's reading (library API: getTenantStatus / getTenantSyncStatus, what
// its status and sync --status print) with its reading before the first step.
let convertProblems = null;
async function runConversions() {
  assert(syncAfter, "not run: the sync case did not get as far as mtctl's repair");
  const files = folderMigrations();
  // sy1: the reference's name table, ids with gaps after the repair; sy2: the reference's hash
  // table (no name column); sy3: mtctl's name table (with a hash column).
  const chains = {
    sy1: ["hash", "name", "drizzle-kit", "name", "hash", "drizzle-kit", "hash", "name"],
    sy2: ["name", "hash", "drizzle-kit", "hash"],
    sy3: ["drizzle-kit", "hash", "name"],
  };
  const problems = { rows: [], view: [] };
  const api = refApi();
  const refView = async (id) => {
    const st = await api.getTenantStatus(id);
    const sy = await api.getTenantSyncStatus(id);
    return { status: st.status, applied: st.appliedCount, pending: st.pendingMigrations, inSync: sy.inSync, missing: sy.missing, orphans: sy.orphans, error: st.error ?? sy.error };
  };
  for (const [id, chain] of Object.entries(chains)) {
    const original = await normalisedRows(id);
    // The complete identity of each row, from the original plus the folder (by the other identifier).
    const full = original.rows.map((r) => {
      const f = files.find((m) => m.name === r.name || m.hash === r.hash);
      return { id: r.id, name: r.name ?? f.name, hash: r.hash ?? f.hash, at_us: r.at_us };
    });
    const baseline = await refView(id);
    let step = mtctl(["status", "--tenant", id]).tenants[0].format;
    for (const to of chain) {
      const label = `${id}: ${step} -> ${to}`;
      const doc = mtctl(["convert-format", "--to", to, "--tenant", id]);
      eq(doc.tenants.map((t) => [t.id, t.outcome, t.format]), [[id, "migrated", to]], `mtctl convert-format ${label}`);
      const now = await normalisedRows(id);
      // drizzle-kit keeps milliseconds: the instant truncated to the millisecond, from then on.
      if (now.bigint) for (const r of full) r.at_us = String(BigInt(r.at_us) / 1000n * 1000n);
      const want = full.map((r) => ({ id: r.id, name: now.has.name ? r.name : null, hash: now.has.hash ? r.hash : null, at_us: r.at_us }));
      if (show(now.rows) !== show(want)) {
        const lines = [];
        for (let i = 0; i < Math.max(now.rows.length, want.length); ++i)
          if (show(now.rows[i]) !== show(want[i])) lines.push(`    row ${i + 1}: got ${show(now.rows[i])}\n           expected ${show(want[i])}`);
        problems.rows.push(`${label}: ${lines.length} of ${want.length} rows differ (id, name, hash, timestamp in µs)\n${lines.join("\n")}`);
      }
      const view = await refView(id);
      if (show(view) !== show(baseline)) problems.view.push(`${label}: the reference's reading\n    got      ${show(view)}\n    before   ${show(baseline)}`);
      step = to;
    }
  }
  convertProblems = problems;
}
async function caseConvertRows() {
  await runConversions();
  assert(convertProblems.rows.length === 0, convertProblems.rows.join("\n"));
}
async function caseConvertRead() {
  assert(convertProblems, "not run: the conversions did not complete");
  assert(convertProblems.view.length === 0, convertProblems.view.join("\n"));
}

// Case 10 ----------------------------------------------------------------------------------
// The whole fleet at the end: every tenant of every case, after the folder lost a file, renamed
// one and gained one, most of them unrepaired. Each tool's status and sync, tenant by tenant, by
// one rule: drizzle-multitenant sees what mtctl sees, plus, for each record mtctl reports as
// renamed, the new name pending/missing and the old one an orphan; its `applied` counts rows
// (mtctl's applied migrations plus its orphan records).
async function caseFleetEnd() {
  const order = names();
  const inFolderOrder = (list) => [...list].sort((a, b) => order.indexOf(a) - order.indexOf(b));
  const st = mtctl(["status", "--all"]), sy = mtctl(["sync", "--all"]);
  const rst = ref(["status"]), rsy = ref(["sync", "--status"]);
  eq(rst.tenants.map((t) => t.id), st.tenants.map((t) => t.id), "tenants in both status reports");
  const rows = [];
  let renamedSeen = 0, orphansSeen = 0;
  for (const t of st.tenants) {
    const s = byId(sy.tenants, "id", t.id, "mtctl sync");
    const r = byId(rst.tenants, "id", t.id, "reference status");
    const rs = byId(rsy.tenants, "id", t.id, "reference sync --status");
    renamedSeen += s.renamed.length;
    orphansSeen += s.orphans.length;
    const want = {
      applied: t.applied + t.orphans,
      pending: inFolderOrder([...t.pending_migrations, ...s.renamed.map((x) => x.to)]),
      missing: inFolderOrder([...s.missing, ...s.renamed.map((x) => x.to)]),
      orphans: [...s.orphans.map((o) => refIdentifier(s.format, o)), ...s.renamed.map((x) => x.from)].sort(),
      inSync: s.in_sync,
    };
    const got = { applied: r.applied, pending: r.pendingMigrations, missing: rs.missing, orphans: [...rs.orphans].sort(), inSync: rs.inSync };
    if (show(got) !== show(want)) rows.push(`${t.id}: reference ${show(got)}\n    expected ${show(want)} (from mtctl)`);
  }
  assert(rows.length === 0, `${rows.length} of ${st.tenants.length} tenants disagree:\n  ${rows.join("\n  ")}`);
  // The rule was exercised: renamed records (mtctl's unrepaired name tables) and orphans exist.
  assert(renamedSeen > 0 && orphansSeen > 0, `expected renamed records and orphans in the fleet, found ${renamedSeen} and ${orphansSeen}`);
}

// ---------------------------------------------------------------------------------------------
const started = Date.now();
try {
  writeConfigs();
  await createDatabase();
} catch (e) {
  fs.rmSync(work, { recursive: true, force: true });
  fatal(`cannot create database ${dbName} through ${adminUrl.replace(/\/\/[^@]*@/, "//…@")}: ${e.message}`);
}
try {
  await check(C_REF_FIRST, caseRefFirst);
  await check(C_MT_FIRST, caseMtFirst);
  await check(C_MT_PARTIAL, () => mtPartial({ mp1: "name" }));
  await check(C_MT_PARTIAL_HASH, () => mtPartial({ mp2: "hash", mp3: "drizzle-kit" }));
  await check(C_MARK_MT, caseMarkMtctl);
  await check(C_MARK_REF, caseMarkReference);
  await check(C_STATUS, caseStatus);
  await check(C_SYNC_STATUS, caseSyncStatus);
  await check(C_FORMATS, caseFormats);
  await check(C_RENAME_MARK, caseRenameMark);
  await check(C_SYNC, caseSync);
  await check(C_SYNC_RENAME, () => assertSyncedAfter(["sy3"]));
  await check(C_CONVERT_ROWS, caseConvertRows);
  await check(C_CONVERT_READ, caseConvertRead);
  await check(C_FLEET_END, caseFleetEnd);
} catch (e) {
  report("harness", false, (e && e.stack) || e);
} finally {
  await dropDatabase().catch((e) => report("drop database", false, e.message));
}
console.log(`# ${((Date.now() - started) / 1000).toFixed(1)} s, database ${dbName}`);
finish();
