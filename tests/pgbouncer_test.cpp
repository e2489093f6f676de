// The tenant runtime behind a real PgBouncer in transaction mode (SPEC §5.1, §9): `transaction`
// pool mode keeps tenants isolated under concurrent load while server connections pass from one
// tenant to another; `shared` mode, whose search_path is session state, leaks across tenants there.
#include "support/pgbouncer.hpp"
#include "support/project.hpp"

#include <mt/base/ident.hpp>
#include <mt/context/kernel.hpp>
#include <mt/runtime/tenant_manager.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

using namespace mt::test;

namespace {

// Each tenant's `items` holds three rows owned by it; a tenant marker no other schema has.
void pgbouncer_tenants(const Project& p, const std::vector<std::string>& ids) {
    p.tenants(ids);
    for (const auto& id : ids) {
        const std::string items = mt::quote_qualified("tenant_" + id, "items");
        p.exec("CREATE TABLE " + items + " (owner text, n int)");
        p.exec("INSERT INTO " + items + " SELECT $1, g FROM generate_series(1, 3) g", {id});
    }
}

// The project's database reached through the pooler, in the given pool mode.
void through(Project& p, const PgBouncer& bouncer, const std::string& pool_mode, int pool_size) {
    p.set("database.url", bouncer.url_through(p.url()));
    p.set("database.pool_mode", pool_mode);
    p.set("database.pool_size", std::to_string(pool_size));
}

// `owner` of every row the lease's search_path shows, e.g. "a,a,a".
std::string owners_in_order(mt::TenantLease& lease) {
    std::string out;
    for (const auto& row : lease.query("SELECT owner FROM items ORDER BY n"))
        out += (out.empty() ? "" : ",") + std::string(row[0].c_str());
    return out;
}

std::string three(const std::string& id) { return id + "," + id + "," + id; }

}  // namespace

TEST_CASE("behind PgBouncer in transaction mode, `transaction` pool mode never shows a tenant another's rows",
          "[manager][pgbouncer][pg]") {
    Project p;
    const std::vector<std::string> ids{"a", "b", "c", "d", "e", "Mixed", "mixed", "h"};
    pgbouncer_tenants(p, ids);
    PgBouncer bouncer({"transaction", 4, 200});
    through(p, bouncer, "transaction", 12);
    mt::Kernel kernel(p.manifest_input());
    mt::TenantManager manager(kernel);

    constexpr int threads = 16, rounds = 60;
    std::atomic<int> done{0};
    std::mutex mutex;
    std::vector<std::string> wrong;
    std::map<int, std::set<std::string>> tenants_by_backend;  // server backend pid -> tenants it served
    {
        std::vector<std::jthread> workers;
        for (int t = 0; t < threads; ++t)
            workers.emplace_back([&, t] {
                std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1u);
                for (int i = 0; i < rounds; ++i) {
                    // The first round of each thread covers every tenant; the rest are random.
                    const auto& id = i == 0 ? ids[static_cast<size_t>(t) % ids.size()] : ids[rng() % ids.size()];
                    std::string seen;
                    int backend = 0;
                    try {
                        auto lease = manager.tenant(id);
                        switch (i % 3) {
                        case 0:  // one statement: SET LOCAL folded into its implicit transaction
                            seen = owners_in_order(lease);
                            backend = lease.query("SELECT pg_backend_pid()")[0][0].as<int>();
                            break;
                        case 1:  // a parameterised statement: BEGIN; SET LOCAL; statement; COMMIT
                            seen = lease.query("SELECT string_agg(owner, ',' ORDER BY n) FROM items WHERE n >= $1",
                                               {"1"})[0][0].c_str();
                            break;
                        default:  // an explicit transaction, slow enough to keep its server connection busy
                            lease.transaction([&](pqxx::work& tx) {
                                backend = tx.exec1("SELECT pg_backend_pid()")[0].as<int>();
                                tx.exec("SELECT pg_sleep(0.002)");
                                const std::string first = tx.exec1("SELECT string_agg(owner, ',' ORDER BY n) FROM items")[0].c_str();
                                const std::string second = tx.exec1("SELECT string_agg(owner, ',' ORDER BY n) FROM items")[0].c_str();
                                seen = first == second ? first : first + " then " + second;
                            });
                        }
                    } catch (const std::exception& e) {
                        seen = std::string("error: ") + e.what();
                    }
                    std::lock_guard lock(mutex);
                    if (seen != three(id)) wrong.push_back("tenant " + id + " saw " + seen);
                    if (backend != 0) tenants_by_backend[backend].insert(id);
                    ++done;
                }
            });
    }
    INFO(wrong.size() << " cross-tenant or failed reads" << (wrong.empty() ? "" : "; first: " + wrong.front()));
    CHECK(wrong.empty());
    CHECK(done == threads * rounds);
    // PgBouncer really multiplexed: at most default_pool_size server connections, so with eight
    // tenants at least one of them served several tenants in turn.
    CHECK(tenants_by_backend.size() <= 4);
    size_t most = 0;
    for (const auto& [pid, served] : tenants_by_backend) most = std::max(most, served.size());
    CHECK(most >= 2);
}

TEST_CASE("behind PgBouncer in transaction mode, interleaved leases keep their tenant in `transaction` mode and "
          "leak it in `shared` mode",
          "[manager][pgbouncer][pg]") {
    // One server connection: every client connection's statements run on the same backend, so
    // the interleaving below is deterministic.
    Project p;
    pgbouncer_tenants(p, {"a", "b"});
    PgBouncer bouncer({"transaction", 1, 50});

    SECTION("transaction mode: SET LOCAL in every transaction") {
        through(p, bouncer, "transaction", 2);
        mt::Kernel kernel(p.manifest_input());
        mt::TenantManager manager(kernel);
        auto a = manager.tenant("a");
        CHECK(owners_in_order(a) == three("a"));
        auto b = manager.tenant("b");
        CHECK(owners_in_order(b) == three("b"));
        CHECK(owners_in_order(a) == three("a"));
        CHECK(a.transaction([](pqxx::work& tx) { return std::string(tx.exec1("SELECT min(owner) FROM items")[0].c_str()); }) == "a");
    }
    SECTION("shared mode: the session search_path set for b is what a's next statement finds") {
        // Why doctor fails `shared` (and `per-tenant`) behind a transaction pooler.
        through(p, bouncer, "shared", 2);
        mt::Kernel kernel(p.manifest_input());
        mt::TenantManager manager(kernel);
        auto a = manager.tenant("a");
        CHECK(owners_in_order(a) == three("a"));
        auto b = manager.tenant("b");  // a second client connection: a holds the first
        CHECK(owners_in_order(b) == three("b"));
        CHECK(owners_in_order(a) == three("b"));
    }
}
