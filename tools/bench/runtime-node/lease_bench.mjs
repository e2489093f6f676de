// The reference side of tools/bench/bench_runtime.sh: drizzle-multitenant 1.3.5's
// createTenantManager(config).getDb(tenantId) doing what mt-lease-bench does — N `SELECT 1`, K in
// flight, each on a tenant picked at random from t0..t{T-1} — and printing the same JSON line.
//
//   node lease_bench.mjs --url URL --tenants 200 --queries 20000 --inflight 16 [--max-pools 50]
//                        [--pool-size 10] [--seed 1]
//
// Peak backends are sampled from pg_stat_activity every 20 ms on a separate connection, with the
// CPU the backends used (/proc/PID/schedstat, when PostgreSQL runs on this machine), as
// mt-lease-bench does; rss_mb is the process's peak RSS (VmHWM).
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { createTenantManager } from "drizzle-multitenant";
import { sql } from "drizzle-orm";

function parse(argv) {
    const a = { url: "", tenants: 200, queries: 20000, inflight: 16, maxPools: 50, poolSize: 10, seed: 1 };
    for (let i = 2; i < argv.length; i++) {
        const k = argv[i];
        const v = () => {
            if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
            return argv[++i];
        };
        if (k === "--url") a.url = v();
        else if (k === "--tenants") a.tenants = Number(v());
        else if (k === "--queries") a.queries = Number(v());
        else if (k === "--inflight") a.inflight = Number(v());
        else if (k === "--max-pools") a.maxPools = Number(v());
        else if (k === "--pool-size") a.poolSize = Number(v());
        else if (k === "--seed") a.seed = Number(v());
        else throw new Error(`unknown argument ${k}`);
    }
    if (!a.url) throw new Error("--url is required");
    return a;
}

// mulberry32: a seeded generator, so every run asks for the same tenant sequence.
function rng(seed) {
    let s = seed >>> 0;
    return () => {
        s = (s + 0x6d2b79f5) >>> 0;
        let t = s;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

function rssMb() {
    const m = /VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
}

const args = parse(process.argv);
let poolsCreated = 0;
let evictions = 0;
const manager = createTenantManager({
    connection: { url: args.url, poolConfig: { max: args.poolSize } },
    isolation: { strategy: "schema", schemaNameTemplate: (id) => `tenant_${id}`, maxPools: args.maxPools },
    schemas: { tenant: {} },
    hooks: {
        onPoolCreated: () => poolsCreated++,
        onPoolEvicted: () => evictions++,
    },
});

// A process's time on a CPU in ns, or null when unreadable.
function cpuNs(pid) {
    try {
        return Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
        return null;
    }
}

const sampler = new pg.Client({ connectionString: args.url });
await sampler.connect();
let peak = 0;
let sampling = true;
let readable = true;
let started = false;
const firstNs = new Map();
const lastNs = new Map();
async function sample() {
    const r = await sampler.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() " +
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
    );
    peak = Math.max(peak, r.rows.length);
    let read = 0;
    for (const { pid } of r.rows) {
        const ns = cpuNs(pid);
        if (ns === null) continue; // gone since the query (an evicted pool), or not ours to read
        read++;
        if (!firstNs.has(pid)) firstNs.set(pid, started ? 0 : ns);
        lastNs.set(pid, ns);
    }
    if (r.rows.length > 0 && read === 0) readable = false; // the server runs elsewhere
    started = true;
}
await sample();
const sampleLoop = (async () => {
    while (sampling) {
        await sample();
        await new Promise((res) => setTimeout(res, 20));
    }
})();

const random = rng(args.seed);
const plan = Array.from({ length: args.inflight }, () => []);
for (let q = 0; q < args.queries; q++) plan[q % args.inflight].push(Math.floor(random() * args.tenants));

const latencies = [];
let errors = 0;
let firstError = null;
const cpu0 = process.cpuUsage();
const start = performance.now();
await Promise.all(
    plan.map(async (tenants) => {
        for (const t of tenants) {
            const t0 = performance.now();
            try {
                await manager.getDb(`t${t}`).execute(sql`SELECT 1`);
            } catch (e) {
                if (errors++ === 0) firstError = e;
            }
            latencies.push(performance.now() - t0);
        }
    }),
);
const seconds = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpu0);
sampling = false;
await sampleLoop;
await sample();
await sampler.end();
let serverNs = 0;
for (const [pid, ns] of lastNs) serverNs += ns - firstNs.get(pid);

latencies.sort((x, y) => x - y);
const pct = (p) => (latencies.length ? latencies[Math.floor(p * (latencies.length - 1))] : 0);
if (firstError) console.error(`first error: ${firstError.message}`);
console.log(
    JSON.stringify({
        mode: "drizzle-multitenant",
        tenants: args.tenants,
        queries: args.queries,
        inflight: args.inflight,
        seconds,
        qps: args.queries / seconds,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        errors,
        peak_backends: peak,
        client_cpu_us_per_query: (cpu.user + cpu.system) / args.queries,
        server_cpu_us_per_query: readable ? serverNs / 1000 / args.queries : null,
        rss_mb: rssMb(),
        evictions,
        pools_created: poolsCreated,
    }),
);
await manager.dispose();
process.exit(errors ? 1 : 0);
