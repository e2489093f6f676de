// Lease throughput benchmark (issue: tenant runtime): N `SELECT 1` through TenantManager leases,
// K in flight, spread at random over T tenants; or the same over raw libpqxx connections (one per
// worker) as the floor. Prints one JSON line: queries/s, p50/p99 latency, evictions, pools
// created, peak backends, client CPU per query, client peak RSS.
//
//   mt-lease-bench --manifest FILE --tenants 200 --queries 20000 --inflight 16 [--raw] [--seed 1]
//                  [--param] [--warm] [--raw-connections N]
//   mt-lease-bench --manifest FILE --memory [--pools 50] [--pool-connections 10] [--raw]
//
// The manifest decides the pool mode, pool_size and max_pools. Tenant ids are t0..t{T-1}; their
// schemas must exist (tools/bench/bench_runtime.sh creates them).
//   --param   `SELECT $1::int` with one parameter instead of `SELECT 1` (no search_path folding)
//   --warm    run the same plan once before the timed pass (steady state: pools already open)
//   --raw-connections N   with --raw: N bare connections instead of one per worker (N >= K); a
//             query takes a free one, starting from its tenant's share (t × N / T), as a per-tenant
//             pool would: raw libpqxx on as many backends as a pool mode ends up with
//   --memory  open --pools tenant pools of --pool-connections connections each (all held at once,
//             one query on each, then released to their pools) and report the RSS they add;
//             with --raw the same number of bare libpqxx connections, for comparison.
#include <mt/context/kernel.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <latch>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
    std::string manifest = "multitenant.ini";
    int tenants = 200;
    int queries = 20000;
    int inflight = 16;
    bool raw = false;
    int raw_connections = 0;  // 0: one per worker
    bool param = false;
    bool warm = false;
    bool memory = false;
    int pools = 50;
    int pool_connections = 10;
    unsigned seed = 1;
};

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::invalid_argument(k + " needs a value");
            return argv[++i];
        };
        if (k == "--manifest") a.manifest = next();
        else if (k == "--tenants") a.tenants = std::stoi(next());
        else if (k == "--queries") a.queries = std::stoi(next());
        else if (k == "--inflight") a.inflight = std::stoi(next());
        else if (k == "--seed") a.seed = static_cast<unsigned>(std::stoul(next()));
        else if (k == "--raw") a.raw = true;
        else if (k == "--raw-connections") a.raw_connections = std::stoi(next());
        else if (k == "--param") a.param = true;
        else if (k == "--warm") a.warm = true;
        else if (k == "--memory") a.memory = true;
        else if (k == "--pools") a.pools = std::stoi(next());
        else if (k == "--pool-connections") a.pool_connections = std::stoi(next());
        else throw std::invalid_argument("unknown argument " + k);
    }
    return a;
}

// User + system CPU of this process so far, in microseconds.
double cpu_us() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto us = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_usec); };
    return us(u.ru_utime) + us(u.ru_stime);
}

// A line of /proc/self/status in kB: VmHWM (peak RSS) or VmRSS (current).
long status_kb(const char* key) {
    std::ifstream f("/proc/self/status");
    std::string line;
    const size_t n = std::strlen(key);
    while (std::getline(f, line))
        if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') return std::stol(line.substr(n + 1));
    return 0;
}

// Reads a process's total time on a CPU (ns) from /proc/PID/schedstat; -1 when unreadable (the
// server runs elsewhere, or as another user without access).
long long cpu_ns_of(long pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/schedstat");
    long long ns = -1;
    if (!(f >> ns)) return -1;
    return ns;
}

// Samples the database's client backends every 20 ms on its own connection: their peak count and,
// when the server runs on this machine, the CPU time they used (from /proc, per pid).
class BackendSampler {
public:
    explicit BackendSampler(const std::string& url)
        : conn_(url), thread_([this](std::stop_token stop) {
              while (!stop.stop_requested()) {
                  sample();
                  std::this_thread::sleep_for(std::chrono::milliseconds(20));
              }
          }) {}
    long peak() const { return peak_; }
    // CPU used by the backends since the sampler started (a final sample first); -1 if unknown.
    double cpu_us() {
        thread_.request_stop();
        thread_.join();
        sample();
        std::lock_guard lock(mutex_);
        if (!readable_) return -1;
        long long ns = 0;
        for (const auto& [pid, last] : last_) ns += last - first_[pid];
        return static_cast<double>(ns) / 1000.0;
    }

private:
    void sample() {
        std::lock_guard lock(mutex_);
        pqxx::nontransaction tx(conn_);
        const auto r = tx.exec("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                               "AND pid <> pg_backend_pid() AND backend_type = 'client backend'");
        peak_ = std::max(peak_.load(), static_cast<long>(r.size()));
        size_t read = 0;
        for (const auto& row : r) {
            const long pid = row[0].as<long>();
            const long long ns = cpu_ns_of(pid);
            if (ns < 0) continue;  // gone since the query (an evicted connection), or not ours to read
            ++read;
            // A backend first seen now was either already there (its CPU so far is not ours) or
            // started since the last sample (all of its CPU is ours): the first sample decides.
            if (!first_.count(pid)) first_[pid] = started_ ? 0 : ns;
            last_[pid] = ns;
        }
        if (!r.empty() && read == 0) readable_ = false;  // the server runs elsewhere
        started_ = true;
    }

    std::mutex mutex_;
    pqxx::connection conn_;
    std::map<long, long long> first_, last_;
    bool started_ = false;
    bool readable_ = true;
    std::atomic<long> peak_{0};
    std::jthread thread_;
};

// The memory goal: what P pools of C connections add to the client's resident set.
int memory_mode(const Args& args, mt::Kernel& kernel) {
    const std::string url = kernel.connection_string();
    const long before_kb = status_kb("VmRSS");
    const size_t total = static_cast<size_t>(args.pools) * static_cast<size_t>(args.pool_connections);
    std::unique_ptr<mt::TenantManager> manager;
    std::vector<std::unique_ptr<pqxx::connection>> raw;
    size_t connections = 0;
    if (args.raw) {
        for (size_t i = 0; i < total; ++i) {
            raw.push_back(std::make_unique<pqxx::connection>(url));
            pqxx::nontransaction tx(*raw.back());
            tx.exec("SELECT 1");
        }
        connections = raw.size();
    } else {
        manager = std::make_unique<mt::TenantManager>(kernel);
        for (int p = 0; p < args.pools; ++p) {
            std::vector<mt::TenantLease> held;  // all at once: the pool opens C connections
            for (int c = 0; c < args.pool_connections; ++c) {
                held.push_back(manager->tenant("t" + std::to_string(p)));
                held.back().query("SELECT 1");
            }
        }
        connections = manager->stats().connections;
    }
    const long after_kb = status_kb("VmRSS");
    const double added_mb = static_cast<double>(after_kb - before_kb) / 1024.0;
    nlohmann::json out = {
        {"mode", args.raw ? "raw-libpqxx" : mt::to_string(kernel.manifest().database.pool_mode)},
        {"memory", true},
        {"pools", args.raw ? 0 : args.pools},
        {"pool_connections", args.pool_connections},
        {"connections", connections},
        {"rss_before_mb", static_cast<double>(before_kb) / 1024.0},
        {"rss_after_mb", static_cast<double>(after_kb) / 1024.0},
        {"rss_added_mb", added_mb},
        {"kb_per_connection", connections ? static_cast<double>(after_kb - before_kb) / static_cast<double>(connections) : 0.0},
    };
    if (manager) out["pools_active"] = manager->stats().pools_active;
    std::cout << out.dump() << std::endl;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Args args = parse(argc, argv);
        mt::ManifestInput input;
        input.file = args.manifest;
        mt::Kernel kernel(input);
        if (args.memory) return memory_mode(args, kernel);
        const std::string url = kernel.connection_string();
        std::vector<std::string> ids;
        for (int i = 0; i < args.tenants; ++i) ids.push_back("t" + std::to_string(i));

        std::vector<std::vector<int>> plan(static_cast<size_t>(args.inflight));
        std::mt19937 rng(args.seed);
        std::uniform_int_distribution<int> pick(0, args.tenants - 1);
        for (int q = 0; q < args.queries; ++q) plan[static_cast<size_t>(q % args.inflight)].push_back(pick(rng));

        const std::string sql = args.param ? "SELECT $1::int" : "SELECT 1";
        const mt::SqlParams params = args.param ? mt::SqlParams{std::string("1")} : mt::SqlParams{};
        std::vector<std::vector<double>> latencies(plan.size());
        std::atomic<int> errors{0};
        std::unique_ptr<mt::TenantManager> manager;
        if (!args.raw) manager = std::make_unique<mt::TenantManager>(kernel);
        // Raw: one connection per worker, or --raw-connections shared through try-locks.
        const size_t raw_count = args.raw_connections > 0 ? static_cast<size_t>(args.raw_connections) : plan.size();
        if (raw_count < plan.size()) throw std::invalid_argument("--raw-connections must be at least --inflight");
        std::vector<std::unique_ptr<pqxx::connection>> raw(raw_count);
        std::vector<std::atomic_flag> raw_busy(raw_count);
        auto raw_query = [&](size_t w, int t) {
            if (args.raw_connections == 0) {
                pqxx::nontransaction tx(*raw[w]);
                mt::exec_params(tx, sql, params);
                return;
            }
            size_t i = static_cast<size_t>(t) * raw_count / static_cast<size_t>(args.tenants);
            while (raw_busy[i].test_and_set(std::memory_order_acquire)) i = (i + 1) % raw_count;
            try {
                pqxx::nontransaction tx(*raw[i]);
                mt::exec_params(tx, sql, params);
            } catch (...) {
                raw_busy[i].clear(std::memory_order_release);
                throw;
            }
            raw_busy[i].clear(std::memory_order_release);
        };

        // One pass of the plan; raw connections are opened by the first pass (timed unless --warm).
        auto pass = [&](bool timed) {
            std::latch opened(static_cast<std::ptrdiff_t>(plan.size()));
            std::vector<std::jthread> workers;
            for (size_t w = 0; w < plan.size(); ++w)
                workers.emplace_back([&, w, timed] {
                    auto& lat = latencies[w];
                    if (timed) lat.reserve(plan[w].size());
                    // Worker w opens connections w, w + K, w + 2K, … (in the first pass).
                    for (size_t i = w; args.raw && i < raw_count; i += plan.size())
                        if (!raw[i]) raw[i] = std::make_unique<pqxx::connection>(url);
                    opened.arrive_and_wait();
                    for (int t : plan[w]) {
                        const auto t0 = Clock::now();
                        try {
                            if (args.raw) {
                                raw_query(w, t);
                            } else {
                                auto lease = manager->tenant(ids[static_cast<size_t>(t)]);
                                lease.query(sql, params);
                            }
                        } catch (const std::exception& e) {
                            if (errors++ == 0) std::cerr << "first error: " << e.what() << "\n";
                        }
                        if (timed) lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
                    }
                });
        };
        if (args.warm) pass(false);
        const auto before = manager ? manager->stats() : mt::ManagerStats{};
        BackendSampler sampler(url);
        const double cpu0 = cpu_us();
        const auto start = Clock::now();
        pass(true);
        const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
        const double cpu = cpu_us() - cpu0;
        const double server_cpu = sampler.cpu_us();
        std::vector<double> all;
        for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
        std::sort(all.begin(), all.end());
        auto pct = [&](double p) { return all.empty() ? 0.0 : all[static_cast<size_t>(p * static_cast<double>(all.size() - 1))]; };
        nlohmann::json out = {
            {"mode", args.raw ? "raw-libpqxx" : mt::to_string(kernel.manifest().database.pool_mode)},
            {"tenants", args.tenants},
            {"queries", args.queries},
            {"inflight", args.inflight},
            {"param", args.param},
            {"raw_connections", args.raw ? raw_count : 0},
            {"warm", args.warm},
            {"seconds", seconds},
            {"qps", static_cast<double>(args.queries) / seconds},
            {"p50_ms", pct(0.50)},
            {"p99_ms", pct(0.99)},
            {"errors", errors.load()},
            {"peak_backends", sampler.peak()},
            {"client_cpu_us_per_query", cpu / args.queries},
            {"server_cpu_us_per_query", server_cpu < 0 ? nlohmann::json() : nlohmann::json(server_cpu / args.queries)},
            {"rss_mb", static_cast<double>(status_kb("VmHWM")) / 1024.0},
        };
        if (manager) {
            // Counters of the timed pass only.
            const auto s = manager->stats();
            out["evictions"] = s.evictions - before.evictions;
            out["pools_created"] = s.pools_created - before.pools_created;
            out["connections_opened"] = s.connections_opened - before.connections_opened;
            out["search_path_sets"] = s.search_path_sets - before.search_path_sets;
            out["search_path_folded"] = s.search_path_folded - before.search_path_folded;
        }
        std::cout << out.dump() << std::endl;
        return errors ? 1 : 0;
    } catch (const std::exception& e) {
        std::cerr << "mt-lease-bench: " << e.what() << "\n";
        return 2;
    }
}
