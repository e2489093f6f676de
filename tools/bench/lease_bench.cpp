// Lease throughput benchmark (issue: tenant runtime): N `SELECT 1` through TenantManager leases,
// K in flight, spread at random over T tenants; or the same over raw libpqxx connections (one per
// worker) as the floor. Prints one JSON line: queries/s, p50/p99 latency, evictions, peak backends,
// client RSS.
//
//   mt-lease-bench --manifest FILE --tenants 200 --queries 20000 --inflight 16 [--raw] [--seed 1]
//
// The manifest decides the pool mode, pool_size and max_pools. Tenant ids are t0..t{T-1}; their
// schemas must exist (tools/bench/bench_runtime.sh creates them).
#include <mt/kernel.hpp>
#include <mt/tenant_manager.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
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
        else throw std::invalid_argument("unknown argument " + k);
    }
    return a;
}

long rss_kb() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
    return 0;
}

// Samples the database's backend count every 20 ms on its own connection.
class BackendSampler {
public:
    explicit BackendSampler(const std::string& url)
        : thread_([this, url](std::stop_token stop) {
              pqxx::connection c(url);
              while (!stop.stop_requested()) {
                  pqxx::nontransaction tx(c);
                  const auto n = tx.exec1("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                          "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")[0]
                                     .as<long>();
                  peak_ = std::max(peak_.load(), n);
                  std::this_thread::sleep_for(std::chrono::milliseconds(20));
              }
          }) {}
    long peak() const { return peak_; }

private:
    std::atomic<long> peak_{0};
    std::jthread thread_;
};

}  // namespace

int main(int argc, char** argv) {
    try {
        const Args args = parse(argc, argv);
        mt::ManifestInput input;
        input.file = args.manifest;
        mt::Kernel kernel(input);
        const std::string url = kernel.connection_string();
        std::vector<std::string> ids;
        for (int i = 0; i < args.tenants; ++i) ids.push_back("t" + std::to_string(i));

        std::vector<std::vector<int>> plan(static_cast<size_t>(args.inflight));
        std::mt19937 rng(args.seed);
        std::uniform_int_distribution<int> pick(0, args.tenants - 1);
        for (int q = 0; q < args.queries; ++q) plan[static_cast<size_t>(q % args.inflight)].push_back(pick(rng));

        std::vector<std::vector<double>> latencies(plan.size());
        std::atomic<int> errors{0};
        std::unique_ptr<mt::TenantManager> manager;
        if (!args.raw) manager = std::make_unique<mt::TenantManager>(kernel);
        BackendSampler sampler(url);
        const auto start = Clock::now();
        {
            std::vector<std::jthread> workers;
            for (size_t w = 0; w < plan.size(); ++w)
                workers.emplace_back([&, w] {
                    auto& lat = latencies[w];
                    lat.reserve(plan[w].size());
                    std::unique_ptr<pqxx::connection> raw;
                    if (args.raw) raw = std::make_unique<pqxx::connection>(url);
                    for (int t : plan[w]) {
                        const auto t0 = Clock::now();
                        try {
                            if (args.raw) {
                                pqxx::nontransaction tx(*raw);
                                tx.exec("SELECT 1");
                            } else {
                                auto lease = manager->tenant(ids[static_cast<size_t>(t)]);
                                lease.query("SELECT 1");
                            }
                        } catch (const std::exception& e) {
                            if (errors++ == 0) std::cerr << "first error: " << e.what() << "\n";
                        }
                        lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
                    }
                });
        }
        const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
        std::vector<double> all;
        for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
        std::sort(all.begin(), all.end());
        auto pct = [&](double p) { return all.empty() ? 0.0 : all[static_cast<size_t>(p * (all.size() - 1))]; };
        nlohmann::json out = {
            {"mode", args.raw ? "raw-libpqxx" : mt::to_string(kernel.manifest().database.pool_mode)},
            {"tenants", args.tenants},
            {"queries", args.queries},
            {"inflight", args.inflight},
            {"seconds", seconds},
            {"qps", static_cast<double>(args.queries) / seconds},
            {"p50_ms", pct(0.50)},
            {"p99_ms", pct(0.99)},
            {"errors", errors.load()},
            {"peak_backends", sampler.peak()},
            {"rss_mb", static_cast<double>(rss_kb()) / 1024.0},
        };
        if (manager) {
            const auto s = manager->stats();
            out["evictions"] = s.evictions;
            out["pools_created"] = s.pools_created;
            out["connections_opened"] = s.connections_opened;
        }
        std::cout << out.dump() << std::endl;
        return errors ? 1 : 0;
    } catch (const std::exception& e) {
        std::cerr << "mt-lease-bench: " << e.what() << "\n";
        return 2;
    }
}
