// drizzle-kit compatibility check for mtctl (issue 3): tracking tables that mtctl writes in the
// drizzle-kit format must be accepted as up to date by drizzle-orm's own migrator, and the other
// way round. Run through tests/node/run.sh, which installs drizzle-orm and pg (pinned) and sets:
//   MT_TEST_DATABASE_URL   postgresql:// URL of a maintenance database (superuser)
//   MT_MTCTL               path to the mtctl binary
//   MT_NODE_COMPAT_MODULES folder holding node_modules with drizzle-orm and pg
//   MT_NODE_COMPAT_VARIANT tenant | shared | all (default all)
//   MT_PLUGIN_PATH         optional [plugins] path for the manifest
//   MT_KEEP_DB=1           keep the databases for inspection
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const fixture = path.join(here, "fixtures", "drizzle-kit");
const TABLE = "__drizzle_migrations";

const results = [];
const pass = (name) => { results.push(true); console.log(`ok - ${name}`); };
const fail = (name, why) => {
  results.push(false);
  console.log(`not ok - ${name}`);
  for (const line of String(why).split("\n")) console.log(`    ${line}`);
};
function finish() {
  const passed = results.filter(Boolean).length;
  const failed = results.length - passed;
  const verdict = failed === 0 && passed > 0 ? "PASS" : "FAIL";
  console.log(`node-compat: ${passed} passed, ${failed} failed (${verdict})`);
  process.exit(verdict === "PASS" ? 0 : 1);
}

const variantArg = process.env.MT_NODE_COMPAT_VARIANT || "all";
if (!["tenant", "shared", "all"].includes(variantArg)) {
  fail("arguments", `MT_NODE_COMPAT_VARIANT must be tenant, shared or all, not '${variantArg}'`);
  finish();
}
const adminUrl = process.env.MT_TEST_DATABASE_URL;
const mtctl = process.env.MT_MTCTL || path.join(root, "build", "bin", "mtctl");
const modules = process.env.MT_NODE_COMPAT_MODULES || path.join(root, "build", "node-compat");
if (!adminUrl) { fail("environment", "MT_TEST_DATABASE_URL is not set"); finish(); }

let require, pg, drizzle, migrate, readMigrationFiles;
try {
  require = createRequire(path.join(modules, "package.json"));
  pg = require("pg");
  ({ drizzle } = require("drizzle-orm/node-postgres"));
  ({ migrate } = require("drizzle-orm/node-postgres/migrator"));
  ({ readMigrationFiles } = require("drizzle-orm/migrator"));
} catch (e) {
  fail("environment", `cannot load drizzle-orm and pg from ${modules}: ${e.message}\n(run tests/node/run.sh, which installs them)`);
  finish();
}

function dbUrl(name) {
  const u = new URL(adminUrl);
  u.pathname = "/" + name;
  return u.toString();
}
const quoteIdent = (s) => '"' + s.replace(/"/g, '""') + '"';

async function withClient(url, fn) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { return await fn(c); } finally { await c.end(); }
}

const mtctlMissing = (() => {
  try { fs.accessSync(mtctl, fs.constants.X_OK); return null; }
  catch { return `mtctl not found or not executable at ${mtctl} (build it, or set MT_MTCTL)`; }
})();

function runMtctl(ini, args) {
  const r = spawnSync(mtctl, ["-c", ini, ...args], { encoding: "utf8", timeout: 120_000 });
  const tail = (s) => (s || "").trim().split("\n").slice(-15).join("\n");
  return {
    status: r.status,
    stdout: r.stdout || "",
    stderr: r.stderr || "",
    describe: `$ mtctl -c ${ini} ${args.join(" ")}\nexit ${r.status}${r.error ? ` (${r.error.message})` : ""}` +
      (tail(r.stdout) ? `\nstdout:\n${tail(r.stdout)}` : "") + (tail(r.stderr) ? `\nstderr:\n${tail(r.stderr)}` : ""),
  };
}

function writeManifest(dir, url) {
  const pluginPath = process.env.MT_PLUGIN_PATH ||
    (fs.existsSync(path.join(root, "build", "plugins")) ? path.join(root, "build", "plugins") : "");
  const migrations = path.join(dir, "drizzle");
  const ini = path.join(dir, "multitenant.ini");
  fs.writeFileSync(ini, [
    "# written by tests/node/compat.mjs",
    "[database]",
    `url = ${url}`,
    "",
    "[isolation]",
    "schema_template = tenant_{id}",
    "shared_schema = public",
    "",
    "[migrations]",
    `tenant_dir = ${migrations}`,
    `shared_dir = ${migrations}`,
    `table = ${TABLE}`,
    `shared_table = ${TABLE}`,
    "format = drizzle-kit",
    "default_format = drizzle-kit",
    "concurrency = 2",
    "",
    "[plugins]",
    ...(pluginPath ? [`path = ${pluginPath}`] : []),
    "load = tracking-name, tracking-hash, tracking-drizzle-kit, discovery-sql, retry-exponential",
    "",
    "[roles]",
    "discovery = discovery-sql",
    "retry = retry-exponential",
    "",
    "[plugin.discovery-sql]",
    "query = SELECT id FROM public.tenants ORDER BY id",
    "",
  ].join("\n"));
  return { ini, migrations };
}

// One database + scratch folder per variant.
async function setup(variant) {
  const name = `node_compat_${variant}_${process.pid}`;
  await withClient(adminUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${quoteIdent(name)}`);
  });
  const url = dbUrl(name);
  await withClient(url, async (c) => {
    await c.query("CREATE TABLE public.tenants (id text PRIMARY KEY)");
    await c.query("INSERT INTO public.tenants VALUES ('alpha'), ('beta'), ('gamma')");
    for (const id of ["alpha", "beta", "gamma"]) await c.query(`CREATE SCHEMA ${quoteIdent("tenant_" + id)}`);
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mt-node-compat-${variant}-`));
  fs.cpSync(fixture, path.join(dir, "drizzle"), { recursive: true });
  return { name, url, dir, ...writeManifest(dir, url) };
}

async function teardown(env) {
  if (process.env.MT_KEEP_DB === "1") {
    console.log(`# kept database ${env.name} and folder ${env.dir}`);
    return;
  }
  await withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(env.name)} WITH (FORCE)`));
  fs.rmSync(env.dir, { recursive: true, force: true });
}

async function trackingRows(url, schema) {
  return withClient(url, async (c) => {
    const cols = await c.query(
      `SELECT column_name, data_type FROM information_schema.columns
       WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, [schema, TABLE]);
    if (cols.rowCount === 0) return { columns: null, rows: [] };
    const rows = await c.query(`SELECT id, hash, created_at FROM ${quoteIdent(schema)}.${quoteIdent(TABLE)} ORDER BY id`);
    return {
      columns: Object.fromEntries(cols.rows.map((r) => [r.column_name, r.data_type])),
      rows: rows.rows.map((r) => ({ hash: r.hash, created_at: Number(r.created_at) })),
    };
  });
}

async function columnExists(url, schema, table, column) {
  return withClient(url, async (c) => (await c.query(
    "SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND column_name = $3",
    [schema, table, column])).rowCount === 1);
}

// drizzle-orm's own migrator, exactly as an application would call it.
async function drizzleMigrate(url, schema, migrationsFolder) {
  const pool = new pg.Pool({ connectionString: url, max: 1, options: `-c search_path=${quoteIdent(schema)}` });
  try {
    await migrate(drizzle(pool), { migrationsFolder, migrationsSchema: schema, migrationsTable: TABLE });
  } finally {
    await pool.end();
  }
}

const expectedFor = (folder) => readMigrationFiles({ migrationsFolder: folder })
  .map((m) => ({ hash: m.hash, created_at: m.folderMillis }));
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const show = (x) => JSON.stringify(x, null, 1).replace(/\n\s*/g, " ");

// Runs one check; returns whether it passed. Later checks that build on it use `needs`.
async function check(name, fn, needs = []) {
  const missing = needs.filter((n) => !passed.has(n));
  if (missing.length) { fail(name, `not run: depends on failed check(s): ${missing.join("; ")}`); return false; }
  try {
    await fn();
    pass(name);
    passed.add(name);
    return true;
  } catch (e) {
    fail(name, e && e.message ? e.message : e);
    return false;
  }
}
const passed = new Set();
const assert = (cond, msg) => { if (!cond) throw new Error(msg); };

// exact: hash and created_at must equal drizzle-orm's (created_at = journal `when`, SPEC 6.2);
// otherwise only the recorded hashes, in order, are compared.
async function assertTracking(url, schema, expected, what, exact = false) {
  const t = await trackingRows(url, schema);
  assert(t.columns, `${schema}.${TABLE} does not exist ${what}`);
  assert(t.columns.hash === "text" && t.columns.created_at === "bigint",
    `${schema}.${TABLE} is not in drizzle-kit layout (hash text, created_at bigint): ${show(t.columns)}`);
  const got = exact ? t.rows : t.rows.map((r) => r.hash);
  const want = exact ? expected : expected.map((r) => r.hash);
  assert(same(got, want),
    `${schema}.${TABLE} ${exact ? "rows" : "hashes"} ${what}:\n  got      ${show(got)}\n  expected ${show(want)}` +
    ` (from drizzle-orm's readMigrationFiles${exact ? ": hash, journal when" : ""})`);
  return t.rows;
}

// drizzle-orm migrate() must leave the tracking table exactly as it was.
async function assertDrizzleAppliesNothing(url, schema, folder, expected) {
  const before = await assertTracking(url, schema, expected, "before drizzle-orm migrate");
  await drizzleMigrate(url, schema, folder);
  const after = (await trackingRows(url, schema)).rows;
  assert(same(after, before), `drizzle-orm migrate() changed ${schema}.${TABLE}:\n  before ${show(before)}\n  after  ${show(after)}`);
}

async function tenantVariant() {
  const env = await setup("tenant");
  try {
    const all = expectedFor(env.migrations);
    const journal = JSON.parse(fs.readFileSync(path.join(env.migrations, "meta", "_journal.json"), "utf8"));
    const first = journal.entries[0].tag;

    const t1 = "tenant: mtctl migrate (format drizzle-kit) applies both migrations to tenant_alpha";
    await check(t1, async () => {
      const r = runMtctl(env.ini, ["migrate", "--tenant", "alpha"]);
      assert(r.status === 0, r.describe);
      assert(await columnExists(env.url, "tenant_alpha", "users", "display_name"), "tenant_alpha.users.display_name is missing after migrate");
      assert(await columnExists(env.url, "tenant_alpha", "notes", "pinned"), "tenant_alpha.notes.pinned is missing after migrate");
    });
    const t2 = "tenant: mtctl's tracking rows equal drizzle-orm's (hash = sha256 of the file, created_at = journal when)";
    await check(t2, () => assertTracking(env.url, "tenant_alpha", all, "after mtctl migrate", true), [t1]);
    await check("tenant: drizzle-orm migrate() accepts the mtctl-migrated schema as up to date (applies nothing)",
      () => assertDrizzleAppliesNothing(env.url, "tenant_alpha", env.migrations, all), [t1]);

    const t4 = "tenant: mtctl migrate --to the first migration records only that one";
    await check(t4, async () => {
      const r = runMtctl(env.ini, ["migrate", "--tenant", "beta", "--to", first]);
      assert(r.status === 0, r.describe);
      await assertTracking(env.url, "tenant_beta", all.slice(0, 1), `after mtctl migrate --to ${first}`);
    });
    const t5 = "tenant: drizzle-orm migrate() then applies exactly the remaining migration";
    await check(t5, async () => {
      await drizzleMigrate(env.url, "tenant_beta", env.migrations);
      assert(await columnExists(env.url, "tenant_beta", "users", "display_name"),
        "drizzle-orm did not apply the second migration (tenant_beta.users.display_name missing): " +
        "mtctl's created_at is probably not the journal `when`");
      await assertTracking(env.url, "tenant_beta", all, "after drizzle-orm migrate of the rest");
    }, [t4]);
    await check("tenant: mtctl migrate afterwards finds nothing pending in tenant_beta", async () => {
      const r = runMtctl(env.ini, ["migrate", "--tenant", "beta"]);
      assert(r.status === 0, r.describe);
      await assertTracking(env.url, "tenant_beta", all, "after the second mtctl migrate");
    }, [t5]);

    const t7 = "tenant: drizzle-orm migrate() on a fresh tenant_gamma";
    await check(t7, async () => {
      await drizzleMigrate(env.url, "tenant_gamma", env.migrations);
      await assertTracking(env.url, "tenant_gamma", all, "after drizzle-orm migrate", true);
    });
    await check("tenant: mtctl migrate finds nothing pending in a drizzle-orm-migrated schema", async () => {
      const r = runMtctl(env.ini, ["migrate", "--tenant", "gamma"]);
      assert(r.status === 0, r.describe);
      await assertTracking(env.url, "tenant_gamma", all, "after mtctl migrate (it must add nothing)");
    }, [t7]);
    await check("tenant: mtctl status --json reports the drizzle-orm-migrated schema up to date", async () => {
      const r = runMtctl(env.ini, ["--json", "status", "--tenant", "gamma"]);
      assert(r.status === 0, r.describe);
      let doc;
      try { doc = JSON.parse(r.stdout); } catch (e) { throw new Error(`stdout is not one JSON document (${e.message})\n${r.describe}`); }
      // mtctl status --json (SPEC §7): {"tenants": [{id, schema, server, format, applied, pending,
      // orphans, state, pending_migrations, orphan_records}], "summary": {...}}; every field is required.
      assert(Array.isArray(doc.tenants), `no "tenants" array in:\n${r.stdout.slice(0, 2000)}`);
      assert(doc.tenants.length === 1, `expected exactly one tenant (gamma), got ${doc.tenants.length}: ${show(doc.tenants)}`);
      const t = doc.tenants[0];
      const want = { id: "gamma", schema: "tenant_gamma", format: "drizzle-kit", applied: all.length, pending: 0,
                     orphans: 0, state: "up-to-date", pending_migrations: [], orphan_records: [] };
      for (const [key, value] of Object.entries(want)) {
        assert(key in t, `the entry has no "${key}" field: ${show(t)}`);
        assert(same(t[key], value), `${key} is ${show(t[key])}, expected ${show(value)}: ${show(t)}`);
      }
      assert(doc.summary && doc.summary["up-to-date"] === 1 && doc.summary.total === 1,
        `summary is ${show(doc.summary)}, expected total 1 and "up-to-date" 1`);
    }, [t7]);
  } finally {
    await teardown(env);
  }
}

async function sharedVariant() {
  const env = await setup("shared");
  try {
    const all = expectedFor(env.migrations);
    const s1 = "shared: mtctl migrate-shared (format drizzle-kit) applies both migrations to public";
    await check(s1, async () => {
      const r = runMtctl(env.ini, ["migrate-shared"]);
      assert(r.status === 0, r.describe);
      assert(await columnExists(env.url, "public", "users", "display_name"), "public.users.display_name is missing after migrate-shared");
    });
    await check("shared: mtctl's tracking rows in public equal drizzle-orm's (hash, created_at = journal when)", () =>
      assertTracking(env.url, "public", all, "after mtctl migrate-shared", true), [s1]);
    await check("shared: drizzle-orm migrate() (migrationsSchema public) accepts them as up to date (applies nothing)",
      () => assertDrizzleAppliesNothing(env.url, "public", env.migrations, all), [s1]);
  } finally {
    await teardown(env);
  }
}

if (mtctlMissing) {
  fail("mtctl available", mtctlMissing);
  finish();
}
if (!fs.existsSync(path.join(fixture, "meta", "_journal.json"))) {
  fail("fixture", `missing ${fixture}/meta/_journal.json`);
  finish();
}
try {
  if (variantArg === "tenant" || variantArg === "all") await tenantVariant();
  if (variantArg === "shared" || variantArg === "all") await sharedVariant();
} catch (e) {
  fail("harness", e && e.stack ? e.stack : e);
}
finish();
